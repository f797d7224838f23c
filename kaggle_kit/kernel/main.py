"""What a kernel runs once unpacked: the same train/predict functions as the CLI, on Kaggle's folder layout.

The root is one setting (KAGGLE_KIT_ROOT, `/kaggle` on Kaggle) so a local dry run can simulate the layout."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from kaggle_kit.config import config_from_dict
from kaggle_kit.kernel.preflight import preflight


def kaggle_root() -> Path:
    return Path(os.environ.get("KAGGLE_KIT_ROOT", "/kaggle"))


def input_dir(ref: str) -> Path:
    """A dataset/kernel 'owner/slug' is mounted at <root>/input/<slug>."""
    return kaggle_root() / "input" / ref.split("/")[-1]


def _model_dir(folder: Path) -> Path:
    from kaggle_kit.model.model_dir import MODEL_FILE

    for candidate in (folder, folder / "model"):
        if (candidate / MODEL_FILE).exists():
            return candidate
    raise SystemExit(f"kaggle-kit: no trained model found in {folder}")


def _wandb_key_from_kaggle_secrets() -> None:
    """The wandb key is never bundled: inside Kaggle it comes from the notebook's Secrets (add-on 'Secrets')."""
    if os.environ.get("WANDB_API_KEY"):
        return
    try:
        from kaggle_secrets import UserSecretsClient  # only exists inside Kaggle kernels
    except ImportError:
        print("kaggle-kit: report_to=wandb but no WANDB_API_KEY and no Kaggle Secrets; logging offline",
              file=sys.stderr)
        os.environ["WANDB_MODE"] = "offline"
        return
    os.environ["WANDB_API_KEY"] = UserSecretsClient().get_secret("WANDB_API_KEY")


def processes_wanted() -> int:
    """One training process per GPU (Kaggle's T4 x2); KAGGLE_KIT_NPROC overrides (e.g. 2 CPU processes in tests)."""
    if os.environ.get("KAGGLE_KIT_NPROC"):
        return int(os.environ["KAGGLE_KIT_NPROC"])
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 1


def _relaunch_distributed(config: dict, manifest: dict) -> bool:
    """Re-run the train task under torchrun (DDP) when several processes are wanted and we are not one of them yet."""
    nproc = processes_wanted()
    if nproc < 2 or "LOCAL_RANK" in os.environ or config.get("train", {}).get("quantize"):
        return False
    import subprocess
    import tempfile

    args_file = Path(tempfile.mkdtemp(prefix="kaggle-kit-ddp-")) / "args.json"
    args_file.write_text(json.dumps({"config": config, "manifest": manifest}))
    package_parent = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                    "-m", "kaggle_kit.kernel.main", "train", str(args_file)], env=env, check=True)
    return True


def main(task: str, config: dict, manifest: dict) -> None:
    from kaggle_kit.quiet import quiet_libraries

    quiet_libraries()
    cfg = config_from_dict(config)
    spec = cfg.spec
    working = kaggle_root() / "working"
    working.mkdir(parents=True, exist_ok=True)
    if "LOCAL_RANK" not in os.environ:  # once per kernel, not again in each torchrun worker
        preflight(config, manifest, working)
    (working / "kaggle_kit_manifest.json").write_text(json.dumps(manifest, indent=2))
    competition = kaggle_root() / "input" / cfg.competition
    backbone = str(input_dir(cfg.datasets.backbone)) if cfg.datasets.backbone else cfg.train.backbone
    if task == "train" and cfg.train.report_to == "wandb":
        _wandb_key_from_kaggle_secrets()
    if task == "train" and _relaunch_distributed(config, manifest):
        return
    if task == "train":
        from dataclasses import replace

        from kaggle_kit.config.recipes import resolve_train_config
        from kaggle_kit.training.train import train

        train_cfg, note = resolve_train_config(replace(cfg.train, backbone=backbone),
                                               set(cfg.explicit.get("train", [])))
        result = train([competition / spec.train_file], working / "model", train_cfg, spec, cfg.column_maps,
                       recipe_note=note)
        print(json.dumps({"holdout": result.metrics.get("holdout"),
                          "prior_log_loss": result.metrics.get("prior_log_loss")}))
    elif task == "infer":
        _infer(cfg, spec, competition, working, backbone)
    else:
        sys.exit(f"unknown task {task}")


def _infer(cfg, spec, competition: Path, working: Path, backbone: str | None) -> None:
    """Predict inside [predict] time_budget (default: a safe share of the competition's limit), one line per stage;
    what the budget bought goes to kaggle_kit_run.json beside the submission."""
    from dataclasses import replace

    from kaggle_kit.atomic import write_text_atomic
    from kaggle_kit.config.durations import default_budget
    from kaggle_kit.inference.run import predict_to_submission

    predict_cfg = cfg.predict
    source = cfg.datasets.model or cfg.kernel.train_slug
    if predict_cfg.blend.endswith(".json"):  # a blend.json inside the model dataset names the models itself
        predict_cfg, models = replace(predict_cfg, blend=str(input_dir(source) / predict_cfg.blend)), []
        if predict_cfg.time_budget is None:
            print("kaggle-kit: a fitted blend runs without a time budget (not supported for blend.json yet)")
    else:
        models = [_model_dir(input_dir(source))]
        if predict_cfg.time_budget is None and default_budget(spec.time_limit_s):
            predict_cfg = replace(predict_cfg, time_budget=int(default_budget(spec.time_limit_s)))
    result = predict_to_submission(models, competition / spec.test_file,
                                   working / spec.submission_file, spec, predict_cfg,
                                   backbone=backbone if cfg.datasets.backbone else None, overwrite=True,
                                   progress=False, echo=lambda line: print(line, flush=True))
    if "stages" in result:
        write_text_atomic(working / "kaggle_kit_run.json", json.dumps(result, indent=2) + "\n")
    print(f"wrote {result['path']} ({result['rows']} rows) in {result['seconds']:.1f}s")


if __name__ == "__main__":  # the torchrun re-launch: python -m kaggle_kit.kernel.main TASK ARGS.json
    payload = json.loads(Path(sys.argv[2]).read_text())
    main(sys.argv[1], payload["config"], payload["manifest"])
