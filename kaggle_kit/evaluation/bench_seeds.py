"""Is a recipe seed-stable? Train it on the same sample data with several seeds; each run must beat the prior."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from kaggle_kit.competition.sample_data import write_sample_data
from kaggle_kit.competition.spec import LMSYS
from kaggle_kit.config.layers import Layer, resolve, run_note
from kaggle_kit.model.tiny_backbone import build_tiny_backbone

STABLE_MARGIN = 0.05  # nats below the class prior every seed must reach (issue 12)


def bench_seeds(recipe: str = "cpu-smoke", rows: int = 2000, seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
                backbone: str | None = None, work: Path | None = None, echo=None) -> dict:
    """One training per seed (sample data of `rows`, the tiny backbone unless `backbone`); margins against the prior."""
    from kaggle_kit.training.train import train

    with tempfile.TemporaryDirectory(prefix="kk-seeds-") as tmp:
        root = Path(work or tmp)
        files = write_sample_data(root / "data", rows=rows, seed=0, overwrite=True)
        bb = backbone or str(build_tiny_backbone(root / "tiny-deberta-v3", seed=0))
        runs = []
        for seed in seeds:
            config = resolve([Layer("bench seeds", {"train": {"backbone": bb, "recipe": recipe, "seed": seed}})])
            cfg, note = config.train, run_note(config)
            start = time.perf_counter()
            m = train([files.train], root / f"seed-{seed}", cfg, LMSYS, recipe_note=note, overwrite=True).metrics
            run = {"seed": seed, "holdout_log_loss": round(m["holdout"]["log_loss"], 4),
                   "prior_log_loss": round(m["prior_log_loss"], 4),
                   "margin": round(m["prior_log_loss"] - m["holdout"]["log_loss"], 4),
                   "holdout_rows": m["holdout"]["rows"], "seconds": round(time.perf_counter() - start, 1)}
            runs.append(run)
            if echo:
                echo(f"seed {seed}: holdout {run['holdout_log_loss']:.4f} vs prior {run['prior_log_loss']:.4f} "
                     f"(margin {run['margin']:+.4f}, {run['holdout_rows']} holdout rows, {run['seconds']:.0f}s)")
    worst = min(r["margin"] for r in runs)
    return {"recipe": recipe, "rows": rows, "runs": runs, "worst_margin": worst, "required_margin": STABLE_MARGIN,
            "stable": worst > STABLE_MARGIN}
