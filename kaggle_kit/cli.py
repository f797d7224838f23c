"""The `kaggle-kit` command line: thin commands that turn flags into one call and print the result."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from . import __version__
from .cli_options import (
    CONFIG_HINT,
    KitContext,
    config_flags,
    config_option,
    dry_run_option,
    flag_values,
    json_option,
    pass_kit,
)
from .config import PredictConfig, TrainConfig
from .errors import ExitStatus, KitError
from .quiet import quiet_libraries

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
# `kaggle-kit --help` lists commands by workflow; a test keeps every command in one of these.
COMMAND_SECTIONS = {
    "Start": ["init", "doctor", "config", "quickstart"],
    "Data": ["download", "sample-data", "validate"],
    "Train / predict": ["tiny-backbone", "recipes", "train", "predict", "report", "bench"],
    "Recipes": ["cv", "blend", "pseudo-label"],
    "Kernels": ["plan", "build-kernel", "run-kernel", "push-kernel", "status", "pull"],
    "Datasets": ["upload", "datasets"],
    "Submit": ["submit", "submissions", "deadline"],
}


class KitGroup(click.Group):
    """Expected failures become one line on stderr with their exit code, never a traceback; --help by workflow."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KitError as exc:
            click.secho(f"Error: {exc.format_line()}", err=True, fg="red" if _tty_err() else None)
            ctx.exit(exc.exit_code)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self is not main:
            return super().format_commands(ctx, formatter)
        placed = {name for names in COMMAND_SECTIONS.values() for name in names}
        sections = {**COMMAND_SECTIONS, "Other": sorted(set(self.commands) - placed)}
        for title, names in sections.items():
            rows = [(n, self.commands[n].get_short_help_str(80)) for n in names if n in self.commands]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _tty_err() -> bool:
    return sys.stderr.isatty() and "NO_COLOR" not in os.environ


def emit(data, as_json: bool, text: str | None = None) -> None:
    click.echo(json.dumps(data, indent=2, default=str) if as_json else (text if text is not None else str(data)))


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


@click.group(cls=KitGroup, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="kaggle-kit")
@config_option
@click.pass_context
def main(ctx: click.Context) -> None:
    """Train, predict, package and submit LoRA preference classifiers for Kaggle code competitions."""
    ctx.ensure_object(KitContext)
    quiet_libraries()


@main.command("config")
@config_option
@pass_kit
def config_cmd(kit: KitContext) -> None:
    """Print the resolved configuration (defaults < kaggle-kit.toml) as JSON; exit 1 on a bad value."""
    emit(kit.config.to_dict(), as_json=True)


@main.command("sample-data")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--rows", default=1000, show_default=True, type=click.IntRange(min=10), help="Training rows.")
@click.option("--test-rows", default=None, type=click.IntRange(min=1), help="Test rows (default: rows/4).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Random seed.")
@click.option("--overwrite", is_flag=True, help="Replace existing files.")
def sample_data_cmd(directory: Path, rows: int, test_rows: int | None, seed: int, overwrite: bool) -> None:
    """Write competition-shaped train.csv, test.csv and sample_submission.csv into DIRECTORY."""
    from .sample_data import write_sample_data

    if directory.exists() and not directory.is_dir():
        raise click.BadParameter(f"{directory} is a file; sample-data writes three files into a folder",
                                 param_hint="DIRECTORY")
    files = write_sample_data(directory, rows=rows, test_rows=test_rows, seed=seed, overwrite=overwrite)
    click.echo(f"wrote {files.train}, {files.test}, {files.sample_submission}")


@main.command("validate")
@click.argument("submission", type=click.Path(path_type=Path))
@click.option("--test", "test_path", type=click.Path(path_type=Path), help="test.csv whose ids the file must cover.")
@click.option("--sample-submission", type=click.Path(path_type=Path), help="sample_submission.csv to match.")
@config_option
@json_option
@pass_kit
def validate_cmd(kit: KitContext, submission: Path, test_path: Path | None, sample_submission: Path | None,
                 as_json: bool) -> None:
    """Check a submission: header, ids, finite values in [0, 1], rows summing to 1."""
    from .submission import expected_ids, validate_file

    report = validate_file(submission, expected_ids(kit.spec, sample_submission, test_path), kit.spec)
    emit(report.to_dict(), as_json, report.summary())
    if not report.ok:
        sys.exit(ExitStatus.FAILED)


@main.command("tiny-backbone")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--arch", type=click.Choice(["deberta-v3", "gemma2", "llama", "bert"]), default="deberta-v3",
              show_default=True,
              help="Architecture of the random model.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Random seed.")
def tiny_backbone_cmd(directory: Path, arch: str, seed: int) -> None:
    """Build a tiny random backbone with a locally trained tokenizer (for tests and trying things out)."""
    from .tiny_backbone import build_tiny_backbone

    click.echo(f"wrote {build_tiny_backbone(directory, arch=arch, seed=seed)} ({arch})")


