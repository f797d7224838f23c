"""The length side head: a small multinomial logistic regression on the holdout that reads the classifier's logits
beside each response's full length and markdown structure (what truncation hides from the model).

Fitted by train after the holdout pass, kept in model.json, and applied wherever logits become probabilities
(predict, budgeted predict, kernels), so every path scores rows alike. It replaces temperature scaling only when
it beats it in cross-validation on the holdout; otherwise train records why and keeps the temperature."""

from __future__ import annotations

import numpy as np

from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.data.length_features import text_stats
from kaggle_kit.data.reading import Pairs
from kaggle_kit.metrics import cross_fitted_temperature, fit_temperature, log_loss, softmax

CV_FOLDS = 5
MIN_ROWS = 100  # fewer holdout rows than this cannot fit 16 weights per class and check them too
L2_C = 0.5  # sklearn's inverse regularisation strength on standardised inputs
N_FEATURES = 13  # pair_features' columns


def pair_features(pairs: Pairs, spec: CompetitionSpec) -> np.ndarray:
    """Per row: log(1 + count) of each response's words, lines, list items, headers and code blocks, A's words
    minus B's (signed and absolute), and the prompt's words; all from the full, untruncated text."""
    a, b = spec.swap_pairs[0]
    prompt = next(f for f in spec.text_columns if f not in (a, b))
    rows = []
    for r in range(len(pairs)):
        sa, sb, sp = (np.log1p(list(text_stats("\n\n".join(pairs.texts[f][r])).values()))
                      for f in (a, b, prompt))
        diff = sa[0] - sb[0]
        rows.append([*sa, *sb, diff, abs(diff), sp[0]])
    return np.asarray(rows, dtype=np.float64).reshape(len(pairs), N_FEATURES)


def _inputs(logits: np.ndarray, features: np.ndarray) -> np.ndarray:
    return np.hstack([np.asarray(logits, dtype=np.float64), features])


def _fit(x: np.ndarray, targets: np.ndarray, seed: int) -> dict:
    """Standardise, then a multinomial logistic regression; soft targets become per-class sample weights."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    n, k = targets.shape
    rows = np.repeat(np.arange(n), k)
    classes = np.tile(np.arange(k), n)
    weights = targets.reshape(-1)
    keep = weights > 0
    model = LogisticRegression(C=L2_C, max_iter=2000, random_state=seed)
    model.fit(z[rows[keep]], classes[keep], sample_weight=weights[keep])
    coef_rows, intercept_rows = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # sklearn keeps one row (the second class's log-odds) for two classes
        coef_rows = np.vstack([-model.coef_[0] / 2, model.coef_[0] / 2])
        intercept_rows = np.array([-model.intercept_[0] / 2, model.intercept_[0] / 2])
    coef, intercept = np.zeros((k, x.shape[1])), np.zeros(k)  # a class absent from these rows keeps logit 0
    coef[model.classes_], intercept[model.classes_] = coef_rows, intercept_rows
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": coef.tolist(), "intercept": intercept.tolist()}


def head_problem(head: object, num_labels: int) -> str | None:
    """Why a stored side head cannot be applied (None when it can): keys, shapes, finite numbers."""
    width = num_labels + N_FEATURES
    try:
        shapes = {key: np.asarray(head[key], dtype=np.float64) for key in ("mean", "scale", "coef", "intercept")}
    except (TypeError, KeyError, ValueError, IndexError):
        return "side_head lacks mean/scale/coef/intercept numbers"
    expected = {"mean": (width,), "scale": (width,), "coef": (num_labels, width), "intercept": (num_labels,)}
    for key, shape in expected.items():
        if shapes[key].shape != shape:
            return f"side_head {key} has shape {shapes[key].shape}, expected {shape}"
        if not np.isfinite(shapes[key]).all():
            return f"side_head {key} holds non-finite numbers"
    if (shapes["scale"] <= 0).any():
        return "side_head scale holds numbers <= 0"
    return None


def head_probs(head: dict, logits: np.ndarray, features: np.ndarray) -> np.ndarray:
    z = (_inputs(logits, features) - np.asarray(head["mean"])) / np.asarray(head["scale"])
    return softmax(z @ np.asarray(head["coef"]).T + np.asarray(head["intercept"]))


def fit_side_head(logits: np.ndarray, features: np.ndarray, targets: np.ndarray,
                  seed: int) -> tuple[dict | None, np.ndarray | None, dict]:
    """(head, its cross-validated holdout probabilities, report) when the head's cross-validated holdout log loss
    beats temperature scaling's; else (None, None, report)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    targets = np.asarray(targets, dtype=np.float64)
    n = len(targets)
    if n < MIN_ROWS:
        return None, None, {"used": False, "reason": f"{n} holdout rows; the side head needs at least {MIN_ROWS}"}
    if (targets > 0).sum(axis=0).min() < CV_FOLDS:
        return None, None, {"used": False, "reason": f"a class has fewer than {CV_FOLDS} holdout rows"}
    # Hard labels: stratified, so every fold's fit part holds every class. Soft rows spread weight over the classes.
    labels = targets.argmax(axis=1)
    stratify = np.bincount(labels, minlength=targets.shape[1]).min() >= CV_FOLDS
    splitter = (StratifiedKFold if stratify else KFold)(CV_FOLDS, shuffle=True, random_state=seed)
    head_cv, temperature_cv = np.zeros_like(targets), np.zeros_like(targets)
    x = _inputs(logits, features)
    for fit, held in splitter.split(np.zeros(n), labels):
        head_cv[held] = head_probs(_fit(x[fit], targets[fit], seed), logits[held], features[held])
        temperature_cv[held] = softmax(logits[held], fit_temperature(logits[fit], targets[fit]))
    head_loss, temperature_loss = log_loss(targets, head_cv), log_loss(targets, temperature_cv)
    report = {"cv_log_loss": head_loss, "temperature_cv_log_loss": temperature_loss, "folds": CV_FOLDS, "rows": n}
    if not head_loss < temperature_loss:
        return None, None, {**report, "used": False, "reason": f"cross-validated {head_loss:.4f} is no better than "
                                                               f"temperature scaling's {temperature_loss:.4f}"}
    return _fit(x, targets, seed), head_cv, {**report, "used": True}


def fit_calibration(logits: np.ndarray, targets: np.ndarray, features: np.ndarray | None, seed: int,
                    temperature_scaling: bool = True) -> tuple[float, dict | None, np.ndarray, dict | None]:
    """How held-out logits become probabilities: a temperature, kept only when its cross-fitted probabilities beat
    none, and (given the rows' pair_features) the side head, kept when it beats temperature scaling. Returns
    (temperature, head, the rows' out-of-sample probabilities, the head's report or None)."""
    temperature, probs = 1.0, softmax(logits)
    if temperature_scaling:
        crossfit = cross_fitted_temperature(logits, targets, seed=seed)
        if log_loss(targets, crossfit) < log_loss(targets, probs):
            temperature, probs = fit_temperature(logits, targets), crossfit
    if features is None:
        return temperature, None, probs, None
    head, head_cv_probs, report = fit_side_head(logits, features, targets, seed)
    return temperature, head, probs if head is None else head_cv_probs, report


def describe(report: dict) -> str:
    if report.get("used"):
        return (f"length side head used: cross-validated holdout log loss {report['cv_log_loss']:.4f} vs "
                f"{report['temperature_cv_log_loss']:.4f} with temperature scaling alone")
    return f"length side head not used: {report['reason']}"

