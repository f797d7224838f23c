"""Fitted blends: non-negative weights and a temperature minimising OOF log loss, saved as blend.json for predict.

The blend is a weighted geometric mean, p = softmax(sum_i w_i log p_i / T): convex in w, so the fit is reliable, and
it starts from (and falls back to) the best single model, so it is never worse than that model on the same rows (the
in-sample figure). The honest figure is cross-validated: weights and temperature fitted without the rows they score;
the fitted blend is kept only when that figure beats the best single model, and a rule only when it helps there.
The members' OOF probabilities come from single fold models, so predict applies the blend to each fold's models and
averages the blended probabilities (it never feeds the blend averaged, softer inputs it was not fitted on)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kaggle_kit.atomic import refuse_overwrite, write_text_atomic
from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.errors import DataError, KitError, UsageProblem
from kaggle_kit.metrics import EPS, fit_temperature, log_loss, metric_score, softmax

BLEND_FORMAT = 1
BLEND_KIND = "kaggle-kit blend"
MIN_ROWS = 10  # fewer common OOF rows than this cannot say anything about weights
CV_FOLDS = 5  # parts of the OOF rows for the cross-validated blend figure


@dataclass
class Member:
    """One blended model: its OOF file and the model dirs whose averaged probabilities it stands for at predict."""

    name: str
    oof: Path
    model_dirs: list[Path]
    weight: float = 0.0
    oof_log_loss: float = math.nan
    backbone_name: str | None = None  # the folder name of the backbone its model dirs were trained on
    backbone_source: str | None = None  # where a kernel finds it: a dataset owner/slug or a Kaggle Model handle
    backbone: str | None = None  # set where it runs (a kernel): the resolved backbone folder


@dataclass
class Blend:
    members: list[Member]
    temperature: float = 1.0
    rules: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)


def log_probs(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), EPS, 1.0))


def combine(prob_sets: list[np.ndarray], weights: list[float], temperature: float) -> np.ndarray:
    """softmax(sum_i w_i log p_i / T), with the weights summing to 1."""
    z = sum(w * log_probs(p) for w, p in zip(weights, prob_sets))
    return softmax(z, temperature)


def combine_folds(member_sets: list[list[np.ndarray]], weights: list[float], temperature: float) -> np.ndarray:
    """The blend as fitted (on single fold models' probabilities) applied fold by fold, then averaged: member i's
    fold j is its (j mod its fold count)-th model. One model per member is plain `combine`."""
    k = max(len(s) for s in member_sets)
    blended = [combine([s[j % len(s)] for s in member_sets], weights, temperature) for j in range(k)]
    return blended[0] if k == 1 else np.mean(blended, axis=0)


def cross_validated_blend(prob_sets: list[np.ndarray], targets: np.ndarray, folds: int = CV_FOLDS,
                          seed: int = 0) -> np.ndarray:
    """Each row blended with weights and a temperature fitted on the other parts' rows (out-of-fold blend)."""
    n = len(targets)
    part = np.random.default_rng(seed).permutation(n) % min(folds, n)
    out = np.zeros_like(np.asarray(prob_sets[0], dtype=np.float64))
    for k in np.unique(part):
        held = part == k
        weights, temperature, _ = fit_weights([p[~held] for p in prob_sets], targets[~held])
        out[held] = combine([p[held] for p in prob_sets], weights, temperature)
    return out


def fit_weights(prob_sets: list[np.ndarray], targets: np.ndarray) -> tuple[list[float], float, dict]:
    """Non-negative weights (summing to 1) and a temperature minimising log loss; never worse than the best single."""
    from scipy.optimize import minimize

    feats = np.stack([log_probs(p) for p in prob_sets])  # models x rows x classes
    targets = np.asarray(targets, dtype=np.float64)

    def loss_and_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = np.tensordot(w, feats, axes=1)
        p = softmax(z)
        loss = float(-(targets * np.log(np.clip(p, EPS, 1.0))).sum(axis=1).mean())
        grad = np.tensordot(feats, p - targets, axes=([1, 2], [0, 1])) / len(targets)
        return loss, grad

    singles = [log_loss(targets, p) for p in prob_sets]
    best = int(np.argmin(singles))
    t_best = fit_temperature(feats[best], targets)  # softmax(log p / T): temperature on the model's probabilities
    start = np.zeros(len(prob_sets))
    start[best] = 1.0 / t_best
    result = minimize(loss_and_grad, start, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * len(prob_sets))
    raw = result.x if result.x.sum() > 0 else start
    fitted = loss_and_grad(raw)[0]
    if not fitted <= singles[best]:  # the guarantee, whatever the optimiser did
        raw, fitted = np.eye(len(prob_sets))[best], singles[best]
    total = float(raw.sum())
    weights = [float(w / total) for w in raw]
    temperature = 1.0 / total
    report = {"single_log_loss": singles, "best_single": best, "blend_log_loss": fitted}
    return weights, temperature, report


def choose_blend(prob_sets: list[np.ndarray], targets: np.ndarray) -> tuple[list[float], float, dict, np.ndarray]:
    """(weights, temperature, report, cross-validated probabilities): the fitted blend when its cross-validated
    log loss beats the best single model's, else that model alone at temperature 1 (its OOF probabilities are
    already calibrated out of sample)."""
    weights, temperature, fit = fit_weights(prob_sets, targets)
    singles, best = fit["single_log_loss"], fit["best_single"]
    cv_probs = cross_validated_blend(prob_sets, targets)
    cv_loss = log_loss(targets, cv_probs)
    kept = cv_loss < singles[best]
    if not kept:
        weights, temperature, cv_probs = [float(k == best) for k in range(len(prob_sets))], 1.0, prob_sets[best]
    report = {**fit, "blend_log_loss": fit["blend_log_loss"] if kept else singles[best], "cv_blend_log_loss": cv_loss,
              "cv_folds": CV_FOLDS, "fitted_blend_kept": kept}
    return weights, temperature, report, cv_probs


# ---- reading OOF files and naming the models behind them
def read_oof(path: Path, spec: CompetitionSpec) -> pd.DataFrame:
    """id, the probabilities and the targets (target_* columns, else the one-hot of `label`)."""
    from kaggle_kit.data.reading import SOFT_TOLERANCE, check_unique_ids, read_csv_checked

    frame = read_csv_checked(path, ["id", *spec.label_columns], allow_extra=True)
    check_unique_ids(path, frame, "id")
    targets = [f"target_{c}" for c in spec.label_columns]
    out = pd.DataFrame({"id": frame["id"].astype(str)})
    try:
        for c in spec.label_columns:
            out[c] = frame[c].astype(float)
        if all(c in frame.columns for c in targets):
            for c in targets:
                out[c] = frame[c].astype(float)
        elif "label" in frame.columns:
            label = frame["label"].astype(int)
            outside = ~label.between(0, spec.num_labels - 1)
            if outside.any():  # a label no class has would be a target row of zeros (a log loss of -0.0000)
                raise DataError(f"{path}: {int(outside.sum())} row(s) with a label outside 0..{spec.num_labels - 1} "
                                f"({', '.join(spec.classes)}), e.g. {frame['label'][outside].iloc[0]} at id "
                                f"{out['id'][outside].iloc[0]}", hint="pass an OOF file of this competition")
            for k, c in enumerate(targets):
                out[c] = (label == k).astype(float)
        else:
            raise DataError(f"{path}: no label or target_* columns", hint="pass an oof.csv written by `kaggle-kit cv`")
    except ValueError as exc:
        raise DataError(f"{path}: non-numeric probabilities or labels ({exc})") from None
    values = out.drop(columns="id").to_numpy(dtype=float)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():  # a NaN would make every loss "nan" and blend.json not JSON
        raise DataError(f"{path}: {int(bad.sum())} row(s) with NaN or infinite probabilities or targets "
                        f"(first id {out['id'][bad].iloc[0]})", hint="regenerate the OOF file")
    for kind, columns in (("probabilities", list(spec.label_columns)), ("targets", targets)):
        rows = out[columns].to_numpy(dtype=float)
        bad = ~(((rows >= 0) & (rows <= 1)).all(axis=1) & (np.abs(rows.sum(axis=1) - 1) <= SOFT_TOLERANCE))
        if bad.any():
            raise DataError(f"{path}: {int(bad.sum())} row(s) whose {kind} are not in [0, 1] summing to 1 over "
                            f"{', '.join(columns)} (first id {out['id'][bad].iloc[0]})",
                            hint="pass an OOF file of this competition's classes")
    return out


def models_behind(oof: Path) -> list[Path]:
    """The model dirs an OOF file came from: a cv folder's folds (cv.json), or the model dir of a holdout file."""
    from kaggle_kit.model.model_dir import MODEL_FILE
    from kaggle_kit.training.cv import CV_FILE

    folder = oof.parent
    if (folder / CV_FILE).exists():
        try:
            named = [str(f["model_dir"]) for f in json.loads((folder / CV_FILE).read_text())["per_fold"]]
        except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"{folder / CV_FILE} is corrupt ({exc})", hint="run `kaggle-kit cv --gather` again, or "
                            "pass --oof FILE=MODEL_DIR[,MODEL_DIR...]") from None
        return [Path(d) if Path(d).is_absolute() else folder / d for d in named]
    if (folder / MODEL_FILE).exists():
        return [folder]
    raise UsageProblem(f"cannot tell which model dirs made {oof} (no cv.json or model beside it)",
                       hint="pass --oof FILE=MODEL_DIR[,MODEL_DIR...]")


