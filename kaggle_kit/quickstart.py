"""The main job on the embedded default: sample data -> tiny backbone -> train (recipe cpu-smoke) -> predict (swap
TTA) -> validated CSV."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from kaggle_kit.atomic import next_free
from kaggle_kit.competition.sample_data import write_sample_data
from kaggle_kit.competition.spec import LMSYS
from kaggle_kit.config import PredictConfig
from kaggle_kit.config.layers import Layer, resolve, run_note
from kaggle_kit.inference.run import predict_to_submission
from kaggle_kit.model.tiny_backbone import build_tiny_backbone
from kaggle_kit.submission import SUBMISSIONS_DIR
from kaggle_kit.training.train import train

QUICKSTART_RECIPE = "cpu-smoke"


@dataclass
class QuickstartResult:
    workdir: Path
    submission: Path
    holdout_log_loss: float
    calibrated_log_loss: float  # what the submission's probabilities score: temperature or side head (out of fold)
    side_head: bool
    prior_log_loss: float
    seconds: float


def run_quickstart(workdir: Path, rows: int = 2000, seed: int = 0,
                   submissions_dir: Path = SUBMISSIONS_DIR) -> QuickstartResult:
    start = time.perf_counter()
    run_dir = next_free(workdir, "run")
    files = write_sample_data(run_dir / "data", rows=rows, seed=seed)
    backbone = build_tiny_backbone(run_dir / "tiny-deberta-v3", seed=seed)
    config = resolve([Layer("quickstart", {"train": {"backbone": str(backbone), "recipe": QUICKSTART_RECIPE,
                                                     "seed": seed}})])
    cfg, note = config.train, run_note(config)
    result = train([files.train], run_dir / "model", cfg, LMSYS, recipe_note=note)
    path = next_free(submissions_dir, "quickstart", ".csv")
    predict_to_submission([run_dir / "model"], files.test, path, LMSYS, PredictConfig(max_tokens=8192, tta="swap"),
                          progress=False)
    m = result.metrics
    return QuickstartResult(run_dir, path, m["holdout"]["log_loss"], m["holdout"]["log_loss_calibrated"],
                            bool((m.get("side_head") or {}).get("used")), m["prior_log_loss"],
                            time.perf_counter() - start)