@main.command("train", epilog=CONFIG_HINT)
@click.option("--train", "train_files", multiple=True, required=True, type=click.Path(path_type=Path),
              help="train.csv in the competition's format; repeat for extra data (deduplicated).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model output folder.")
@click.option("--exclude-test", type=click.Path(path_type=Path),
              help="Drop training rows that also appear in this test.csv.")
@config_flags(TrainConfig)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from the newest checkpoint in --out.")
@click.option("--overwrite", is_flag=True, help="Replace a kaggle-kit model in --out (only kaggle-kit's own files).")
@config_option
@json_option
@pass_kit
def train_cmd(kit: KitContext, train_files, out: Path, resume: bool, overwrite: bool, exclude_test, as_json: bool,
              **flags) -> None:
    """Train a LoRA preference classifier; prints holdout log loss against the class-prior baseline."""
    from .train import train

    train_cfg, note = _resolved_train_config(kit, flags)
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
    emit(m, as_json, text)


def _resolved_train_config(kit: KitContext, flags: dict):
    """Recipe (or backbone-family defaults) < kaggle-kit.toml < flags, for train and cv alike."""
    from .config import with_overrides
    from .recipes import resolve_train_config

    given = {k: v for k, v in flag_values(flags, TrainConfig).items() if v is not None}
    explicit = set(kit.config.explicit.get("train", [])) | set(given)
    return resolve_train_config(with_overrides(kit.config.train, **given), explicit)


@main.command("recipes")
@json_option
def recipes_cmd(as_json: bool) -> None:
    """Named training settings per backbone family, with their sources (use with train --recipe NAME)."""
    from .recipes import recipes_table

    rows = recipes_table()
    emit(rows, as_json, "\n".join(f"{r['name']:<17} lr {r['train']['learning_rate']:g}, {r['train']['epochs']:g} "
                                  f"epoch(s), {r['train']['max_len']}/{r['predict_max_len']} tokens, LoRA r "
                                  f"{r['train']['lora_r']}: {r['summary']}\n{'':<17} source: {r['source']}"
                                  for r in rows))


@main.group("plan", cls=KitGroup)
def plan_group() -> None:
    """Estimate memory and time before pushing a kernel."""


@plan_group.command("train")
@click.option("--recipe", required=True, help="Recipe name (`kaggle-kit recipes`).")
@click.option("--gpus", type=click.Choice(["t4", "t4x2", "p100"]), default="t4", show_default=True,
              help="Kaggle GPU: one T4, two T4s (memory per device), or a P100.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Rows per device (default: the recipe's).")
@click.option("--max-len", type=click.IntRange(min=16), help="Tokens per row (default: the recipe's).")
@json_option
def plan_train_cmd(recipe: str, gpus: str, batch_size: int | None, max_len: int | None, as_json: bool) -> None:
    """Weights + LoRA + activations of a recipe's training step against the GPU's memory: fits or not."""
    from .memory_plan import plan_train

    plan = plan_train(recipe, gpus, batch_size, max_len)
    emit(plan.to_dict(), as_json, plan.summary())


@main.command("predict", epilog=CONFIG_HINT)
@click.option("--test", "test_path", required=True, type=click.Path(path_type=Path), help="test.csv to predict.")
@click.option("--model", "models", multiple=True, type=click.Path(path_type=Path),
              help="Model dir written by train; repeat to ensemble (or --blend blend.json).")
@click.option("--weights", help="Comma-separated ensemble weights, one per --model (default: equal).")
@click.option("--backbone", help="Backbone folder to use instead of the one recorded at training time.")
@config_flags(PredictConfig)
@click.option("--sample-submission", type=click.Path(path_type=Path),
              help="Row order and ids (default: sample_submission.csv beside test.csv, else test order).")
