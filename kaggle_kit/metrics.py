"""The competition metric and the small statistics around it, in numpy alone (plots and reports need no torch)."""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-15


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def as_targets(labels: np.ndarray, num_labels: int) -> np.ndarray:
    """Class indices -> one-hot rows; probability rows (soft labels) pass through."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return labels.astype(np.float64)
    return np.eye(num_labels)[labels.astype(int)]


def log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    """Multi-class log loss as Kaggle scores it: rows renormalised after clipping to [eps, 1 - eps]."""
    probs = np.clip(np.asarray(probs, dtype=np.float64), EPS, 1 - EPS)
    probs = probs / probs.sum(axis=1, keepdims=True)
    targets = as_targets(labels, probs.shape[1])
    return float(-(targets * np.log(probs)).sum(axis=1).mean())


def accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    targets = as_targets(labels, np.asarray(probs).shape[1])
    return float((np.asarray(probs).argmax(1) == targets.argmax(1)).mean())


METRICS = {"log_loss": log_loss, "accuracy": accuracy}


def metric_score(metric: str, labels: np.ndarray, probs: np.ndarray) -> float:
    """A competition's metric (CompetitionSpec.metric) on probability rows; accuracy scores each row's argmax."""
    return METRICS[metric](labels, probs)


def class_prior(labels: np.ndarray, num_labels: int) -> np.ndarray:
    """Class frequencies (mean target row for soft labels)."""
    return as_targets(labels, num_labels).mean(axis=0)


def prior_log_loss(prior: np.ndarray, labels: np.ndarray) -> float:
    """The score of predicting the class prior for every row: the baseline a model must beat."""
    return log_loss(labels, np.tile(prior, (len(labels), 1)))


def _golden_min(f, lo: float, hi: float, tol: float = 1e-4) -> float:
    ratio = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = f(d)
    return (a + b) / 2


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in [0.05, 20] that minimises log loss (1.0 when it does not help)."""
    loss_at = lambda log_t: log_loss(labels, softmax(logits, math.exp(log_t)))  # noqa: E731
    best = math.exp(_golden_min(loss_at, math.log(0.05), math.log(20.0)))
    return best if loss_at(math.log(best)) < loss_at(0.0) else 1.0


CROSS_FIT_FOLDS = 5


def cross_fitted_temperature(logits: np.ndarray, labels: np.ndarray, folds: int = CROSS_FIT_FOLDS,
                             seed: int = 0) -> np.ndarray:
    """Each row's probabilities at a temperature fitted without that row (on the other folds' rows): calibrated
    probabilities whose log loss is an out-of-sample figure, unlike softmax at a temperature fitted on all rows."""
    logits = np.asarray(logits, dtype=np.float64)
    n = len(logits)
    folds = min(folds, n)
    if folds < 2:
        return softmax(logits)
    part = np.random.default_rng(seed).permutation(n) % folds
    out = np.zeros_like(logits)
    targets = as_targets(labels, logits.shape[1])
    for k in range(folds):
        held = part == k
        out[held] = softmax(logits[held], fit_temperature(logits[~held], targets[~held]))
    return out
