"""K-fold cross-validation: prompt-grouped stratified folds, one model dir per fold, out-of-fold predictions, cv.json.

    D/fold-<i>/   a train model dir (its holdout_predictions.csv is fold i's out-of-fold part)
    D/oof.csv     id, label, the three probabilities: every training row exactly once
    D/cv.json     folds, per-fold and mean/std log loss, the model dirs (relative to D when inside it)
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from kaggle_kit.atomic import atomic_path, write_text_atomic
from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.config import ColumnMap, TrainConfig
from kaggle_kit.errors import KitError, UsageProblem
from kaggle_kit.metrics import log_loss, metric_score
from kaggle_kit.model.backbone import free_model_memory
from kaggle_kit.model.model_dir import (
    CHECKPOINTS,
    HOLDOUT_FILE,
    METRICS_FILE,
    MODEL_FILE,
    json_has_keys,
    read_model_info,
)

OOF_FILE = "oof.csv"
CV_FILE = "cv.json"
CV_KEYS = ("folds", "rows", "oof_log_loss", "per_fold")  # what every cv.json of ours holds
FOLD_DIR = re.compile(r"^fold-(\d+)$")


def parse_fold_ids(text: str | None, k: int) -> list[int]:
    if not text:
        return list(range(k))
    try:
        ids = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UsageProblem(f"--fold-ids '{text}' is not a comma-separated list of integers") from None
    bad = [i for i in ids if not 0 <= i < k]
    if bad or not ids:
        raise UsageProblem(f"--fold-ids {text}: each id must be in 0..{k - 1}")
    return ids


def fold_dir(out: Path, i: int) -> Path:
    return out / f"fold-{i}"


def _cv_entry(name: str) -> bool:
    return name in (OOF_FILE, CV_FILE) or re.fullmatch(r"fold-\d+", name) is not None


def check_cv_out(out: Path, fold_ids: list[int], k: int, overwrite: bool) -> None:
    """Before any training: D is a new folder or one of cv's own (as train refuses a folder of someone else's files),
    and the folds to run are new (or --overwrite)."""
    if out.exists() and not out.is_dir():
        raise KitError(f"--out {out} is a file, not a folder", hint="choose a new folder")
    foreign = sorted(p.name for p in out.iterdir() if not _cv_entry(p.name)) if out.is_dir() else []
    if foreign:
        raise KitError(f"--out {out} already holds files that kaggle-kit did not write ({', '.join(foreign[:3])}"
                       f"{', ...' if len(foreign) > 3 else ''})", hint="choose a new or empty folder")
    summaries = [name for name in (OOF_FILE, CV_FILE) if (out / name).exists()]
    if summaries and not json_has_keys(out / CV_FILE, CV_KEYS):  # our names alone prove nothing: check cv.json
        raise KitError(f"--out {out} holds {' and '.join(summaries)} but no cv.json written by `cv`: not kaggle-kit's "
                       "files, so never replaced", hint="choose a new or empty folder")
    done = [i for i in fold_ids if (fold_dir(out, i) / MODEL_FILE).exists()]
    if done and not overwrite:
        raise KitError(f"{out} already holds fold(s) {', '.join(map(str, done))}",
                       hint=f"pass --overwrite to train them again, --fold-ids for the others, or merge the folds "
                            f"there with `cv --gather {out} --out {out}`")
    interrupted = [i for i in fold_ids if i not in done and any((fold_dir(out, i) / CHECKPOINTS).glob("checkpoint-*"))]
    if interrupted and not overwrite:  # cv has no --resume: train resumes one fold, with the settings cv gave it
        i = interrupted[0]
        raise KitError(f"{out} holds interrupted fold(s) {', '.join(map(str, interrupted))}",
                       hint=f"continue fold {i} with `train --fold {i}/{k} --resume --out {fold_dir(out, i)}` and the "
                            "same --train and settings, or pass --overwrite to train it again")


def run_cv(train_files: list[Path], out: Path, k: int, cfg: TrainConfig, spec: CompetitionSpec,
           fold_ids: list[int] | None = None, column_maps: dict[str, ColumnMap] | None = None,
           exclude_test: Path | None = None, overwrite: bool = False, echo=print,
           recipe_note: dict | None = None) -> dict:
    """Train the requested folds into D/fold-i, then gather: oof.csv + cv.json once all k folds are in D."""
    from kaggle_kit.training.train import train

    if k < 2:
        raise UsageProblem("--folds must be at least 2")
    if cfg.time_budget is not None:  # counted from start-up, it would leave the later folds no time at all
        raise UsageProblem("[train] time_budget applies to one training run, not to cv's folds in one process",
                           hint="give each fold its own budget: `train --fold i/K --time-budget D` or one train "
                                "kernel per fold")
    fold_ids = fold_ids if fold_ids is not None else list(range(k))
    check_cv_out(out, fold_ids, k, overwrite)
    lead = int(os.environ.get("RANK", "0")) == 0  # under torchrun every rank trains every fold; rank 0 reports
    for i in fold_ids:
        if lead:
            echo(f"fold {i}/{k}: training into {fold_dir(out, i)}")
        result = train(train_files, fold_dir(out, i), replace(cfg, fold=f"{i}/{k}"), spec, column_maps, exclude_test,
                       overwrite=overwrite, recipe_note=recipe_note)
        free_model_memory()  # before the next fold loads its model
        if lead:
            echo(f"fold {i}/{k}: holdout log loss {result.metrics['holdout']['log_loss_calibrated']:.4f}")
    if not lead:  # rank 0 gathers, once, after its last fold
        return {}
    present = [fold_dir(out, i) for i in range(k) if (fold_dir(out, i) / MODEL_FILE).exists()]
    if len(present) < k:
        missing = [i for i in range(k) if not (fold_dir(out, i) / MODEL_FILE).exists()]
        return {"complete": False, "folds_done": k - len(missing), "folds": k, "missing": missing, "out": str(out)}
    return gather(present, out, spec, overwrite=True)


def _fold_of(model_dir: Path) -> tuple[int, int, dict]:
    info = read_model_info(model_dir)
    settings = info.get("train_config") or {}
    fold = settings.get("fold")
    if not fold:
        raise KitError(f"{model_dir} was not trained on a fold (its settings name none)",
                       hint="gather the model dirs of `cv` or of `build-kernel train --fold i/K` kernels")
    i, k = (int(x) for x in fold.split("/"))
    return i, k, settings


def find_fold_dirs(paths: list[Path]) -> list[Path]:
    """Model dirs under pulled kernel outputs: the path itself, PATH/model or PATH/fold-*."""
    found: list[Path] = []
    for path in paths:
        candidates = [path, path / "model", *sorted(p for p in path.glob("fold-*") if p.is_dir())]
        dirs = [c for c in candidates if (c / MODEL_FILE).exists()]
        if not dirs:
            raise KitError(f"{path} holds no trained model dir", hint="pass the folders that `pull` wrote")
        found.extend(dirs)
    return found


# Settings that change what a fold's model sees (besides its rows): folds that differ in one are not one cv run.
INPUT_SETTINGS = ("max_len", "truncate", "prompt_budget", "length_header", "full_swap", "swap_augment")


def _run_key(settings: dict) -> dict:
    """What decides a fold's rows (the seed, the test file excluded, the training files) and its inputs (the
    encoding settings, the backbone). Files and the backbone by name: kernels mount them elsewhere."""
    return {"seed": settings.get("seed"), "exclude_test": Path(settings.get("exclude_test") or "").name,
            "train_files": [Path(p).name for p in settings.get("train_files") or []],
            "backbone": Path(settings.get("backbone") or "").name, **{k: settings.get(k) for k in INPUT_SETTINGS}}


def _same_run(settings: list[dict], dirs: list[Path]) -> None:
    """Folds of one cv share the split and the inputs (optimisation settings may differ)."""
    first = _run_key(settings[0])
    for s, d in zip(settings[1:], dirs[1:]):
        other = _run_key(s)
        differ = [f"{key} ({other[key]!r} vs {first[key]!r})" for key in first if other[key] != first[key]]
        if differ:
            raise KitError(f"{d} was trained with another {', '.join(differ)} than {dirs[0]}",
                           hint="gather folds of one cv run only")


def read_holdout(model_dir: Path, spec: CompetitionSpec) -> pd.DataFrame:
    path = model_dir / HOLDOUT_FILE
    if not path.exists():
        raise KitError(f"{model_dir} has no {HOLDOUT_FILE}", hint="the fold did not finish: train it again")
    frame = pd.read_csv(path, dtype={"id": str})
    targets = [f"target_{c}" for c in spec.label_columns]
    if not all(c in frame.columns for c in targets):  # files of older versions: hard labels only
        for k, c in enumerate(targets):
            frame[c] = (frame["label"] == k).astype(float)
    return frame


def gather(model_dirs: list[Path], out: Path, spec: CompetitionSpec, overwrite: bool = False) -> dict:
    """Fold model dirs -> D/oof.csv and D/cv.json; every fold exactly once, every row exactly once."""
    folds = {}
    settings = []
    for d in model_dirs:
        i, k, s = _fold_of(d)
        if i in folds:
            raise KitError(f"fold {i} appears twice ({folds[i][0]} and {d})", hint="pass each fold once")
        folds[i] = (d, k)
        settings.append(s)
    ks = {k for _, k in folds.values()}
    if len(ks) != 1:
        raise KitError(f"the model dirs come from cv runs with different fold counts ({sorted(ks)})")
    (k,) = ks
    missing = [i for i in range(k) if i not in folds]
    if missing:
        raise KitError(f"fold(s) {', '.join(map(str, missing))} of {k} missing", hint="pull those kernels' outputs too")
    order = [folds[i][0] for i in range(k)]
    _same_run(settings, list(model_dirs))  # settings are in the order the dirs were given
    oof_path, cv_path = out / OOF_FILE, out / CV_FILE
    for path in (oof_path, cv_path):
        if path.exists() and not overwrite:
            raise KitError(f"{path} already exists", hint="pass --overwrite to replace it")
    parts, per_fold = [], []
    targets = [f"target_{c}" for c in spec.label_columns]
    for i, d in enumerate(order):
        frame = read_holdout(d, spec)
        loss = log_loss(frame[targets].to_numpy(float), frame[list(spec.label_columns)].to_numpy(float))
        per_fold.append({"fold": i, "rows": len(frame), "model_dir": _relative(d, out), "log_loss": loss})
        if spec.metric != "log_loss":  # the competition's metric beside log loss
            per_fold[-1][spec.metric] = metric_score(spec.metric, frame[targets].to_numpy(float),
                                                     frame[list(spec.label_columns)].to_numpy(float))
        parts.append(frame.assign(fold=i))
    oof = pd.concat(parts, ignore_index=True)
    dup = oof["id"][oof["id"].duplicated()]
    if len(dup):
        raise KitError(f"id {dup.iloc[0]} is out of fold in two folds: the folds do not partition one training set",
                       hint="gather folds of one cv run only")
    total = _rows_trained_on(order[0])
    if total is not None and total != len(oof):
        raise KitError(f"the folds' holdouts hold {len(oof)} rows but the training set had {total}",
                       hint="gather folds of one cv run only")
    probs, truth = oof[list(spec.label_columns)].to_numpy(float), oof[targets].to_numpy(float)
    losses = [f["log_loss"] for f in per_fold]
    summary = {"folds": k, "rows": len(oof), "oof_log_loss": log_loss(truth, probs),
               "mean_log_loss": float(np.mean(losses)), "std_log_loss": float(np.std(losses)),
               **({f"oof_{spec.metric}": metric_score(spec.metric, truth, probs)} if spec.metric != "log_loss" else {}),
               "per_fold": per_fold, "seed": settings[0].get("seed"), "train_files": settings[0].get("train_files")}
    columns = ["id", "label", *spec.label_columns, *targets, "fold"]
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(oof_path) as tmp:
        oof[columns].to_csv(tmp, index=False, float_format="%.9g")
    write_text_atomic(cv_path, json.dumps(summary, indent=2))
    return {"complete": True, "oof": str(oof_path), "cv": str(cv_path), **summary}


def _rows_trained_on(model_dir: Path) -> int | None:
    try:
        rows = json.loads((model_dir / METRICS_FILE).read_text())["rows"]
        return int(rows["train"]) + int(rows["holdout"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path.resolve())
