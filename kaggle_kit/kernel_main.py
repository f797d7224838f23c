"""What a kernel runs once unpacked: the same train/predict functions as the CLI, on Kaggle's folder layout.

The root is one setting (KAGGLE_KIT_ROOT, `/kaggle` on Kaggle) so a local dry run can simulate the layout."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .competition import get_spec
from .config import config_from_dict


def kaggle_root() -> Path:
    return Path(os.environ.get("KAGGLE_KIT_ROOT", "/kaggle"))


def input_dir(ref: str) -> Path:
    """A dataset/kernel 'owner/slug' is mounted at <root>/input/<slug>."""
    return kaggle_root() / "input" / ref.split("/")[-1]


def _model_dir(folder: Path) -> Path:
    from .model import MODEL_FILE

    for candidate in (folder, folder / "model"):
        if (candidate / MODEL_FILE).exists():
            return candidate
    raise SystemExit(f"kaggle-kit: no trained model found in {folder}")


def main(task: str, config: dict, manifest: dict) -> None:
    cfg = config_from_dict(config)
    spec = get_spec(cfg.competition)
    working = kaggle_root() / "working"
    working.mkdir(parents=True, exist_ok=True)
    (working / "kaggle_kit_manifest.json").write_text(json.dumps(manifest, indent=2))
    competition = kaggle_root() / "input" / cfg.competition
    backbone = str(input_dir(cfg.datasets.backbone)) if cfg.datasets.backbone else cfg.train.backbone
    if task == "train":
        from dataclasses import replace

        from .train import train

        result = train([competition / "train.csv"], working / "model", replace(cfg.train, backbone=backbone), spec,
                       cfg.column_maps)
        print(json.dumps({"holdout": result.metrics.get("holdout"), "prior_log_loss": result.metrics.get("prior_log_loss")}))
    elif task == "infer":
        from .data import read_test
        from .predict import predict_models
        from .submission import expected_ids, write_submission

        source = cfg.datasets.model or cfg.kernel.train_slug
        test = read_test(competition / "test.csv", spec)
        run = predict_models([_model_dir(input_dir(source))], test, spec, cfg.predict.max_tokens, cfg.predict.tta,
                             backbone=backbone if cfg.datasets.backbone else None, precision=cfg.predict.precision,
                             quantize=cfg.predict.quantize)
        order = expected_ids(spec, sample_submission=competition / "sample_submission.csv")
        write_submission(test.ids, run.probs, order, spec, working / spec.submission_file, overwrite=True)
        print(f"wrote {working / spec.submission_file} ({len(order)} rows) in {run.seconds:.1f}s")
    else:
        sys.exit(f"unknown task {task}")