def parse_member(text: str) -> Member:
    """'cvA/oof.csv' or 'preds.csv=dirA,dirB' -> a Member (model dirs checked later, before any inference)."""
    path, sep, dirs = text.partition("=")
    oof = Path(path)
    if not oof.is_file():
        raise UsageProblem(f"--oof {path}: file not found")
    model_dirs = [Path(d) for d in dirs.split(",") if d] if sep else models_behind(oof)
    name = oof.parent.name if oof.name in ("oof.csv", "holdout_predictions.csv") else oof.stem
    return Member(name=name, oof=oof, model_dirs=model_dirs)


def fit_blend(members: list[Member], spec: CompetitionSpec, train_files: list[Path] | None = None,
              column_maps=None, backbone_sources: dict[str, str] | None = None) -> Blend:
    """Align the OOF files on their common ids, fit weights + temperature, then test each rule on the blend."""
    from kaggle_kit.inference.rules import evaluate_rules
    from kaggle_kit.model.model_dir import check_model_dir, read_model_info

    if not members:
        raise UsageProblem("no --oof given")
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        for k, m in enumerate(members):
            m.name = f"{m.name}-{k}"
    for m in members:
        for d in m.model_dirs:
            check_model_dir(d)
        m.backbone_name = Path(read_model_info(m.model_dirs[0])["backbone"]).name
    sources = dict(backbone_sources or {})
    unknown = sorted(set(sources) - {m.backbone_name for m in members})
    if unknown:
        raise UsageProblem(f"--backbone-source {unknown[0]}: no member was trained on a backbone of that name",
                           hint=f"the members' backbones: {', '.join(sorted({m.backbone_name for m in members}))}")
    for m in members:
        m.backbone_source = sources.get(m.backbone_name)
    frames = [read_oof(m.oof, spec) for m in members]
    common = set(frames[0]["id"])
    for f in frames[1:]:
        common &= set(f["id"])
    if len(common) < MIN_ROWS:
        raise KitError(f"the OOF files share only {len(common)} id(s)",
                       hint="blend OOF files of the same training rows")
    ids = sorted(common)
    aligned = [f.set_index("id").loc[ids] for f in frames]
    targets = aligned[0][[f"target_{c}" for c in spec.label_columns]].to_numpy(float)
    prob_sets = [a[list(spec.label_columns)].to_numpy(float) for a in aligned]
    weights, temperature, fit, cv_probs = choose_blend(prob_sets, targets)
    singles, best = fit["single_log_loss"], fit["best_single"]
    for m, w, loss in zip(members, weights, singles):
        m.weight, m.oof_log_loss = w, loss
    report = {"rows": len(ids), "rows_per_file": {m.name: len(f) for m, f in zip(members, frames)},
              **{k: fit[k] for k in ("blend_log_loss", "cv_blend_log_loss", "cv_folds", "fitted_blend_kept")},
              **({f"blend_{spec.metric}": metric_score(spec.metric, targets, combine(prob_sets, weights, temperature))}
                 if spec.metric != "log_loss" else {}),
              "figures": "blend_log_loss: in-sample (weights fitted on these rows); cv_blend_log_loss: each row "
                         "blended with weights fitted without it; rules judged on the cross-validated blend",
              "best_single": {"name": members[best].name, "log_loss": singles[best]}}
    rules: list[str] = []
    if not spec.rules_rewarded:
        report["rules"] = f"not applied ({spec.slug} scores {spec.metric_name} over {spec.num_labels} classes)"
    elif train_files:
        pairs = _oof_pairs(ids, train_files, spec, column_maps)
        report["rules"] = evaluate_rules(cv_probs, targets, pairs, spec)
        rules = [r["rule"] for r in report["rules"] if r["kept"]]
    else:
        report["rules"] = "not evaluated (pass --train to test the rules on the OOF rows)"
    return Blend(members=members, temperature=temperature, rules=rules, report=report)