@click.option("--name", default="submission", show_default=True, help="Written to submissions/<name>.csv.")
@click.option("--out", "out_path", type=click.Path(path_type=Path),
              help="Exact output file instead of submissions/<name>.csv.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@config_option
@json_option
@pass_kit
def predict_cmd(kit: KitContext, test_path: Path, models, weights, backbone, sample_submission, name: str, out_path,
                overwrite: bool, as_json: bool, **flags) -> None:
    """Predict test.csv and write a validated, sample_submission-ordered CSV."""
    from .config import with_overrides
    from .predict import predict_to_submission
    from .submission import submission_path

    cfg = with_overrides(kit.config.predict, **flag_values(flags, PredictConfig))
    path = out_path or submission_path(name)
    result = predict_to_submission(list(models), test_path, path, kit.spec, cfg, _parse_weights(weights), backbone,
                                   sample_submission, overwrite=overwrite, progress=not as_json,
                                   echo=None if as_json else lambda m: click.echo(m, err=True))
    tta = f", {result['tta_rows']} with swap TTA" if "tta_rows" in result and cfg.tta == "swap" else ""
    emit(result, as_json, f"wrote {result['path']} ({result['rows']} rows{tta}, valid) in {result['seconds']:.1f}s")


def _parse_weights(weights: str | None) -> list[float] | None:
    if not weights:
        return None
    try:
        return [float(w) for w in weights.split(",")]
    except ValueError:
        raise click.BadParameter(f"'{weights}' is not a comma-separated list of numbers",
                                 param_hint="--weights") from None


@main.command("cv", epilog=CONFIG_HINT)
@click.option("--train", "train_files", multiple=True, type=click.Path(path_type=Path),
              help="train.csv in the competition's format; repeat for extra data (deduplicated).")
@click.option("--folds", type=click.IntRange(min=2, max=100), help="Number of folds K.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Folder for fold-<i>/ model dirs, oof.csv and cv.json.")
@click.option("--fold-ids", help="Comma-separated folds to train now (default: all), e.g. one per kernel.")
@click.option("--gather", "gather_dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Instead of training: merge pulled fold outputs (repeat) into --out/oof.csv and cv.json.")
@click.option("--exclude-test", type=click.Path(path_type=Path),
              help="Drop training rows that also appear in this test.csv.")
@config_flags(TrainConfig, exclude=("fold",))
@click.option("--overwrite", is_flag=True, help="Train folds that already exist again; replace oof.csv/cv.json.")
@config_option
@json_option
@pass_kit
def cv_cmd(kit: KitContext, train_files, folds, out: Path, fold_ids, gather_dirs, exclude_test, overwrite: bool,
           as_json: bool, **flags) -> None:
    """K-fold training, stratified and grouped by prompt: fold model dirs, out-of-fold predictions, cv.json."""
    from .cv import find_fold_dirs, gather, parse_fold_ids, run_cv

    if gather_dirs:
        if train_files or folds or fold_ids:
            raise click.UsageError("--gather merges finished folds: drop --train/--folds/--fold-ids")
        result = gather(find_fold_dirs(list(gather_dirs)), out, kit.spec, overwrite=overwrite)
    else:
        if not train_files or not folds:
            raise click.UsageError("cv needs --train and --folds (or --gather DIR...)")
        cfg, note = _resolved_train_config(kit, flags)
        result = run_cv(list(train_files), out, folds, cfg, kit.spec, parse_fold_ids(fold_ids, folds),
                        kit.config.column_maps, exclude_test, overwrite=overwrite,
                        echo=lambda m: click.echo(m, err=True), recipe_note=note)
    if not result:  # a non-zero DDP rank
        return
    if not result["complete"]:
        emit(result, as_json, f"{result['folds_done']} of {result['folds']} folds in {out}; missing "
                              f"{', '.join(map(str, result['missing']))} (train them with --fold-ids, or gather)")
        return
    per_fold = ", ".join(f"{f['log_loss']:.4f}" for f in result["per_fold"])
    emit(result, as_json, f"OOF log loss {result['oof_log_loss']:.4f} over {result['rows']} rows (folds {per_fold}; "
                          f"mean {result['mean_log_loss']:.4f} +- {result['std_log_loss']:.4f}); wrote {result['oof']}")


@main.command("blend")
@click.option("--oof", "oofs", multiple=True, required=True,
              help="An oof.csv of `cv` (its fold models are found via cv.json), or FILE=MODEL_DIR[,MODEL_DIR]; repeat.")
@click.option("--train", "train_files", multiple=True, type=click.Path(path_type=Path),
              help="The training file(s) of the OOF rows: test the post-processing rules on them.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="blend.json to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@config_option
@json_option
@pass_kit
def blend_cmd(kit: KitContext, oofs, train_files, out: Path, overwrite: bool, as_json: bool) -> None:
    """Fit non-negative weights and a temperature on OOF predictions; keep only rules that help; write blend.json."""
    from .atomic import refuse_overwrite
    from .blending import fit_blend, parse_member, save_blend

    refuse_overwrite(out, overwrite)
    fitted = fit_blend([parse_member(o) for o in oofs], kit.spec, list(train_files), kit.config.column_maps)
    save_blend(fitted, out, overwrite=overwrite)
    r = fitted.report
    lines = [f"{m.name}: OOF log loss {m.oof_log_loss:.4f}, weight {m.weight:.3f}" for m in fitted.members]
    best = r["best_single"]
    lines.append(f"blend: OOF log loss {r['blend_log_loss']:.4f} over {r['rows']} rows (best single "
                 f"{best['name']} {best['log_loss']:.4f}), temperature {fitted.temperature:.3f}")
    if isinstance(r["rules"], list):
        lines += [f"rule {x['rule']}: {x['rows']} row(s), log loss {x['log_loss_before']:.4f} -> "
                  f"{x['log_loss_after']:.4f}: {'kept' if x['kept'] else 'dropped'}" for x in r["rules"]]
    else:
        lines.append(f"rules: {r['rules']}")
    lines.append(f"wrote {out}")
    data = {"out": str(out), "temperature": fitted.temperature, "rules": fitted.rules, **r,
            "members": [{"name": m.name, "weight": m.weight, "oof_log_loss": m.oof_log_loss} for m in fitted.members]}
    emit(data, as_json, "\n".join(lines))


@main.command("pseudo-label", epilog=CONFIG_HINT)
@click.option("--model", "models", multiple=True, type=click.Path(path_type=Path),
              help="Model dir written by train; repeat to blend (or --blend blend.json).")
@click.option("--weights", help="Comma-separated weights, one per --model (default: equal).")
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="Unlabelled pairs in test format (id, prompt, response_a, response_b; extra columns ignored).")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path),
              help="Train-format CSV to write (winner_* columns hold probabilities).")
