"""Pseudo-labels: predict unlabelled pairs with a model or a blend and write them as a soft-label training file."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from kaggle_kit.atomic import atomic_path, check_outputs
from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.config import PredictConfig
from kaggle_kit.data.reading import _parse_frame, check_unique_ids, read_csv_checked
from kaggle_kit.errors import KitError, UsageProblem
from kaggle_kit.model.model_dir import check_model_dir

log = logging.getLogger(__name__)
PROB_FORMAT = "%.6f"  # 6 decimals: rows sum to 1 within 2e-6, far inside the reader's tolerance
OUT_FORMATS = (".csv", ".parquet")  # what `train --train` reads (data/reading.py)


def check_out_format(out_path: Path) -> str:
    """The format --out's extension names (csv or parquet), refused in one line before any work otherwise."""
    suffix = Path(out_path).suffix.lower()
    if suffix not in OUT_FORMATS:
        raise UsageProblem(f"--out {out_path}: pseudo-labels are written as .csv or .parquet (what train reads), not "
                           f"{suffix or 'a name without an extension'}", hint="name it e.g. PL.csv or PL.parquet")
    if suffix == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        raise UsageProblem(f"--out {out_path}: writing parquet needs pyarrow",
                           hint="pip install pyarrow, or write .csv")
    return suffix[1:]


def pseudo_label(model_dirs: list[Path], input_path: Path, out_path: Path, spec: CompetitionSpec, cfg: PredictConfig,
                 weights: list[float] | None = None, min_confidence: float = 0.0, backbone: str | None = None,
                 overwrite: bool = False, progress: bool = True, echo=None) -> dict:
    """PAIRS.csv (test format; extra columns ignored) -> train-format CSV whose winner_* columns are probabilities."""
    from kaggle_kit.inference.placement import split_of
    from kaggle_kit.inference.predict import check_weights
    from kaggle_kit.inference.shard_job import (
        fitted_models,
        plain_models,
        predict_in_shards,
    )
    from kaggle_kit.inference.shards import parts_dir, remove_parts
    from kaggle_kit.model.batching import check_batching

    out_format = check_out_format(out_path)
    check_outputs({"--out": out_path}, [input_path, cfg.blend if cfg.blend.endswith(".json") else None], overwrite)
    if not 0.0 <= min_confidence <= 1.0:
        raise UsageProblem(f"--min-confidence {min_confidence} must be in [0, 1]")
    fitted = None
    if cfg.blend.endswith(".json"):
        from kaggle_kit.inference.blending import read_blend, used_model_dirs

        if model_dirs or weights:
            raise UsageProblem("--blend FILE.json names the models itself", hint="drop --model/--weights")
        fitted = read_blend(Path(cfg.blend))
        model_dirs = used_model_dirs(fitted)
    if not model_dirs:
        raise KitError("no model given", hint="pass --model DIR (repeat to blend) or --blend blend.json")
    if fitted is None and (weights is not None or len(model_dirs) > 1):
        check_weights(weights, len(model_dirs))
    frame = read_csv_checked(input_path, spec.test_columns, allow_extra=True)
    check_unique_ids(input_path, frame, spec.id_column)
    pairs = _parse_frame(input_path, frame, spec)
    if note := check_batching(cfg.batching, [check_model_dir(d)["model_type"] for d in model_dirs]):
        (echo or log.warning)(f"note: {note}")
    if cfg.placement == "split":  # refused now when this machine cannot split, not after loading
        split_of(model_dirs[0], backbone, "split", cfg.quantize, cfg.max_tokens)

    models = fitted_models(fitted, backbone) if fitted is not None else plain_models(model_dirs, weights, cfg.blend,
                                                                                     backbone)
    probs, shards = predict_in_shards("pseudo-label", models, pairs, spec, cfg, input_path, out_path, weights,
                                      overwrite, progress, echo)
    if probs is None:  # a rank other than 0: rank 0 merges and writes
        return {"path": str(out_path), "merged": False, **shards}
    if cfg.rules:
        from kaggle_kit.inference.rules import RULES, apply_rules

        probs, _ = apply_rules(probs, pairs, spec, fitted.rules if fitted is not None else RULES)
    probs = probs / probs.sum(axis=1, keepdims=True)
    confidence = probs.max(axis=1)
    keep = confidence >= min_confidence
    if not keep.any():
        raise KitError(f"no row reached --min-confidence {min_confidence} (the most confident was "
                       f"{confidence.max():.3f}); nothing written", hint="lower --min-confidence")
    out = pd.DataFrame({spec.id_column: frame[spec.id_column]})
    for column in spec.train_extra_columns:  # model names if the pairs carry them, else blank
        out[column] = frame[column] if column in frame.columns else ""
    for column in spec.text_columns:
        out[column] = frame[column]  # the cells as given: the text is not re-serialised
    if spec.soft_labels:
        for k, column in enumerate(spec.label_columns):
            out[column] = probs[:, k]
    else:  # a label column holds one class: the most probable (soft pseudo-labels need one-hot columns)
        out[str(spec.label_column)] = np.asarray(spec.label_values, dtype=object)[probs.argmax(axis=1)]
    out = out.loc[keep, spec.train_columns]
    with atomic_path(out_path) as tmp:
        if out_format == "parquet":  # full float64 probabilities; text cells as given
            out.to_parquet(tmp, index=False)
        else:
            out.to_csv(tmp, index=False, float_format=PROB_FORMAT)
    remove_parts(parts_dir(out_path))
    return {"path": str(out_path), "rows": int(keep.sum()), "rows_in": len(frame), **shards,
            "dropped_low_confidence": int((~keep).sum()), "mean_confidence": float(confidence[keep].mean()),
            "class_mean": [float(x) for x in np.asarray(probs[keep]).mean(axis=0)]}
