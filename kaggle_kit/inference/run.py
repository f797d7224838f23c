"""The one place that chooses how a submission is predicted: plain, under a time budget, or a fitted blend."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from kaggle_kit.atomic import check_outputs
from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.config import PredictConfig
from kaggle_kit.config.durations import parse_duration
from kaggle_kit.data.reading import read_test
from kaggle_kit.errors import KitError, UsageProblem
from kaggle_kit.inference.blend_run import blend_run
from kaggle_kit.inference.blending import read_blend, used_model_dirs
from kaggle_kit.inference.budget import Budget
from kaggle_kit.inference.budgeted import BudgetedPredictor
from kaggle_kit.inference.placement import split_of
from kaggle_kit.inference.predict import check_weights, finite_or_prior
from kaggle_kit.inference.rules import RULES, apply_rules
from kaggle_kit.inference.shard_job import fitted_models, plain_models, predict_in_shards, refuse_budget_under_torchrun
from kaggle_kit.inference.shards import parts_dir, remove_parts
from kaggle_kit.model.batching import check_batching
from kaggle_kit.model.model_dir import check_model_dir, recorded_prior
from kaggle_kit.submission import find_sample_submission, submission_order, write_probabilities, write_submission

log = logging.getLogger(__name__)


def predict_to_submission(model_dirs: list[Path], test_path: Path, out_path: Path, spec: CompetitionSpec,
                          cfg: PredictConfig, weights: list[float] | None = None, backbone: str | None = None,
                          sample_submission: Path | None = None, overwrite: bool = False,
                          progress: bool = True, budget: Budget | None = None, echo=None,
                          backbone_of=None, probabilities: Path | None = None) -> dict:
    """test.csv -> validated, sample_submission-ordered CSV. Every input is checked before the first forward pass.

    `probabilities`: also write the class probabilities there (what blends need when the submission holds labels).
    With a time budget (`budget`, else cfg.time_budget counted from process start) see budgeted.py; a blend.json
    under a budget: blend_run.py."""
    fitted = None
    if cfg.blend.endswith(".json"):  # a blend.json names its own models
        if model_dirs or weights:
            raise UsageProblem("--blend FILE.json names the models and weights itself",
                               hint="drop --model/--weights, or use --blend prob|logprob")
        fitted = read_blend(Path(cfg.blend))
        model_dirs = used_model_dirs(fitted)
        for member in fitted.members if backbone_of else []:
            if member.weight > 0:
                member.backbone = backbone_of(member)
    if not model_dirs:
        raise KitError("no model given", hint="pass --model DIR (repeat to ensemble)")
    refuse_budget_under_torchrun(cfg, budget)
    beside = test_path.parent / spec.sample_submission_file
    # before any inference: every output writable, none of them an input, none replaced without --overwrite
    check_outputs({"--out": out_path, "--probabilities": probabilities},
                  [test_path, sample_submission, beside if beside.exists() else None,
                   cfg.blend if fitted is not None else None], overwrite)
    if weights is not None or len(model_dirs) > 1:
        check_weights(weights, len(model_dirs))
    pairs = read_test(test_path, spec)
    infos = [check_model_dir(model_dir) for model_dir in model_dirs]
    for model_dir, info in zip(model_dirs, infos):
        check_classes(model_dir, info, spec)
    batching_note = check_batching(cfg.batching, [info["model_type"] for info in infos])
    if cfg.placement == "split":  # refused now when this machine cannot split, not after loading
        split_of(model_dirs[0], backbone, "split", cfg.quantize, cfg.max_tokens)
    sample = find_sample_submission(sample_submission, test_path.parent / spec.sample_submission_file)
    order = submission_order(spec, pairs.ids, sample)
    rules, fired = None, {}
    prior, nonfinite = recorded_prior(model_dirs[0], spec.num_labels), 0
    notes = [note] if (note := spec.metric_note()) else []
    notes += [batching_note] if batching_note else []
    if cfg.rules and not spec.rules_rewarded:
        notes.append(f"--rules not applied: they set fixed A / B / tie probability rows, which {spec.slug}'s "
                     f"{spec.metric_name} over {spec.num_labels} classes does not reward")
    elif cfg.rules:
        rules = fitted.rules if fitted is not None else RULES
    for line in notes:
        (echo or log.warning)(f"note: {line}")

    def finish(probs: np.ndarray, overwrite_now: bool):
        nonlocal fired, nonfinite
        probs, nonfinite = finite_or_prior(probs, prior)
        if nonfinite and echo is not None:
            echo(f"kaggle-kit: warning: {nonfinite} row(s) had non-finite probabilities and got the class prior")
        if rules is not None:
            probs, fired = apply_rules(probs, pairs, spec, rules)
        if probabilities is not None:
            write_probabilities(pairs.ids, probs, order, spec, probabilities, overwrite=overwrite_now)
        return write_submission(pairs.ids, probs, order, spec, out_path, overwrite=overwrite_now)

    if budget is None and cfg.time_budget is not None:
        budget = Budget.from_process_start(parse_duration(cfg.time_budget))
    if budget is not None:
        laid_out = blend_run(fitted, lambda m: backbone or m.backbone) if fitted is not None else None
        report = BudgetedPredictor(laid_out.model_dirs if laid_out else model_dirs, pairs, spec, cfg,
                                   None if laid_out else weights, backbone, budget, lambda probs: finish(probs, True),
                                   echo or (lambda message: None), progress, fitted=laid_out).run()
        if laid_out is not None:
            report["blend_members"] = [{"name": name, "weight": w, "model_dirs": laid_out.member_of.count(k)}
                                       for k, (name, w) in enumerate(zip(laid_out.names, laid_out.weights))]
        result = {"path": str(out_path), **report, "seconds": report["elapsed_s"], "nonfinite_rows": nonfinite,
                  **_extras(probabilities, notes)}
        return {**result, "rules": fired} if cfg.rules else result
    start = time.perf_counter()
    models = fitted_models(fitted, backbone) if fitted is not None else plain_models(model_dirs, weights, cfg.blend,
                                                                                     backbone)
    probs, shards = predict_in_shards("predict", models, pairs, spec, cfg, test_path, out_path, weights, overwrite,
                                      progress, echo)
    if probs is None:  # a rank other than 0: rank 0 merges and writes
        return {"path": str(out_path), "merged": False, **shards}
    report = finish(probs, overwrite)
    remove_parts(parts_dir(out_path))
    result = {"path": str(out_path), "rows": report.rows, "seconds": round(time.perf_counter() - start, 2),
              "nonfinite_rows": nonfinite, **shards, **_extras(probabilities, notes)}
    return {**result, "rules": fired} if cfg.rules else result


def check_classes(model_dir: Path, info: dict, spec: CompetitionSpec) -> None:
    """A model predicts the classes it was trained for: an LMSYS model cannot fill a two-class submission."""
    if int(info["num_labels"]) != spec.num_labels:
        raise KitError(f"{model_dir} was trained for {info.get('competition', 'another competition')} "
                       f"({info['num_labels']} classes); {spec.slug} has {spec.num_labels} ({', '.join(spec.classes)})",
                       hint="train a model with this competition's spec")


def _extras(probabilities: Path | None, notes: list[str]) -> dict:
    return {**({"probabilities": str(probabilities)} if probabilities is not None else {}),
            **({"notes": notes} if notes else {})}
