"""`average`: one model dir from several (every fold of a cv run): the members' weights averaged (model.averaging),
their tokenizer, and a calibration refitted with the averaged model's own logits on the members' holdout rows.

Those rows are out of fold for one member each but were trained on by the others, so they are not held out from the
average: the model info says so beside what the calibration was fitted on."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from kaggle_kit import __version__
from kaggle_kit.atomic import write_text_atomic
from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.errors import KitError, UsageProblem
from kaggle_kit.metrics import log_loss, softmax
from kaggle_kit.model.averaging import (
    Member,
    average_record,
    average_weights,
    parse_weights,
    read_members,
    save_adapter,
)
from kaggle_kit.model.model_dir import (
    ADAPTER_DIR,
    FORMAT_VERSION,
    METRICS_FILE,
    MODEL_FILE,
    TOKENIZER_DIR,
    prepare_out_dir,
    read_model_info,
    recorded_prior,
    tokenizer_dir,
)

# Holdout rows the calibration is refitted on (a seeded sample when the members hold more): enough for a temperature
# and the side head, one inference pass over a few thousand rows rather than over the whole training set.
CALIBRATION_ROWS = 2000
# Members' info entries the averaged model shares (read_members checked they agree where it matters).
SHARED_INFO = ("competition", "backbone", "model_type", "num_labels", "label_columns", "encoding", "trained_precision",
               "max_len", "recipe", "attn_implementation")


def member_dirs(paths: list[Path]) -> list[Path]:
    """Model dirs as given (or a pulled kernel output's model/); a cv --out folder stands for all its folds, which
    must all be there."""
    from kaggle_kit.training.cv import find_fold_dirs

    found: list[Path] = []
    for path in paths:
        dirs = find_fold_dirs([path])
        if all(d.parent == path and d.name.startswith("fold-") for d in dirs):  # a cv --out folder
            _check_all_folds(path, dirs)
        found.extend(dirs)
    return found


def _check_all_folds(cv_dir: Path, dirs: list[Path]) -> None:
    folds = [(read_model_info(d).get("train_config") or {}).get("fold") or "" for d in dirs]
    counts = {f.split("/")[-1] for f in folds}
    if "" in folds or len(counts) != 1:
        raise KitError(f"{cv_dir}: its fold-* dirs are not the folds of one cv run ({', '.join(folds)})",
                       hint="pass the model dirs to average one by one")
    k = int(counts.pop())
    missing = sorted(set(range(k)) - {int(f.split("/")[0]) for f in folds})
    if missing:
        raise KitError(f"{cv_dir}: fold(s) {', '.join(map(str, missing))} of {k} are missing",
                       hint="train them first, or pass the fold dirs to average only those")


def _check_out(out: Path, members: list[Path]) -> None:
    """--out is no member and holds none (--overwrite would remove a member's files)."""
    target = out.resolve()
    for d in members:
        d = d.resolve()
        if d == target or target in d.parents or d in target.parents:
            raise UsageProblem(f"--out {out} is, holds or lies inside a member ({d})",
                               hint="write the averaged model to a folder of its own")


def average_models(paths: list[Path], out: Path, spec: CompetitionSpec, weights_text: str | None = None,
                   overwrite: bool = False, column_maps=None, backbone: str | None = None, progress: bool = True,
                   echo=print) -> dict:
    """Check every member, then average, write a staging dir beside --out, refit its calibration, move it in."""
    dirs = member_dirs(paths)
    weights = parse_weights(weights_text, len(dirs))
    _check_out(out, dirs)
    members = read_members(dirs, weights)  # every refusal above and here comes before any weight is read
    prepare_out_dir(out, resume=False, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.average-", dir=out.parent))
    try:
        echo(f"averaging {len(members)} models: " + ", ".join(f"{m.model_dir} x {m.weight:.3f}" for m in members))
        tensors, rank = average_weights(members)
        save_adapter(members, tensors, rank, staging / ADAPTER_DIR)
        del tensors
        shutil.copytree(tokenizer_dir(members[0].model_dir), staging / TOKENIZER_DIR)
        info = _info(members, rank)
        write_text_atomic(staging / MODEL_FILE, json.dumps(info, indent=2, default=str))  # what the refit loads
        calibration = refit_calibration(staging, members, spec, column_maps, backbone, progress, echo)
        fitted = {k: calibration.pop(k) for k in ("temperature", "side_head")}
        info = {**info, **fitted, "calibration": calibration}
        write_text_atomic(staging / METRICS_FILE, json.dumps(_metrics(members, calibration), indent=2))
        write_text_atomic(staging / MODEL_FILE, json.dumps(info, indent=2, default=str))
        out.mkdir(parents=True, exist_ok=True)
        for entry in sorted(os.listdir(staging), key=lambda name: name == MODEL_FILE):  # the info file last
            os.replace(staging / entry, out / entry)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"out": str(out), "members": info["average"]["members"], "rank": rank,
            "temperature": info["temperature"], "side_head": info["side_head"] is not None,
            "calibration": calibration}


def _info(members: list[Member], rank: int) -> dict:
    first = members[0].info
    return {"format": FORMAT_VERSION, **{k: first[k] for k in SHARED_INFO if k in first},
            "kaggle_kit_version": __version__, "temperature": 1.0, "side_head": None, "stopped_early": False,
            # the first member's settings, but no fold: cv --gather must not take the average for a fold
            "train_config": {**(first.get("train_config") or {}), "fold": None},
            "average": average_record(members, rank), "calibration": {"fitted_on": None, "reason": "not fitted yet"}}


def _metrics(members: list[Member], calibration: dict) -> dict:
    """The weighted class prior (predict's answer for a row the model cannot score) and what was calibrated."""
    n = int(members[0].info["num_labels"])
    prior = sum(m.weight * recorded_prior(m.model_dir, n) for m in members)
    return {"class_prior": (prior / prior.sum()).tolist(), "averaged_members": len(members),
            "calibration": calibration}


def _identity(reason: str) -> dict:
    return {"temperature": 1.0, "side_head": None, "fitted_on": None, "reason": reason}


def refit_calibration(model_dir: Path, members: list[Member], spec: CompetitionSpec, column_maps=None,
                      backbone: str | None = None, progress: bool = True, echo=print) -> dict:
    """Temperature (and the side head, where the members used one) fitted on the averaged model's logits for the
    members' holdout rows, read again from the training files; identity, with the reason, where those are not here."""
    from kaggle_kit.data.reading import load_training_files
    from kaggle_kit.inference.predict import encoder_for
    from kaggle_kit.model.batching import predict_logits
    from kaggle_kit.model.model_dir import load_trained
    from kaggle_kit.model.side_head import fit_calibration, pair_features
    from kaggle_kit.training.cv import read_holdout

    settings = members[0].info.get("train_config") or {}
    try:
        holdout = pd.concat([read_holdout(m.model_dir, spec) for m in members], ignore_index=True)
    except KitError as exc:
        return _identity(f"a member's holdout rows are unknown ({exc.message})")
    holdout = holdout.drop_duplicates("id")
    files = [Path(p) for p in settings.get("train_files") or []]
    absent = [str(p) for p in files if not p.is_file()]
    if not files or absent:
        return _identity(f"the training file(s) {', '.join(absent) or '(none recorded)'} are not here")
    seed = int(settings.get("seed") or 0)
    if len(holdout) > CALIBRATION_ROWS:
        holdout = holdout.sample(CALIBRATION_ROWS, random_state=seed)
    pairs = load_training_files(files, spec, column_maps).pairs
    where = {i: k for k, i in enumerate(pairs.ids)}
    missing = [i for i in holdout["id"] if i not in where]
    if missing:
        return _identity(f"{len(missing)} holdout id(s) are not in the training file(s) (e.g. {missing[0]})")
    pairs = pairs.subset([where[i] for i in holdout["id"]])
    targets = holdout[[f"target_{c}" for c in spec.label_columns]].to_numpy(float)
    try:
        trained = load_trained(model_dir, backbone)
    except KitError as exc:
        return _identity(f"the averaged model cannot be loaded here ({exc.message})")
    echo(f"calibration: the averaged model predicts {len(pairs)} of the members' holdout rows")
    encoder = encoder_for(trained)
    tokens = int(settings.get("eval_batch_size") or 16) * encoder.spec.max_len
    logits = predict_logits(trained.model, trained.tokenizer.pad_token_id, encoder.encode(pairs, progress=progress),
                            tokens, spec.num_labels, progress).astype(np.float64)
    wants_head = any(m.info.get("side_head") is not None for m in members)
    features = pair_features(pairs, spec) if wants_head else None
    temperature, head, probs, head_report = fit_calibration(logits, targets, features, seed,
                                                            bool(settings.get("calibrate", True)))
    return {"temperature": temperature, "side_head": head,
            "fitted_on": f"{len(pairs)} of the members' holdout rows (each member's out-of-fold rows, read again "
                         "from the training files)",
            "rows": len(pairs), "held_out": False,
            "note": "each row was trained on by the other members, so these rows are not held out from the average: "
                    "the fitted figures are optimistic",
            "log_loss_uncalibrated": log_loss(targets, softmax(logits)),
            "log_loss_calibrated": log_loss(targets, probs),
            "side_head_report": head_report}
