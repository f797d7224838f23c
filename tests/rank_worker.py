"""A DDP rank for tests/test_ranks.py's budget test, kept in a module of its own (no test fixtures)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import torch


def budget_rank(rank: int, init_file: str, results: str) -> None:
    """One DDP rank: its own clock (rank 1's runs fast), the real callback, and a collective per step standing in
    for DDP's gradient all-reduce (a rank that stopped alone would leave the other waiting there)."""
    import torch.distributed as dist

    from kaggle_kit.training.time_limit import time_budget_callback

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=30))
    now = [100.0]
    callback = time_budget_callback(200.0, started=now[0], clock=lambda: now[0])
    callback.on_train_begin(None, None, None)
    stopped = None
    for step in range(1, 60):
        now[0] += 2.0 if rank == 0 else 6.0  # skewed: rank 1 alone would stop far earlier
        state = SimpleNamespace(global_step=step, max_steps=1000)
        control = SimpleNamespace(should_training_stop=False, should_evaluate=False, should_save=False)
        callback.on_step_end(None, state, control)
        if control.should_training_stop:
            stopped = step
            break
        dist.all_reduce(torch.ones(1))
    Path(results, f"rank{rank}").write_text(str(stopped))
    dist.destroy_process_group()
