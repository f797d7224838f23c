"""What a kernel runs once unpacked: the same train/predict functions as the CLI, on Kaggle's folder layout.

The root is one setting (KAGGLE_KIT_ROOT, `/kaggle` on Kaggle) so a local dry run can simulate the layout."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from kaggle_kit.config import config_from_dict
from kaggle_kit.kernel.inputs import find_competition, find_input, find_source, kaggle_root
from kaggle_kit.kernel.preflight import preflight


def model_source(cfg) -> str:
    """Where the infer kernel's trained model comes from: [datasets] model, else the train kernel's output."""
    return cfg.datasets.model or f"kernel:{cfg.username}/{cfg.kernel.train_slug}"


def _model_dir(folder: Path) -> Path:
    from kaggle_kit.model.model_dir import MODEL_FILE

    for candidate in (folder, folder / "model"):
        if (candidate / MODEL_FILE).exists():
            return candidate
    raise SystemExit(f"kaggle-kit: no trained model found in {folder}")


def _copy_earlier_session(kernel: str, out: Path) -> None:
    """The mounted output of an earlier train kernel (read-only) copied to `out`, where training resumes from its
    last checkpoint; a folder without checkpoints is one clear line."""
    import shutil

    from kaggle_kit.model.model_dir import CHECKPOINTS

    source = find_source(f"kernel:{kernel}")
    earlier = next((d for d in (source / "model", source) if (d / CHECKPOINTS).is_dir()), None)
    if earlier is None:
        raise SystemExit(f"kaggle-kit: --resume-from {kernel}: its output holds no {CHECKPOINTS}/ to resume from")
    shutil.copytree(earlier, out, symlinks=False)
    print(f"kaggle-kit: resuming the run of {kernel} from its last checkpoint", flush=True)


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


def _relaunch_distributed(config: dict, manifest: dict) -> bool:
    """Re-run the train task as the GPUs need (training.launch): one DDP rank per GPU (4-bit too, each rank loading
    on its LOCAL_RANK), or one child seeing one GPU; False when this process is the one to train."""
    import tempfile

    from kaggle_kit.training.launch import launch_decision, relaunch, visible_gpus

    if launch_decision(visible_gpus(), os.environ).mode == "here":
        return False
    args_file = Path(tempfile.mkdtemp(prefix="kaggle-kit-ddp-")) / "args.json"
    args_file.write_text(json.dumps({"config": config, "manifest": manifest}))
    return relaunch("kaggle_kit.kernel.main", ["train", str(args_file)], echo=lambda line: print(line, flush=True))


def main(task: str, config: dict, manifest: dict) -> None:
    """The kernel's entry point: an expected failure (bad data, a bad setting, a corrupt model dir) ends the kernel
    with one `kaggle-kit:` line and a non-zero exit, like mount and accelerator errors; the log above is kept."""
    from kaggle_kit.errors import KitError

    try:
        _run(task, config, manifest)
    except KitError as exc:
        raise SystemExit(f"kaggle-kit: {exc.format_line()}") from None


def _run(task: str, config: dict, manifest: dict) -> None:
    from kaggle_kit.quiet import quiet_libraries

    quiet_libraries()
    cfg = config_from_dict(config)
    spec = cfg.spec
    working = kaggle_root() / "working"
    working.mkdir(parents=True, exist_ok=True)
    if "LOCAL_RANK" not in os.environ:  # once per kernel, not again in each torchrun worker
        preflight(config, manifest, working)
    (working / "kaggle_kit_manifest.json").write_text(json.dumps(manifest, indent=2))
    competition = find_competition(cfg.competition)
    backbone = str(find_source(cfg.datasets.backbone)) if cfg.datasets.backbone else cfg.train.backbone
    if task == "train" and cfg.train.report_to == "wandb":
        _wandb_key_from_kaggle_secrets()
    if task == "train":
        from dataclasses import replace

        from kaggle_kit.config.layers import Layer, from_embedded, run_note
        from kaggle_kit.training.train import train

        # Layered as on the command line, the recipe again here: its batch shape for these GPUs, the family of the
        # mounted backbone; what kaggle-kit.toml, --set and flags set stays on top.
        mounted = Layer("kernel input", {"train": {"backbone": backbone}}) if cfg.datasets.backbone else None
        resolved = from_embedded(config, mounted)
        train_cfg, note = resolved.train, run_note(resolved)
        if train_cfg.time_budget is None:  # a session that runs out still leaves a usable, resumable model dir
            from kaggle_kit.config.durations import default_train_budget

            train_cfg = replace(train_cfg, time_budget=int(default_train_budget()))
        resuming = bool(cfg.kernel.resume_from)
        if resuming and "LOCAL_RANK" not in os.environ:  # copied once, before any torchrun worker starts
            _copy_earlier_session(cfg.kernel.resume_from, working / "model")
        if _relaunch_distributed(config, manifest):
            return
        files = [competition / spec.train_file, *(find_input(loc) for loc in cfg.datasets.extra_train)]
        if cfg.datasets.teacher:
            train_cfg = replace(train_cfg, teacher=str(find_input(cfg.datasets.teacher)))
        result = train(files, working / "model", train_cfg, spec, cfg.column_maps, recipe_note=note, resume=resuming)
        print(json.dumps({"holdout": result.metrics.get("holdout"),
                          "prior_log_loss": result.metrics.get("prior_log_loss"),
                          "stopped_early": result.metrics.get("stopped_early")}))
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
    source = find_source(model_source(cfg))
    backbone_of = None
    if predict_cfg.blend.endswith(".json"):  # a blend.json inside the model dataset names the models itself
        from kaggle_kit.kernel.blend_sources import member_backbone

        predict_cfg, models = replace(predict_cfg, blend=str(source / predict_cfg.blend)), []
        backbone_of = lambda member: member_backbone(member, cfg.datasets.backbone)  # noqa: E731
    else:
        models = [_model_dir(source)]
    if predict_cfg.time_budget is None and default_budget(spec.time_limit_s):
        predict_cfg = replace(predict_cfg, time_budget=int(default_budget(spec.time_limit_s)))
    result = predict_to_submission(models, competition / spec.test_file,
                                   working / spec.submission_file, spec, predict_cfg,
                                   backbone=backbone if cfg.datasets.backbone and not backbone_of else None,
                                   backbone_of=backbone_of, overwrite=True,
                                   progress=False, echo=lambda line: print(line, flush=True))
    if "stages" in result or result.get("nonfinite_rows"):
        write_text_atomic(working / "kaggle_kit_run.json", json.dumps(result, indent=2) + "\n")
    print(f"wrote {result['path']} ({result['rows']} rows) in {result['seconds']:.1f}s")


if __name__ == "__main__":  # the torchrun re-launch: python -m kaggle_kit.kernel.main TASK ARGS.json
    payload = json.loads(Path(sys.argv[2]).read_text())
    main(sys.argv[1], payload["config"], payload["manifest"])