def _oof_pairs(ids: list[str], train_files: list[Path], spec: CompetitionSpec, column_maps):
    from kaggle_kit.data.reading import load_training_files

    pairs = load_training_files(train_files, spec, column_maps).pairs
    where = {i: k for k, i in enumerate(pairs.ids)}
    missing = [i for i in ids if i not in where]
    if missing:
        raise DataError(f"{len(missing)} OOF id(s) are not in --train (e.g. {missing[0]})",
                        hint="pass the training file(s) the OOF predictions were made on")
    return pairs.subset([where[i] for i in ids])


# ---- blend.json
def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path.resolve())


def save_blend(blend: Blend, out: Path, overwrite: bool = False) -> None:
    refuse_overwrite(out, overwrite)
    base = out.parent
    data = {
        "format": BLEND_FORMAT, "kind": BLEND_KIND,
        "method": "mean over folds j of softmax(sum_i weight_i * log p_ij / temperature); p_ij: member i's j-th "
                  "model dir (j mod its count)",
        "temperature": blend.temperature,
        "members": [{"name": m.name, "weight": m.weight, "oof_log_loss": m.oof_log_loss, "oof": _rel(m.oof, base),
                     "model_dirs": [_rel(d, base) for d in m.model_dirs], "backbone": m.backbone_name,
                     "backbone_source": m.backbone_source} for m in blend.members],
        "rules": blend.rules, "report": blend.report,
    }
    write_text_atomic(out, json.dumps(data, indent=2, allow_nan=False))  # strict JSON: never a bare NaN


