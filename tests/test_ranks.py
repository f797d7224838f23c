"""Several GPUs, several ranks: no process drives two GPUs (no nn.DataParallel, no n_gpu-multiplied batch), cv under
torchrun trains every fold on every rank, and a time-budget stop is one decision for all ranks. Ranks run for real
(gloo on CPU, with timeouts); only "the Trainer sees two GPUs in one process" is faked, as args._n_gpu = 2."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import weakref

import pandas as pd
import pytest

from conftest import quick_config
from kaggle_kit.training import train as train_module
from kaggle_kit.training.cv import run_cv


def _two_gpus_seen(monkeypatch):
    """What TrainingArguments reports in one process that sees two GPUs (transformers sets _n_gpu from
    torch.cuda.device_count() in _setup_devices); devices are set up first so that value is not recomputed."""
    real = train_module.training_arguments

    def faked(**kwargs):
        args = real(**kwargs)
        _ = args.device
        args._n_gpu = 2
        return args

    monkeypatch.setattr(train_module, "training_arguments", faked)


def _record_trainer(monkeypatch) -> dict:
    from transformers import Trainer

    seen: dict = {"wrapped": [], "batches": [], "train_batch_size": []}
    wrap = Trainer._wrap_model

    def recording_wrap(self, model, training=True, dataloader=None):
        wrapped = wrap(self, model, training, dataloader)
        seen["wrapped"].append(type(wrapped).__name__)
        seen["train_batch_size"].append(self.args.train_batch_size)
        return wrapped

    class CountingCollator(train_module.PairCollator):
        def __call__(self, features):
            seen["batches"].append(len(features))
            return super().__call__(features)

    monkeypatch.setattr(Trainer, "_wrap_model", recording_wrap)
    monkeypatch.setattr(train_module, "PairCollator", CountingCollator)
    return seen


def test_two_gpus_in_one_process_never_build_data_parallel(monkeypatch, tmp_path, small_files, spec, tiny_backbone):
    _two_gpus_seen(monkeypatch)
    seen = _record_trainer(monkeypatch)
    cfg = quick_config(tiny_backbone, max_steps=2, eval_steps=2, batch_size=4, max_len=64)
    train_module.train([small_files.train], tmp_path / "guarded", cfg, spec)
    assert seen["wrapped"] and "DataParallel" not in seen["wrapped"]
    assert set(seen["train_batch_size"]) == {4} and max(seen["batches"][:2]) == 4  # not 4 x 2

    # The fake is what the Trainer acts on: without the guard this very run builds nn.DataParallel, batch 8.
    monkeypatch.setattr(train_module, "one_gpu_per_process", lambda args: args)
    seen.update(wrapped=[], batches=[], train_batch_size=[])
    train_module.train([small_files.train], tmp_path / "unguarded", cfg, spec)
    assert "DataParallel" in seen["wrapped"] and 8 in seen["train_batch_size"]


def test_cv_frees_each_folds_model_before_the_next_loads(monkeypatch, tmp_path, small_files, spec, tiny_backbone):
    loaded: list[weakref.ref] = []
    alive_at_load: list[int] = []
    real = train_module.load_backbone_model

    def tracking(*args, **kwargs):
        alive_at_load.append(sum(ref() is not None for ref in loaded))
        model, tokenizer = real(*args, **kwargs)
        loaded.append(weakref.ref(model))
        return model, tokenizer

    monkeypatch.setattr(train_module, "load_backbone_model", tracking)
    result = run_cv([small_files.train], tmp_path / "cv", 2, quick_config(tiny_backbone, max_steps=1, eval_steps=1,
                                                                          max_len=64), spec, echo=lambda m: None)
    assert result["complete"] and alive_at_load == [0, 0]


def test_cv_under_torchrun_trains_both_folds_on_both_ranks(tmp_path, small_files, tiny_backbone):
    """The issue's command, 2 gloo ranks: rank 1 stays for fold 1 (it used to leave after fold 0, and rank 0's next
    DDP setup died with 'Connection closed by peer')."""
    out = tmp_path / "cv"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "kaggle_kit.cli", "cv", "--folds", "2", "--train", str(small_files.train), "--backbone",
           str(tiny_backbone), "--out", str(out), "--max-len", "48", "--max-steps", "1", "--eval-steps", "1",
           "--batch-size", "4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    oof = pd.read_csv(out / "oof.csv")
    assert sorted(oof["fold"].unique()) == [0, 1] and oof["id"].is_unique
    assert proc.stderr.count("fold 1/2: training into") == 1  # rank 0 reports; rank 1 trains silently
    for fold in (0, 1):  # each fold a real 2-rank DDP run
        assert json.loads((out / f"fold-{fold}" / "metrics.json").read_text())["world_size"] == 2


def test_budget_stop_is_agreed_across_ranks_with_skewed_clocks(tmp_path):
    import torch.multiprocessing as mp
    from rank_worker import budget_rank  # a light module: each spawned rank imports it

    context = mp.start_processes(budget_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2,
                                 start_method="spawn", join=False)
    deadline = time.monotonic() + 120
    while not context.join(timeout=5) and time.monotonic() < deadline:  # join returns as each rank ends
        pass
    if any(process.is_alive() for process in context.processes):
        for process in context.processes:
            process.kill()
        pytest.fail("the ranks did not finish: a rank stopped alone and the other hung")
    stops = {(tmp_path / f"rank{r}").read_text() for r in (0, 1)}
    # One step, on both; rank 1's clock decided it (step 29): rank 0's alone would stop at step 89, past the loop.
    assert stops == {"29"}