@click.option("--min-confidence", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Keep only rows whose most likely class has at least this probability.")
@click.option("--backbone", help="Backbone folder to use instead of the one recorded at training time.")
@config_flags(PredictConfig)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@config_option
@json_option
@pass_kit
def pseudo_label_cmd(kit: KitContext, models, weights, input_path: Path, out_path: Path, min_confidence: float,
                     backbone, overwrite: bool, as_json: bool, **flags) -> None:
    """Predict unlabelled pairs and write them as soft labels: `train --train train.csv --train PL.csv` uses them."""
    from .config import with_overrides
    from .pseudo_label import pseudo_label

    cfg = with_overrides(kit.config.predict, **flag_values(flags, PredictConfig))
    r = pseudo_label(list(models), input_path, out_path, kit.spec, cfg, _parse_weights(weights), min_confidence,
                     backbone, overwrite=overwrite, progress=not as_json)
    emit(r, as_json, f"wrote {r['path']}: {r['rows']} of {r['rows_in']} rows (mean confidence "
                     f"{r['mean_confidence']:.3f}; {r['dropped_low_confidence']} below --min-confidence)")


@main.command("quickstart")
@click.option("--workdir", default="quickstart", show_default=True, type=click.Path(path_type=Path),
              help="Work files go to a new WORKDIR/run-N folder.")
@click.option("--rows", default=2000, show_default=True, type=click.IntRange(min=100),
              help="Sample training rows (2,000: what the cpu-smoke recipe's seed sweep measured).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Random seed.")
@json_option
def quickstart_cmd(workdir: Path, rows: int, seed: int, as_json: bool) -> None:
    """Sample data -> tiny backbone -> train -> predict with swap TTA -> validated CSV, offline, on CPU."""
    from .quickstart import run_quickstart

    r = run_quickstart(workdir, rows=rows, seed=seed)
    data = {"submission": str(r.submission), "workdir": str(r.workdir), "holdout_log_loss": r.holdout_log_loss,
            "calibrated_log_loss": r.calibrated_log_loss, "prior_log_loss": r.prior_log_loss,
            "seconds": round(r.seconds, 1)}
    final = f", {r.calibrated_log_loss:.4f} with the length side head" if r.side_head else ""
    emit(data, as_json, f"holdout log loss {r.holdout_log_loss:.4f}{final} vs class-prior baseline "
                        f"{r.prior_log_loss:.4f}\n"
                        f"validated submission: {r.submission}  (work files in {r.workdir}, {r.seconds:.0f}s)")


@main.group("bench", cls=KitGroup)
def bench_group() -> None:
    """Benchmarks (not tests): our paths against the notebook's, measured in one run."""


bench_max_len_option = click.option("--max-len", default=1024, show_default=True,
                                    type=click.IntRange(min=16, max=131072), help="Tokens per row.")


@bench_group.command("predict")
@click.option("--rows", default=200, show_default=True, type=click.IntRange(min=8), help="Sample rows to predict.")
@bench_max_len_option
@click.option("--hidden", default=256, show_default=True, type=click.IntRange(min=16, max=4096),
              help="Hidden size of the random backbone.")
@click.option("--layers", default=4, show_default=True, type=click.IntRange(min=1, max=48), help="Encoder layers.")
@click.option("--max-tokens", default=8192, show_default=True, type=click.IntRange(min=16),
              help="Padded tokens per batch.")
@json_option
def bench_predict_cmd(rows: int, max_len: int, hidden: int, layers: int, max_tokens: int, as_json: bool) -> None:
    """Notebook inference path (dataset.map, unsorted batches of 16, Trainer.predict) vs ours."""
    from .bench import bench_predict

    result = bench_predict(rows=rows, max_len=max_len, hidden=hidden, layers=layers, max_tokens=max_tokens)
    emit(result.to_dict(), as_json, result.table())


@bench_group.command("padding")
@click.option("--rows", default=1000, show_default=True, type=click.IntRange(min=16), help="Sample rows to encode.")
@bench_max_len_option
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1, max=4096),
              help="Rows per batch.")
