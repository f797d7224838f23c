"""Training inside a session limit: stop at a step boundary while there is still time to evaluate, save the best
checkpoint so far and write a complete model dir (Kaggle ends a GPU session after 12 hours)."""

from __future__ import annotations

import time
from collections.abc import Callable

from kaggle_kit.config.durations import process_age

# Per step: the next step may be this much slower than the average so far before we notice.
STEP_SLACK = 2.0
# After the stop: the final evaluation, our own ordered holdout pass (about one more evaluation) and the writes.
FINISH_EVALS = 3.0
FINISH_SHARE = 0.02  # and this share of the budget (at least MIN_FINISH_S) for loading the best checkpoint and saving
MIN_FINISH_S = 20.0  # adapter, tokenizer, curves and holdout files: seconds on a shared CPU


def agreed(stop: bool) -> bool:
    """Every DDP rank's stop decision, all-reduced (max): one rank stops, all stop at the same step. Each rank decides
    from its own clock and the Trainer does not synchronise should_training_stop, so without this a rank that stops
    alone leaves the others waiting in the next step's collectives. One process: the decision itself."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return stop
    on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    flag = torch.tensor([1 if stop else 0], dtype=torch.int32, device=on)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def time_budget_callback(seconds: float, started: float | None = None, clock: Callable[[], float] = time.monotonic):
    """A TrainerCallback that stops training before `seconds` (counted from `started` on `clock`, default: this
    process's start) run out, on every DDP rank at the same step. transformers is imported here so the module stays
    light."""
    from transformers.trainer_callback import TrainerCallback

    start = clock() - process_age() if started is None else started

    class TimeBudget(TrainerCallback):
        def __init__(self):
            self.stopped_at: int | None = None
            self.first_step_end: float | None = None
            self.steps_timed = 0
            self.last_step_end = self.train_begin = clock()
            self.eval_s = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.last_step_end = self.train_begin = clock()

        def on_step_end(self, args, state, control, **kwargs):
            now = clock()
            if self.first_step_end is None:  # the first step pays the warm-up: the rate starts after it
                self.first_step_end, self.steps_timed = now, 0
            else:
                self.steps_timed += 1
            self.last_step_end = now
            # before a steady step: the first step's own time (start-up and data preparation are not a step)
            step_s = (now - self.first_step_end) / self.steps_timed if self.steps_timed else now - self.train_begin
            finish = FINISH_EVALS * self.eval_s + max(MIN_FINISH_S, FINISH_SHARE * seconds)
            late = now - start + STEP_SLACK * step_s + finish > seconds
            if agreed(late) and state.global_step < state.max_steps:
                self.stopped_at = state.global_step
                control.should_training_stop = True
                control.should_evaluate = True  # the steps since the last evaluation are judged and kept
                control.should_save = True
            return control

        def on_evaluate(self, args, state, control, **kwargs):
            now = clock()
            took = now - self.last_step_end
            self.eval_s = max(self.eval_s, took)
            if self.first_step_end is not None:  # evaluations are kept apart from the time per training step
                self.first_step_end += took
            self.last_step_end = now

    return TimeBudget()
