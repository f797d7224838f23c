"""The main job on the embedded default: sample data -> tiny backbone -> train -> predict (swap TTA) -> validated CSV."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .atomic import next_free
from .backbone import build_tiny_backbone
from .competition import LMSYS
from .config import TrainConfig
from .data import read_test
from .predict import predict_models
from .sample_data import write_sample_data
from .submission import SUBMISSIONS_DIR, expected_ids, write_submission
from .train import train


@dataclass
class QuickstartResult:
    workdir: Path
    submission: Path
    holdout_log_loss: float
    prior_log_loss: float
    seconds: float


def run_quickstart(workdir: Path, rows: int = 1000, seed: int = 0, submissions_dir: Path = SUBMISSIONS_DIR) -> QuickstartResult:
    start = time.perf_counter()
    run_dir = next_free(workdir, "run")
    files = write_sample_data(run_dir / "data", rows=rows, seed=seed)
    backbone = build_tiny_backbone(run_dir / "tiny-deberta-v3", seed=seed)
    result = train([files.train], run_dir / "model", TrainConfig(backbone=str(backbone), max_len=256, seed=seed), LMSYS)
    test = read_test(files.test, LMSYS)
    run = predict_models([run_dir / "model"], test, LMSYS, max_tokens=8192, tta="swap")
    path = next_free(submissions_dir, "quickstart", ".csv")
    write_submission(test.ids, run.probs, expected_ids(LMSYS, sample_submission=files.sample_submission), LMSYS, path)
    return QuickstartResult(run_dir, path, result.metrics["holdout"]["log_loss"], result.metrics["prior_log_loss"],
                            time.perf_counter() - start)