@json_option
def bench_padding_cmd(rows: int, max_len: int, batch_size: int, as_json: bool) -> None:
    """Padding tokens per training batch with and without length grouping."""
    from .bench import bench_padding

    result = bench_padding(rows=rows, max_len=max_len, batch_size=batch_size)
    emit(result, as_json, "\n".join(f"{k}: {v}" for k, v in result.items()))


@bench_group.command("seeds")
@click.option("--recipe", default="cpu-smoke", show_default=True, help="Recipe to check.")
@click.option("--rows", default=2000, show_default=True, type=click.IntRange(min=100), help="Sample training rows.")
@click.option("--seeds", default="0,1,2,3,4", show_default=True, help="Comma-separated seeds.")
@click.option("--backbone", type=click.Path(path_type=Path), help="Backbone folder (default: a tiny random one).")
@json_option
def bench_seeds_cmd(recipe: str, rows: int, seeds: str, backbone: Path | None, as_json: bool) -> None:
    """Seed stability: one training per seed on sample data; every seed must beat the prior by > 0.05 nats."""
    from .bench_seeds import bench_seeds

    try:
        seed_list = tuple(int(s) for s in seeds.split(","))
    except ValueError:
        raise click.BadParameter(f"'{seeds}' is not a comma-separated list of integers", param_hint="--seeds") from None
    result = bench_seeds(recipe, rows, seed_list, str(backbone) if backbone else None,
                         echo=None if as_json else lambda m: click.echo(m, err=True))
    emit(result, as_json, f"{recipe}: worst margin {result['worst_margin']:+.4f} nats over seeds {seeds} -> "
                          f"{'stable' if result['stable'] else 'NOT stable'} (needs > {result['required_margin']})")
    if not result["stable"]:
        sys.exit(ExitStatus.FAILED)


def with_account(cfg):
    """No username in kaggle-kit.toml: use the account of the credentials the kaggle client uses."""
    if not cfg.username:
        from .remote.client import account_username

        cfg.username = account_username()
    return cfg


@plan_group.command("infer")
@click.option("--from", "source", required=True, type=click.Path(path_type=Path),
              help="A measured throughput: `predict --time-budget --json` output, a kernel's kaggle_kit_run.json or "
                   "`bench predict --json` output.")
@click.option("--rows", type=click.IntRange(min=1), help="Hidden test rows (default: the competition's).")
@click.option("--limit", help="Runtime limit, e.g. 9h (default: the competition's).")
@click.option("--budget", "time_budget",
              help="The kernel's time budget (default: [predict] time_budget, else a safe share of the limit).")
@click.option("--max-len", "max_lens", multiple=True, type=click.IntRange(min=16),
              help="max_len to project (repeatable; default: the measured one).")
@click.option("--models", default=2, show_default=True, type=click.IntRange(1, 8),
              help="Project blends of 1 up to this many models.")
@config_option
@json_option
@pass_kit
def plan_infer_cmd(kit: KitContext, source: Path, rows, limit, time_budget, max_lens, models, as_json) -> None:
    """Project the infer kernel's runtime on the hidden test per option set (TTA, max_len, models); flag misfits."""
    from .budget import default_budget, parse_duration
    from .plan_infer import plan_dict, plan_infer, plan_table, read_measurement

    spec = kit.spec
    limit_s = _duration(limit, "--limit") if limit else spec.time_limit_s
    if not limit_s:
        raise click.UsageError(f"no runtime limit known for {spec.slug}: pass --limit")
    rows = rows or spec.hidden_test_rows
    if not rows:
        raise click.UsageError(f"no hidden test size known for {spec.slug}: pass --rows")
    budget_s = (_duration(time_budget, "--budget") if time_budget else
                parse_duration(kit.config.predict.time_budget) if kit.config.predict.time_budget is not None else
                default_budget(limit_s))
    measured = read_measurement(source)
    projections = plan_infer(measured, rows, budget_s, limit_s, list(max_lens) or [measured.max_len], models)
    emit(plan_dict(measured, rows, budget_s, limit_s, projections), as_json,
         plan_table(measured, rows, budget_s, limit_s, projections))


def _duration(value: str, flag: str) -> float:
    from .budget import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} {exc}", param_hint=flag) from None


def _now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


