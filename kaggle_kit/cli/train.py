"""`tiny-backbone`, `recipes`, `train`, `cv`: training."""

from __future__ import annotations

from pathlib import Path

import click

from kaggle_kit.atomic import check_writable
from kaggle_kit.cli.app import emit, main
from kaggle_kit.cli.options import (
    CONFIG_HINT,
    GroupedCommand,
    KitContext,
    KitOption,
    config_flags,
    config_option,
    json_option,
    pass_kit,
)
from kaggle_kit.config import TrainConfig
from kaggle_kit.model.tiny_backbone import ARCHES


@main.command("tiny-backbone")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--arch", type=click.Choice(list(ARCHES)), default="deberta-v3",
              show_default=True,
              help="Architecture of the random model.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Random seed.")
def tiny_backbone_cmd(directory: Path, arch: str, seed: int) -> None:
    """Build a tiny random backbone with a locally trained tokenizer (for tests and trying things out)."""
    from kaggle_kit.model.tiny_backbone import build_tiny_backbone

    check_writable(directory, folder=True)
    click.echo(f"wrote {build_tiny_backbone(directory, arch=arch, seed=seed)} ({arch})")


# The [train] settings train and cv show as flags; every other one is --set train.KEY=VALUE (its old flag still works,
# hidden, and says so in one line).
TRAIN_FLAGS = ("backbone", "recipe", "max_len", "epochs", "max_steps", "learning_rate", "fold")


def train_files_option(required: bool):
    return click.option("--train", "train_files", multiple=True, required=required, type=click.Path(path_type=Path),
                        cls=KitOption, group="data",
                        help="train.csv in the competition's format; repeat for extra data (deduplicated).")


exclude_test_option = click.option("--exclude-test", type=click.Path(path_type=Path), cls=KitOption, group="data",
                                   help="Drop training rows that also appear in this test.csv.")


@main.command("train", cls=GroupedCommand, epilog=CONFIG_HINT)
@train_files_option(required=True)
@exclude_test_option
@config_flags(TrainConfig, first_class=TRAIN_FLAGS)
@click.option("--out", required=True, type=click.Path(path_type=Path), cls=KitOption, group="run",
              help="Model output folder.")
@click.option("--resume", is_flag=True, cls=KitOption, group="run",
              help="Continue an interrupted run from the newest checkpoint in --out.")
@click.option("--overwrite", is_flag=True, cls=KitOption, group="run",
              help="Replace a kaggle-kit model in --out (only kaggle-kit's own files).")
@config_option
@json_option
@pass_kit
def train_cmd(kit: KitContext, train_files, out: Path, resume: bool, overwrite: bool, exclude_test, as_json: bool,
              **flags) -> None:
    """Train a LoRA preference classifier; prints holdout log loss against the class-prior baseline."""
    from kaggle_kit.training.train import train

    check_writable(out, folder=True)  # before loading data or the backbone
    train_cfg, note = _resolved_train_config(kit)
    if _relaunched():
        return
    result = train(list(train_files), out, train_cfg, kit.spec, kit.config.column_maps, exclude_test,
                   resume=resume, overwrite=overwrite, recipe_note=note)
    m = result.metrics
    if not m:  # a non-zero DDP rank: rank 0 reports
        return
    verdict = "" if m["learned"] else "; NO better than the prior"
    head = m.get("side_head") or {}
    side = f"; with the length side head {head['cv_log_loss']:.4f}, cross-validated" if head.get("used") else ""
    text = (f"holdout log loss {m['holdout']['log_loss']:.4f} (prior {m['prior_log_loss']:.4f}, accuracy "
            f"{m['holdout']['accuracy']:.3f}, temperature {m['temperature']:.2f}{verdict}{side}); model in {out}")
    _note_train(kit.spec, out, m, train_cfg, train_files)
    emit(m, as_json, text)


