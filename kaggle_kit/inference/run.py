"""The one place that chooses how a submission is predicted: plain, under a time budget, or a fitted blend."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from kaggle_kit.atomic import check_writable, refuse_overwrite, refuse_same_file
from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.config import PredictConfig
from kaggle_kit.config.durations import parse_duration
from kaggle_kit.data.reading import read_test
from kaggle_kit.errors import KitError, UsageProblem
from kaggle_kit.inference.blending import predict_blend, read_blend, used_model_dirs
from kaggle_kit.inference.budget import Budget
from kaggle_kit.inference.budgeted import BudgetedPredictor
from kaggle_kit.inference.predict import check_weights, predict_models
from kaggle_kit.inference.rules import RULES, apply_rules
from kaggle_kit.model.model_dir import check_model_dir
from kaggle_kit.submission import find_sample_submission, submission_order, write_submission


def predict_to_submission(model_dirs: list[Path], test_path: Path, out_path: Path, spec: CompetitionSpec,
                          cfg: PredictConfig, weights: list[float] | None = None, backbone: str | None = None,
                          sample_submission: Path | None = None, overwrite: bool = False,
                          progress: bool = True, budget: Budget | None = None, echo=None) -> dict:
    """test.csv -> validated, sample_submission-ordered CSV. Every input is checked before the first forward pass.

    With a time budget (`budget`, else cfg.time_budget counted from process start) see predict_budget.py."""
    fitted = None
    if cfg.blend.endswith(".json"):  # a blend.json names its own models
        if model_dirs or weights:
            raise UsageProblem("--blend FILE.json names the models and weights itself",
                               hint="drop --model/--weights, or use --blend prob|logprob")
        fitted = read_blend(Path(cfg.blend))
        model_dirs = used_model_dirs(fitted)
        if budget is not None or cfg.time_budget is not None:
            raise UsageProblem("--time-budget does not apply to a fitted --blend FILE.json yet",
                               hint="drop one of them, or blend with --model ... --weights")
    if not model_dirs:
        raise KitError("no model given", hint="pass --model DIR (repeat to ensemble)")
    check_writable(out_path)  # before any inference: a location that cannot take the file fails now, in one line
    beside = test_path.parent / "sample_submission.csv"
    refuse_same_file(out_path, [test_path, sample_submission, beside if beside.exists() else None,
                                cfg.blend if fitted is not None else None])
    refuse_overwrite(out_path, overwrite)
    if weights is not None or len(model_dirs) > 1:
        check_weights(weights, len(model_dirs))
    pairs = read_test(test_path, spec)
    for model_dir in model_dirs:
        check_model_dir(model_dir)
    sample = find_sample_submission(sample_submission, test_path.parent / "sample_submission.csv")
    order = submission_order(spec, pairs.ids, sample)
    rules, fired = None, {}
    if cfg.rules:
        rules = fitted.rules if fitted is not None else RULES

    def finish(probs: np.ndarray, overwrite_now: bool):
        nonlocal fired
        if rules is not None:
            probs, fired = apply_rules(probs, pairs, spec, rules)
        return write_submission(pairs.ids, probs, order, spec, out_path, overwrite=overwrite_now)

    if budget is None and cfg.time_budget is not None:
        budget = Budget.from_process_start(parse_duration(cfg.time_budget))
    if budget is not None:
        report = BudgetedPredictor(model_dirs, pairs, spec, cfg, weights, backbone, budget,
                                   lambda probs: finish(probs, True), echo or (lambda message: None), progress).run()
        result = {"path": str(out_path), **report, "seconds": report["elapsed_s"]}
        return {**result, "rules": fired} if cfg.rules else result
    start = time.perf_counter()
    if fitted is not None:
        probs = predict_blend(fitted, pairs, spec, cfg, backbone, progress=progress)
    else:
        probs = predict_models(model_dirs, pairs, spec, cfg.max_tokens, cfg.tta, weights, cfg.blend, backbone,
                               cfg.precision, cfg.quantize, progress=progress).probs
    report = finish(probs, overwrite)
    result = {"path": str(out_path), "rows": report.rows, "seconds": round(time.perf_counter() - start, 2)}
    return {**result, "rules": fired} if cfg.rules else result