@main.command("build-kernel")
@click.argument("task", type=click.Choice(["train", "infer"]))
@click.option("--out", type=click.Path(path_type=Path), help="Default: kernels/build/<slug>.")
@click.option("--model", help="Dataset owner/slug holding the trained model dir (infer).")
@click.option("--backbone", help="Dataset owner/slug holding the backbone weights.")
@click.option("--notebook", is_flag=True, help="Write an .ipynb (kernel_type notebook) instead of a script.")
@click.option("--fold", help="train: run fold i of K (i/K) in its own kernel, slug <train_slug>-fold-i; "
                             "gather the pulled outputs with `cv --gather`.")
@click.option("--overwrite", is_flag=True)
@config_option
@json_option
@pass_kit
def build_kernel_cmd(kit: KitContext, task, out, model, backbone, notebook, fold, overwrite, as_json) -> None:
    """Build a self-contained Kaggle kernel (script + kernel-metadata.json) embedding kaggle_kit."""
    from .config import with_overrides
    from .kernels import build_kernel

    cfg = with_account(kit.config)
    cfg.datasets = with_overrides(cfg.datasets, model=model, backbone=backbone)
    _fold_kernel(cfg, task, fold)
    slug = cfg.kernel.train_slug if task == "train" else cfg.kernel.infer_slug
    build = build_kernel(task, cfg, out or Path("kernels/build") / slug, overwrite=overwrite, notebook=notebook)
    emit({"folder": str(build.folder), "script": str(build.script), "metadata": build.metadata}, as_json,
         f"built {build.script} ({build.script.stat().st_size // 1024} KiB) for {build.metadata['id']}")


def _fold_kernel(cfg, task: str, fold: str | None) -> None:
    """One fold per train kernel: the fold goes into the embedded config and the slug gets -fold-<i>."""
    if not fold:
        return
    from .config import with_overrides

    if task != "train":
        raise click.UsageError("--fold is for the train kernel")
    cfg.train = with_overrides(cfg.train, fold=fold)
    cfg.kernel = with_overrides(cfg.kernel, train_slug=f"{cfg.kernel.train_slug}-fold-{fold.split('/')[0]}")