def _note_train(spec, out: Path, m: dict, cfg: TrainConfig, train_files) -> None:
    import dataclasses

    from kaggle_kit.cli.runs import note_run

    figures = {f"holdout_{k}": v for k, v in m["holdout"].items()}
    figures.update(prior_log_loss=m["prior_log_loss"], temperature=m["temperature"])
    # the headline is what predict will output: temperature-scaled, or the side head's, out of sample
    headline = "holdout_log_loss_calibrated" if spec.metric == "log_loss" else f"holdout_{spec.metric}"
    note_run("train", out, spec, headline, "holdout", figures, dataclasses.asdict(cfg), train_files)


def _relaunched() -> bool:
    """Several GPUs: the same command re-run as one DDP rank per GPU (or seeing one GPU with KAGGLE_KIT_NPROC=1), so
    no process drives two GPUs (training.launch). The children print the results."""
    import sys

    from kaggle_kit.training.launch import relaunch

    return relaunch("kaggle_kit.cli", sys.argv[1:], echo=lambda line: click.echo(line, err=True))


def _resolved_train_config(kit: KitContext):
    """The [train] settings as layered for this command (defaults < recipe < kaggle-kit.toml < --set < flags), and
    the note the run records: the recipe applied and where each value came from."""
    from kaggle_kit.config.layers import run_note

    return kit.config.train, run_note(kit.config)


@main.command("recipes")
@click.option("--show", metavar="NAME", help="Print recipe NAME's file (with its sources) to copy: `kaggle-kit recipes "
                                             "--show NAME > mine.toml`, change a value, then train --recipe mine.toml.")
@json_option
def recipes_cmd(show: str | None, as_json: bool) -> None:
    """Named training settings per backbone family, with their sources (use with train --recipe NAME)."""
    from kaggle_kit.config.recipes import get_recipe, recipe_text, recipes_table

    if show is not None:
        emit(get_recipe(show).to_dict(), as_json, recipe_text(show).rstrip("\n"))
        return
    rows = recipes_table()
    emit(rows, as_json, "\n".join(f"{r['name']:<17} lr {r['train']['learning_rate']:g}, {r['train']['epochs']:g} "
                                  f"epoch(s), {r['train']['max_len']}/{r['predict_max_len']} tokens, LoRA r "
                                  f"{r['train']['lora_r']}: {r['summary']}\n{'':<17} source: {r['source']}"
                                  for r in rows))


@main.command("cv", cls=GroupedCommand, epilog=CONFIG_HINT)
@train_files_option(required=False)
@exclude_test_option
@config_flags(TrainConfig, exclude=("fold", "time_budget"), first_class=TRAIN_FLAGS)  # cv: no time budget per fold
@click.option("--folds", type=click.IntRange(min=2, max=100), cls=KitOption, group="validation",
              help="Number of folds K.")
@click.option("--fold-ids", cls=KitOption, group="validation",
              help="Comma-separated folds to train now (default: all), e.g. one per kernel.")
@click.option("--gather", "gather_dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              cls=KitOption, group="validation",
              help="Instead of training: merge pulled fold outputs (repeat) into --out/oof.csv and cv.json.")
@click.option("--out", required=True, type=click.Path(path_type=Path), cls=KitOption, group="run",
              help="Folder for fold-<i>/ model dirs, oof.csv and cv.json.")
@click.option("--overwrite", is_flag=True, cls=KitOption, group="run",
              help="Train folds that already exist again; replace oof.csv/cv.json.")