def _number(value) -> float:
    """A JSON number (Python's json also reads the non-standard Infinity and NaN: blend_problem judges those)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def _text(value) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a path")
    return value


def read_blend(path: Path) -> Blend:
    """blend.json -> Blend, every used member's model dirs checked (paths relative to the file) before inference."""
    from kaggle_kit.model.model_dir import check_model_dir

    if not path.is_file():
        raise UsageProblem(f"--blend {path}: file not found", hint="write one with `kaggle-kit blend`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("kind") != BLEND_KIND or data.get("format") != BLEND_FORMAT:
            raise ValueError("not a kaggle-kit blend of a known format")
        members = [Member(name=str(m["name"]), oof=Path(m.get("oof", "")), weight=_number(m["weight"]),
                          model_dirs=[path.parent / _text(d) for d in m["model_dirs"]], backbone_name=m.get("backbone"),
                          backbone_source=m.get("backbone_source")) for m in data["members"]]
        temperature = _number(data["temperature"])
        rules = list(data.get("rules", []))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KitError(f"{path} is not a valid blend.json ({exc})",
                       hint="write it again with `kaggle-kit blend`") from None
    problem = blend_problem(members, temperature, rules)
    if problem:
        raise KitError(f"{path} is not a valid blend.json ({problem})", hint="write it again with `kaggle-kit blend`")
    for m in members:
        if m.weight > 0:
            for d in m.model_dirs:
                if not d.exists():
                    raise KitError(f"{path}: member {m.name} names {d}, which does not exist",
                                   hint="keep the model dirs where blend.json says (paths are relative to it)")
                check_model_dir(d)
    return Blend(members=members, temperature=temperature, rules=rules, report=data.get("report", {}))


def blend_problem(members: list[Member], temperature: float, rules: list[str]) -> str | None:
    """What makes a read blend unusable, or None: every number finite and in range, every used member runnable (an
    infinite weight would turn each row into the class prior, a NaN one drop its member, an infinite temperature give
    1/K everywhere)."""
    from kaggle_kit.inference.rules import RULES

    if not members:
        return "no members"
    for m in members:
        if not math.isfinite(m.weight) or m.weight < 0:
            return f"member {m.name}: weight {m.weight} must be a finite number >= 0"
        if m.weight > 0 and not m.model_dirs:
            return f"member {m.name}: model_dirs is empty, so it cannot be predicted"
    if sum(m.weight for m in members) <= 0:
        return "every weight is 0"
    if not math.isfinite(temperature) or not temperature > 0:
        return f"temperature {temperature} must be a finite number > 0"
    unknown = [r for r in rules if r not in RULES]
    return f"unknown rule(s) {', '.join(map(str, unknown))} (known: {', '.join(RULES)})" if unknown else None


def used_model_dirs(blend: Blend) -> list[Path]:
    return [d for m in blend.members if m.weight > 0 for d in m.model_dirs]