@main.command("run-kernel")
@click.argument("build", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--input", "inputs", multiple=True, help="SLUG=PATH mounted as kaggle/input/SLUG (repeatable).")
@click.option("--working", type=click.Path(path_type=Path), help="Default: a new folder beside the build.")
@click.option("--python", "python", type=click.Path(exists=True, dir_okay=False), help="Interpreter to run it with.")
@click.option("--check-accelerator", is_flag=True, help="Fail as on Kaggle when the asked-for GPU is not visible.")
@click.option("--quiet", is_flag=True, help="Do not stream the kernel's log (it is still written to kernel.log).")
@json_option
def run_kernel_cmd(build: Path, inputs, working, python, check_accelerator, quiet, as_json) -> None:
    """Dry-run a built kernel locally with a simulated /kaggle layout and no network; streams its log."""
    from .atomic import next_free
    from .kernels import run_kernel_locally

    mounts = {}
    for item in inputs:
        slug, sep, path = item.partition("=")
        if not sep or not slug or not Path(path).is_dir():
            raise click.BadParameter(f"'{item}' is not SLUG=EXISTING_DIR", param_hint="--input")
        mounts[slug] = Path(path)
    working = working or next_free(build.parent, f"{build.name}-working")
    outputs = run_kernel_locally(build, mounts, working, python=python, check_accelerator=check_accelerator,
                                 echo=None if quiet else (lambda line: click.echo(f"| {line}", err=True)))
    emit([str(p) for p in outputs], as_json, "\n".join(["outputs:", *(f"  {p}" for p in outputs)]))


@main.command("push-kernel")
@click.argument("task", type=click.Choice(["train", "infer"]))
@click.option("--wait", is_flag=True, help="Wait until the run ends.")
@click.option("--interval", default=30.0, show_default=True)
@click.option("--force", is_flag=True, help="Push even while a previous version is still queued or running.")
@click.option("--fold", help="train: run fold i of K (i/K) in its own kernel, slug <train_slug>-fold-i.")
@dry_run_option
@config_option
@json_option
@pass_kit
def push_kernel_cmd(kit: KitContext, task, wait, interval, force, fold, dry_run, as_json) -> None:
    """Build, then push a kernel to run on Kaggle; prints version and URL (a dry run writes nothing)."""
    from .remote.kernels import push, wait_for_kernel

    cfg = with_account(kit.config)
    _fold_kernel(cfg, task, fold)
    slug = cfg.kernel.train_slug if task == "train" else cfg.kernel.infer_slug
    result = push(task, cfg, Path("kernels/build") / slug, dry_run=dry_run, force=force)
    emit(result, as_json, json.dumps(result, indent=2) if dry_run
         else f"pushed {result['id']} version {result['version']}: {result['url']}")
    if wait and not dry_run:
        status, failure = wait_for_kernel(result["id"], interval=interval, echo=lambda m: click.echo(m, err=True))
        if status != "COMPLETE":
            raise KitError(f"{result['id']} ended {status}: {failure or 'no message'}")


@main.command("status")
@click.argument("kernel")
@click.option("--wait", is_flag=True)
@click.option("--interval", default=30.0, show_default=True)
@click.option("--timeout", default=12 * 3600.0, show_default=True)
@json_option
def status_cmd(kernel, wait, interval, timeout, as_json) -> None:
    """A kernel's state (QUEUED/RUNNING/COMPLETE/ERROR); exit 1 on ERROR."""
    from .remote.kernels import kernel_status, wait_for_kernel

    if wait:
        status, failure = wait_for_kernel(kernel, interval, timeout, echo=lambda m: click.echo(m, err=True))
    else:
        status, failure = kernel_status(kernel)
    emit({"kernel": kernel, "status": status, "failure": failure}, as_json, f"{kernel}: {status}")
    if status == "ERROR":
        raise KitError(f"{kernel} failed: {failure or 'no message'}")


@main.command("pull")
@click.argument("kernel")
@click.option("--to", default="outputs", show_default=True, type=click.Path(path_type=Path))
@json_option
def pull_cmd(kernel, to, as_json) -> None:
    """Download a kernel's outputs and log into a new versioned folder."""
    from .remote.kernels import pull_kernel

    folder, files = pull_kernel(kernel, to)
    emit({"folder": str(folder), "files": files}, as_json, f"pulled {len(files)} file(s) into {folder}")


@main.command("upload")
@click.argument("kind", type=click.Choice(["model", "code", "wheels"]))
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--dataset", required=True, help="owner/slug")
@click.option("-m", "--message", default="", help="Version notes.")
@click.option("--with-checkpoints", is_flag=True, help="Also send training checkpoints.")
@dry_run_option
@json_option
def upload_cmd(kind, path, dataset, message, with_checkpoints, dry_run, as_json) -> None:
    """Upload a model dir, the kaggle-kit wheel, or offline wheels as a dataset (create or new version)."""
    from .remote.datasets import upload_dataset

    if kind == "model" and path is None:
        raise click.UsageError("upload model needs PATH (a train --out folder)")
    result = upload_dataset(kind, path or Path("."), dataset, message, with_checkpoints, dry_run,
                            echo=lambda m: click.echo(m, err=True))
    emit(result, as_json, "dry run: nothing sent" if dry_run else f"{result['action']}d {dataset}: {result['url']}")


@main.group("datasets", cls=KitGroup)
def datasets_group() -> None:
    """Kaggle datasets: processing state after an upload."""


@datasets_group.command("status")
@click.argument("dataset")
@click.option("--wait", is_flag=True, help="Poll until READY (or FAILED).")
@click.option("--interval", default=10.0, show_default=True)
@click.option("--timeout", default=3600.0, show_default=True)
@json_option
def datasets_status_cmd(dataset, wait, interval, timeout, as_json) -> None:
    """A dataset's processing state (ready when kernels can use it)."""
    from .remote.datasets import dataset_state, wait_for_dataset

    state = (wait_for_dataset(dataset, interval, timeout, echo=lambda m: click.echo(m, err=True)) if wait
             else dataset_state(dataset))
    emit({"dataset": dataset, "status": state}, as_json, f"{dataset}: {state}")
    if state == "FAILED":
        raise KitError(f"{dataset} processing failed", hint="upload it again")


@main.command("submit")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.option("-m", "--message", required=True)
@click.option("--kernel", help="owner/slug of a code-competition kernel.")
@click.option("--version", "kernel_version", type=click.IntRange(min=1),
              help="Kernel version (default: the last one push-kernel saw COMPLETE).")
@click.option("--sample-submission", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Submit within 24 h of the deadline.")
@dry_run_option
@config_option
@json_option
@pass_kit
def submit_cmd(kit: KitContext, file, message, kernel, kernel_version, sample_submission, force, dry_run,
               as_json) -> None:
    """Validate, then submit a file or a kernel version; refuses after the deadline or past the daily limit."""
    from .remote.submit import submit_file, submit_kernel

    cfg = kit.config
    spec = kit.spec
    if (file is None) == (kernel is None):
        raise click.UsageError("give either FILE or --kernel owner/slug")
    if kernel:
        result = submit_kernel(kernel, kernel_version, message, spec, _now(), force, dry_run)
    else:
        sample = sample_submission or cfg.competition_data_dir / "sample_submission.csv"
        if sample_submission is not None and not sample_submission.exists():
            raise click.BadParameter(f"{sample_submission} does not exist", param_hint="--sample-submission")
        result = submit_file(file, message, spec, sample, _now(), force, dry_run)
    if result.get("warning"):
        click.echo(f"warning: {result['warning']}", err=True)
    emit(result, as_json, "dry run: nothing sent" if dry_run else
         f"submitted: ref {result['ref']}; {result['remaining_today']} submission(s) left today")


@main.command("deadline")
@config_option
@json_option
@pass_kit
def deadline_cmd(kit: KitContext, as_json) -> None:
    """The competition deadline, time left and today's remaining submissions."""
    from .remote.client import get_api
    from .remote.submit import deadline_info

    spec = kit.spec
    info = deadline_info(get_api(), spec)
    now = _now()
    left = info.left(now)
    emit({"deadline": info.deadline, "seconds_left": int(left.total_seconds()) if left else None,
          "remaining_today": info.remaining_today}, as_json,
         f"{spec.slug}: deadline {info.describe(now)}; {info.remaining_today} submission(s) left today")


@main.command("submissions")
@click.option("--wait", "wait_ref", type=int, help="Wait until this submission is scored.")
@config_option
@json_option
@pass_kit
def submissions_cmd(kit: KitContext, wait_ref, as_json) -> None:
    """List submissions with status and public score."""
    from .remote.submit import list_submissions, wait_for_score

    spec = kit.spec
    if wait_ref:
        sub = wait_for_score(spec, wait_ref, echo=lambda m: click.echo(m, err=True))
        emit(sub, as_json, f"{sub['ref']}: {sub['status']} {sub['public_score']}")
        return
    subs = list_submissions(spec)
    emit(subs, as_json, "\n".join(f"{s['ref']}  {s['status']:<10} {s['public_score'] or '-':>8}  {s['description']}"
                                  + (f"  ({s['error']})" if s["error"] else "") for s in subs))


@main.command("download")
@click.option("--competition", help="Default: from kaggle-kit.toml.")
@click.option("--to", type=click.Path(path_type=Path), help="Default: data/<competition>.")
@dry_run_option
@config_option
@json_option
@pass_kit
def download_cmd(kit: KitContext, competition, to, dry_run, as_json) -> None:
    """Download, unzip and verify the competition's files (skips files already verified)."""
    from .competition import get_spec
    from .remote.download import download

    cfg = kit.config
    spec = get_spec(competition or cfg.competition)
    result = download(spec, to or cfg.competition_data_dir, dry_run)
    emit(result, as_json, json.dumps(result, indent=2))


@main.command("init")
@click.argument("directory", default=".", type=click.Path(path_type=Path))
@click.option("--competition", default="lmsys-chatbot-arena", show_default=True)
@click.option("--username", default=None, help="Kaggle username (default: the account of your Kaggle credentials).")
def init_cmd(directory: Path, competition: str, username: str | None) -> None:
    """Write a commented kaggle-kit.toml and a .gitignore (never overwrites), then print the next commands."""
    from .project import init_project

    for path in init_project(directory, competition, username):
        click.echo(f"wrote {path}")
    click.echo("next:\n  kaggle-kit doctor\n  kaggle-kit download\n  kaggle-kit quickstart")


@main.command("doctor")
@click.option("--offline", is_flag=True, help="Skip the checks that call Kaggle.")
@config_option
@json_option
@pass_kit
def doctor_cmd(kit: KitContext, offline: bool, as_json: bool) -> None:
    """Green/red checks of the environment, credentials (never their value), rules and config; exit 1 if one required
    fails."""
    from .doctor import as_dicts, check_disk, local_checks
    from .remote.checks import remote_checks

    cfg = kit.config
    checks = [*local_checks(cfg), *remote_checks(cfg, offline), check_disk()]
    if as_json:
        emit(as_dicts(checks), True)
    else:
        for c in checks:
            if c.ok:
                mark = click.style("ok  ", fg="green")
            else:
                mark = click.style("FAIL" if c.required else "warn", fg="red" if c.required else "yellow")
            click.echo(f"{mark} {c.name}: {c.detail}" + ("" if c.ok or not c.fix else f"  -> {c.fix}"))
    if any(c.required and not c.ok for c in checks):
        sys.exit(ExitStatus.FAILED)


@main.command("report")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Default: MODEL_DIR/report.")
@click.option("--overwrite", is_flag=True, help="Replace an existing report (only the report's own files).")
@json_option
def report_cmd(model_dir: Path, out, overwrite: bool, as_json: bool) -> None:
    """Holdout log loss/accuracy vs the prior, confusion matrix, reliability diagram and loss curves (PNG + HTML)."""
    from .report import build_report

    s = build_report(model_dir, out, overwrite=overwrite)
    emit(s, as_json, f"holdout log loss {s['log_loss']:.4f} vs prior {s['prior_log_loss']:.4f}, accuracy "
                     f"{s['accuracy']:.3f}; open {s['html']}")


if __name__ == "__main__":  # `torchrun --nproc_per_node 2 -m kaggle_kit.cli train ...` for DDP on several GPUs
    main()
