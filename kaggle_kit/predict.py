"""Fast inference: length-sorted token-budget batches, dynamic padding, inference_mode, optional multi-GPU, swap TTA,
blends."""

from __future__ import annotations

import copy
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .atomic import refuse_overwrite
from .budget import Budget, parse_duration
from .competition import CompetitionSpec
from .config import PredictConfig
from .data import Pairs, read_test
from .encode import Encoder, EncodingSpec
from .errors import KitError, UsageProblem
from .model_dir import TrainedModel, check_model_dir, load_trained
from .progress import progress_bar
from .side_head import pair_features
from .submission import find_sample_submission, submission_order, write_submission


def token_budget_batches(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Rows sorted longest first, packed so rows x longest <= max_tokens (a single longer row gets a batch alone)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        if current and (len(current) + 1) * longest > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def pad_batch(rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _run_batches(model, batches: list[list[int]], encoded: list[list[int]], pad_id: int, out: np.ndarray, bar) -> None:
    device = model_device(model)
    with torch.inference_mode():
        for batch in batches:
            inputs = {k: v.to(device) for k, v in pad_batch([encoded[i] for i in batch], pad_id).items()}
            logits = model(**inputs).logits.float().cpu().numpy()
            out[batch] = logits
            bar.update(len(batch))


def predict_logits(model, pad_id: int, encoded: list[list[int]], max_tokens: int, num_labels: int,
                   progress: bool = True, replicas: list[torch.nn.Module] | None = None) -> np.ndarray:
    """Logits in the input order; sorted batches are shared round-robin between replicas (one per GPU)."""
    batches = token_budget_batches([len(e) for e in encoded], max_tokens)
    logits = np.zeros((len(encoded), num_labels), dtype=np.float32)
    models = replicas or [model]
    with progress_bar(len(encoded), "predict", "row", enabled=progress) as bar:
        if len(models) == 1:
            _run_batches(models[0], batches, encoded, pad_id, logits, bar)
        else:
            with ThreadPoolExecutor(len(models)) as pool:
                jobs = [pool.submit(_run_batches, m, batches[k::len(models)], encoded, pad_id, logits, bar)
                        for k, m in enumerate(models)]
                for job in jobs:
                    job.result()
    return logits


def gpu_replicas(model: torch.nn.Module) -> list[torch.nn.Module] | None:
    """One copy per visible GPU (Kaggle's T4 x2); None on CPU or a single GPU."""
    count = torch.cuda.device_count()
    if count < 2:
        return None
    return [model] + [copy.deepcopy(model).to(f"cuda:{k}") for k in range(1, count)]


def unswap(probs_of_swapped: np.ndarray, spec: CompetitionSpec) -> np.ndarray:
    """Probabilities predicted on A/B-swapped rows, mapped back to the original columns."""
    return probs_of_swapped[:, list(spec.label_swap)]


def encoder_for(trained: TrainedModel) -> Encoder:
    """The training encoding, at the inference length recorded by train (within the backbone's limit)."""
    spec = EncodingSpec.from_dict(trained.info["encoding"])
    tokens = (trained.info.get("max_len") or {}).get("predict")
    return Encoder(trained.tokenizer, replace(spec, max_len=int(tokens)) if tokens else spec)


def predict_probs(trained: TrainedModel, pairs: Pairs, spec: CompetitionSpec, max_tokens: int, tta: str = "none",
                  progress: bool = True) -> np.ndarray:
    encoder = encoder_for(trained)
    tokens = encoder.tokenize_turns(pairs, progress=progress)
    fields = encoder.spec.fields
    encoded = [encoder.assemble([tokens[f][r] for f in fields]) for r in range(len(pairs))]
    replicas = gpu_replicas(trained.model)
    pad_id = trained.tokenizer.pad_token_id
    n = trained.info["num_labels"]
    features = pair_features(pairs, spec) if trained.side_head else None
    probs = trained.probs(predict_logits(trained.model, pad_id, encoded, max_tokens, n, progress, replicas), features)
    if tta == "swap":
        a, b = spec.swap_pairs[0]
        # The same turns, responses exchanged: no re-tokenising.
        swapped_fields = [{a: b, b: a}.get(f, f) for f in fields]
        swapped = [encoder.assemble([tokens[f][r] for f in swapped_fields]) for r in range(len(pairs))]
        swapped_features = pair_features(pairs.swapped(spec), spec) if trained.side_head else None
        swapped_probs = trained.probs(predict_logits(trained.model, pad_id, swapped, max_tokens, n, progress, replicas),
                                      swapped_features)
        probs = (probs + unswap(swapped_probs, spec)) / 2
    elif tta != "none":
        raise KitError(f"unknown --tta '{tta}'", hint="choose none or swap")
    return probs


def check_weights(weights: list[float] | None, n_models: int) -> list[float]:
    """One non-negative weight per model, not all zero (default: equal weights)."""
    weights = list(weights) if weights else [1.0] * n_models
    if len(weights) != n_models:
        raise KitError(f"{n_models} model(s) but {len(weights)} weights", hint="give one --weights value per --model")
    if any(not np.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise KitError(f"weights {weights} must be non-negative and not all zero")
    return weights


def blend(prob_sets: list[np.ndarray], weights: list[float] | None = None, how: str = "prob") -> np.ndarray:
    """Weighted average of probabilities, or of log-probabilities (geometric mean, renormalised)."""
    weights = check_weights(weights, len(prob_sets))
    w = np.asarray(weights, dtype=np.float64) / sum(weights)
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in prob_sets])
    if how == "prob":
        return np.tensordot(w, stack, axes=1)
    if how == "logprob":
        mixed = np.exp(np.tensordot(w, np.log(np.clip(stack, 1e-12, 1.0)), axes=1))
        return mixed / mixed.sum(axis=1, keepdims=True)
    raise KitError(f"unknown --blend '{how}'", hint="choose prob or logprob")


@dataclass
class PredictionRun:
    probs: np.ndarray
    seconds: float
    rows: int


def predict_models(model_dirs: list[Path], pairs: Pairs, spec: CompetitionSpec, max_tokens: int, tta: str = "none",
                   weights: list[float] | None = None, how: str = "prob", backbone: str | None = None,
                   precision: str = "auto", quantize: str | None = None, progress: bool = True) -> PredictionRun:
    start = time.perf_counter()
    prob_sets = []
    for model_dir in model_dirs:
        trained = load_trained(model_dir, backbone=backbone, precision=precision, quantize=quantize)
        prob_sets.append(predict_probs(trained, pairs, spec, max_tokens, tta=tta, progress=progress))
        del trained
    probs = prob_sets[0] if len(prob_sets) == 1 and not weights else blend(prob_sets, weights, how)
    return PredictionRun(probs=probs, seconds=time.perf_counter() - start, rows=len(pairs))


def predict_to_submission(model_dirs: list[Path], test_path: Path, out_path: Path, spec: CompetitionSpec,
                          cfg: PredictConfig, weights: list[float] | None = None, backbone: str | None = None,
                          sample_submission: Path | None = None, overwrite: bool = False,
                          progress: bool = True, budget: Budget | None = None, echo=None) -> dict:
    """test.csv -> validated, sample_submission-ordered CSV. Every input is checked before the first forward pass.

    With a time budget (`budget`, else cfg.time_budget counted from process start) see predict_budget.py."""
    fitted = None
    if cfg.blend.endswith(".json"):  # a blend.json names its own models
        from .blending import read_blend, used_model_dirs

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
    if out_path.is_dir():
        raise KitError(f"{out_path} is a folder", hint="--out takes a file path, e.g. submissions/x.csv")
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
        from .rules import RULES

        rules = fitted.rules if fitted is not None else RULES

    def finish(probs: np.ndarray, overwrite_now: bool):
        nonlocal fired
        if rules is not None:
            from .rules import apply_rules

            probs, fired = apply_rules(probs, pairs, spec, rules)
        return write_submission(pairs.ids, probs, order, spec, out_path, overwrite=overwrite_now)

    if budget is None and cfg.time_budget is not None:
        budget = Budget.from_process_start(parse_duration(cfg.time_budget))
    if budget is not None:
        from .predict_budget import BudgetedPredictor

        report = BudgetedPredictor(model_dirs, pairs, spec, cfg, weights, backbone, budget,
                                   lambda probs: finish(probs, True), echo or (lambda message: None), progress).run()
        result = {"path": str(out_path), **report, "seconds": report["elapsed_s"]}
        return {**result, "rules": fired} if cfg.rules else result
    start = time.perf_counter()
    if fitted is not None:
        from .blending import predict_blend

        probs = predict_blend(fitted, pairs, spec, cfg, backbone, progress=progress)
    else:
        probs = predict_models(model_dirs, pairs, spec, cfg.max_tokens, cfg.tta, weights, cfg.blend, backbone,
                               cfg.precision, cfg.quantize, progress=progress).probs
    report = finish(probs, overwrite)
    result = {"path": str(out_path), "rows": report.rows, "seconds": round(time.perf_counter() - start, 2)}
    return {**result, "rules": fired} if cfg.rules else result
