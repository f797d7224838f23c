"""Every figure kaggle-kit draws: training curves, confusion matrix, reliability diagram (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kaggle_kit.atomic import atomic_path
from kaggle_kit.metrics import as_targets


def new_figure(figsize: tuple[float, float]):
    """A (figure, axes) pair on the headless Agg backend (no display on CI or in kernels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)


def save_png(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def training_curves_png(metrics: dict, path: Path) -> None:
    fig, ax = new_figure((7, 4))
    if metrics["train_loss_history"]:
        ax.plot(*zip(*[(h["step"], h["loss"]) for h in metrics["train_loss_history"]]), label="train loss")
    if metrics["eval_history"]:
        ax.plot(*zip(*[(h["step"], h["log_loss"]) for h in metrics["eval_history"]]), marker="o",
                label="holdout log loss")
    ax.axhline(metrics["prior_log_loss"], color="grey", linestyle="--", label="class-prior baseline")
    ax.set_xlabel("step")
    ax.set_ylabel("log loss (nats)")
    ax.legend()
    ax.set_title("training curves")
    fig.tight_layout()
    save_png(fig, path)


def confusion_png(labels: np.ndarray, probs: np.ndarray, names: list[str], path: Path) -> np.ndarray:
    truth = as_targets(labels, len(names)).argmax(1)
    matrix = np.zeros((len(names), len(names)), dtype=int)
    for t, guess in zip(truth, probs.argmax(1)):
        matrix[t, guess] += 1
    fig, ax = new_figure((5, 4.5))
    ax.imshow(matrix, cmap="Blues")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center")
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("holdout confusion matrix")
    fig.tight_layout()
    save_png(fig, path)
    return matrix


def reliability_png(labels: np.ndarray, probs: np.ndarray, path: Path, bins: int = 10) -> None:
    """Predicted probability vs observed frequency, pooled over classes (one-vs-rest)."""
    onehot = as_targets(labels, probs.shape[1]).ravel()
    flat = probs.ravel()
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(flat, edges) - 1, 0, bins - 1)
    centers, observed = [], []
    for b in range(bins):
        mask = which == b
        if mask.any():
            centers.append(flat[mask].mean())
            observed.append(onehot[mask].mean())
    fig, ax = new_figure((5, 4.5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    ax.plot(centers, observed, marker="o", label="model")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_title("reliability diagram (holdout)")
    ax.legend()
    fig.tight_layout()
    save_png(fig, path)


def cv_vs_public_png(points: list[tuple[str, float, float]], rho: float, metric: str, path: Path) -> None:
    """Each run's CV/holdout figure against the public score it got (labelled by run), with Spearman's rho."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = new_figure((5.5, 4.5))
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    ax.scatter(xs, ys, color="tab:blue")
    for label, x, y in points:
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"CV / holdout {metric}")
    ax.set_ylabel(f"public leaderboard {metric}")
    ax.set_title(f"CV against public LB\nSpearman rank correlation {rho:+.2f} over {len(points)} submissions")
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.yaxis.set_major_locator(MaxNLocator(6))
    ax.margins(0.15)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