@config_option
@json_option
@pass_kit
def cv_cmd(kit: KitContext, train_files, folds, out: Path, fold_ids, gather_dirs, exclude_test, overwrite: bool,
           as_json: bool, **flags) -> None:
    """K-fold training, stratified and grouped by prompt: fold model dirs, out-of-fold predictions, cv.json."""
    from kaggle_kit.training.cv import find_fold_dirs, gather, parse_fold_ids, run_cv

    check_writable(out, folder=True)
    if gather_dirs:
        if train_files or folds or fold_ids:
            raise click.UsageError("--gather merges finished folds: drop --train/--folds/--fold-ids")
        result = gather(find_fold_dirs(list(gather_dirs)), out, kit.spec, overwrite=overwrite)
    else:
        if not train_files or not folds:
            raise click.UsageError("cv needs --train and --folds (or --gather DIR...)")
        cfg, note = _resolved_train_config(kit)
        if _relaunched():
            return
        result = run_cv(list(train_files), out, folds, cfg, kit.spec, parse_fold_ids(fold_ids, folds),
                        kit.config.column_maps, exclude_test, overwrite=overwrite,
                        echo=lambda m: click.echo(m, err=True), recipe_note=note)
    if not result:  # a non-zero DDP rank
        return
    if not result["complete"]:
        emit(result, as_json, f"{result['folds_done']} of {result['folds']} folds in {out}; missing "
                              f"{', '.join(map(str, result['missing']))} (train them with --fold-ids, or gather)")
        return
    _note_cv(kit.spec, out, result, None if gather_dirs else cfg, train_files, folds)
    per_fold = ", ".join(f"{f['log_loss']:.4f}" for f in result["per_fold"])
    metric = kit.spec.metric
    also = f", OOF {kit.spec.metric_name} {result['oof_' + metric]:.4f}" if metric != "log_loss" else ""
    emit(result, as_json, f"OOF log loss {result['oof_log_loss']:.4f} over {result['rows']} rows (folds {per_fold}; "
                          f"mean {result['mean_log_loss']:.4f} +- {result['std_log_loss']:.4f}){also}; "
                          f"wrote {result['oof']}")


def _note_cv(spec, out: Path, result: dict, cfg: TrainConfig | None, train_files, folds) -> None:
    """A complete cv (trained here, or gathered from fold kernels: settings and data unknown then)."""
    import dataclasses

    from kaggle_kit.cli.runs import note_run

    figures = {k: v for k, v in result.items() if k.startswith(("oof_", "mean_", "std_")) and isinstance(v, float)}
    figures.update(folds=result["folds"], rows=result["rows"])
    settings = None if cfg is None else {**dataclasses.asdict(cfg), "folds": folds}
    note_run("cv", out, spec, f"oof_{spec.metric}", "oof", figures, settings, train_files)


@main.command("average")
@click.argument("model_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model dir to write.")
@click.option("--weights", help="Comma-separated weights, one per model dir, each >= 0 (normalised; default: equal).")
@click.option("--overwrite", is_flag=True, help="Replace a kaggle-kit model in --out (only kaggle-kit's own files).")
@config_option
@json_option
@pass_kit
def average_cmd(kit: KitContext, model_dirs, out: Path, weights, overwrite: bool, as_json: bool) -> None:
    """Average model dirs (or every fold of a cv --out folder) into ONE model: one inference pass instead of K."""
    from kaggle_kit.inference.averaged_model import average_models

    check_writable(out, folder=True)
    r = average_models(list(model_dirs), out, kit.spec, weights, overwrite=overwrite,
                       column_maps=kit.config.column_maps, progress=not as_json,
                       echo=(lambda m: None) if as_json else (lambda m: click.echo(m, err=True)))
    c = r["calibration"]
    fitted = (f"temperature {r['temperature']:.3f}{', length side head' if r['side_head'] else ''} fitted on "
              f"{c['rows']} of the members' holdout rows (not held out: the other members trained on them)"
              if c["fitted_on"] else f"no calibration (temperature 1): {c['reason']}")
    _note_average(kit.spec, out, r)
    emit(r, as_json, f"wrote {out}: {len(r['members'])} models averaged into one LoRA adapter of rank {r['rank']}; "
                     f"{fitted}")


def _note_average(spec, out: Path, result: dict) -> None:
    """An average has no held-out figure of its own (its calibration rows were trained on by the other members):
    the ledger records its members and calibration, and no headline score."""
    from kaggle_kit.cli.runs import note

    figures = {"members": result["members"], "calibration": result["calibration"]}
    note("average run", "record_run", "average", out, competition=spec.slug, metric=spec.metric, figures=figures)
