"""`config`, `init`, `doctor`, `quickstart`, `bench`, `report`: the project and its tools."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kaggle_kit.atomic import check_writable
from kaggle_kit.cli.app import KitGroup, emit, main
from kaggle_kit.cli.options import (
    GroupedCommand,
    KitContext,
    config_flags,
    config_option,
    json_option,
    pass_kit,
)
from kaggle_kit.config import TrainConfig
from kaggle_kit.errors import ExitStatus
from kaggle_kit.model.packing import PACK_TOKENS
from kaggle_kit.model.tiny_backbone import ARCHES


@main.command("config", cls=GroupedCommand)
@config_flags(TrainConfig, first_class=("recipe",))
@config_option
@json_option
@pass_kit
def config_cmd(kit: KitContext, as_json: bool, **_flags) -> None:
    """Print the configuration exactly as `train` would use it (defaults < recipe < kaggle-kit.toml < --set <
    flags) and where each key came from; exit 1 on a bad value."""
    from kaggle_kit.config.show import config_text, config_view

    _ = kit.spec  # an unknown competition is a bad value too: every data command would fail on it
    emit(config_view(kit.config), as_json, config_text(kit.config))


@main.command("quickstart")
@click.option("--workdir", default="quickstart", show_default=True, type=click.Path(path_type=Path),
              help="Work files go to a new WORKDIR/run-N folder.")
@click.option("--rows", default=2000, show_default=True, type=click.IntRange(min=100),
              help="Sample training rows (2,000: what the cpu-smoke recipe's seed sweep measured).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Random seed.")
@json_option
def quickstart_cmd(workdir: Path, rows: int, seed: int, as_json: bool) -> None:
    """Sample data -> tiny backbone -> train -> predict with swap TTA -> validated CSV, offline, on CPU."""
    from kaggle_kit.quickstart import run_quickstart

    check_writable(workdir, folder=True)
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


@bench_group.command("validate")
@click.option("--rows", default=25_000, show_default=True, type=click.IntRange(min=10, max=10_000_000),
              help="Submission rows (25,000: LMSYS's hidden test).")
@click.option("--repeat", default=3, show_default=True, type=click.IntRange(min=1, max=100), help="Best of N runs.")
@json_option
def bench_validate_cmd(rows: int, repeat: int, as_json: bool) -> None:
    """Write (order, check, write) and validate (read, check) a submission of each competition's shape."""
    from kaggle_kit.evaluation.bench_validate import bench_validate

    results = bench_validate(rows, repeat)
    emit(results, as_json, "\n".join(f"{r['competition']} ({r['submission']}, {r['rows']} rows): write "
                                     f"{r['write_s']:.3f}s, validate {r['validate_s']:.3f}s" for r in results))


@bench_group.command("predict")
@click.option("--rows", default=200, show_default=True, type=click.IntRange(min=8), help="Sample rows to predict.")
@bench_max_len_option
@click.option("--hidden", default=256, show_default=True, type=click.IntRange(min=16, max=4096),
              help="Hidden size of the random backbone.")
@click.option("--layers", default=4, show_default=True, type=click.IntRange(min=1, max=48), help="Encoder layers.")
@click.option("--max-tokens", default=8192, show_default=True, type=click.IntRange(min=16),
              help="Padded tokens per batch.")
@click.option("--arch", type=click.Choice(list(ARCHES)), default="deberta-v3", show_default=True,
              help="Random backbone shape; a decoder (llama, gemma2, qwen2, mistral) adds the packed path.")
@click.option("--pack-tokens", default=PACK_TOKENS, show_default=True, type=click.IntRange(min=16, max=1_000_000),
              help="Tokens per pack on the packed path (to measure the pack length).")
@json_option
def bench_predict_cmd(rows: int, max_len: int, hidden: int, layers: int, max_tokens: int, arch: str,
                      pack_tokens: int, as_json: bool) -> None:
    """Notebook inference path (dataset.map, unsorted batches of 16, Trainer.predict) vs ours, padded and packed."""
    from kaggle_kit.evaluation.bench import bench_predict

    result = bench_predict(rows=rows, max_len=max_len, hidden=hidden, layers=layers, max_tokens=max_tokens,
                           arch=arch, pack_tokens=pack_tokens)
    emit(result.to_dict(), as_json, result.table())


@bench_group.command("padding")
@click.option("--rows", default=1000, show_default=True, type=click.IntRange(min=16), help="Sample rows to encode.")
@bench_max_len_option
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1, max=4096),
              help="Rows per batch.")
@json_option
def bench_padding_cmd(rows: int, max_len: int, batch_size: int, as_json: bool) -> None:
    """Padding tokens per training batch with and without length grouping."""
    from kaggle_kit.evaluation.bench import bench_padding

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
    from kaggle_kit.evaluation.bench_seeds import bench_seeds

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


@main.command("init")
@click.argument("directory", default=".", type=click.Path(path_type=Path))
@click.option("--competition", default="lmsys-chatbot-arena", show_default=True,
              help="Competition slug the project is for (`kaggle-kit config` shows what it resolves to).")
@click.option("--username", default=None, help="Kaggle username (default: the account of your Kaggle credentials).")
def init_cmd(directory: Path, competition: str, username: str | None) -> None:
    """Write a commented kaggle-kit.toml and a .gitignore (never overwrites), then print the next commands."""
    from kaggle_kit.config.init_template import init_project

    check_writable(directory, folder=True)
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
    from kaggle_kit.doctor import as_dicts, check_disk, local_checks
    from kaggle_kit.remote.checks import remote_checks

    cfg = kit.config
    checks = [*local_checks(cfg, kit.spec_problem()), *remote_checks(cfg, offline), check_disk()]
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
    from kaggle_kit.evaluation.report import build_report

    check_writable(out if out is not None else model_dir / "report", folder=True)
    s = build_report(model_dir, out, overwrite=overwrite)
    emit(s, as_json, f"holdout log loss {s['log_loss']:.4f} vs prior {s['prior_log_loss']:.4f}, accuracy "
                     f"{s['accuracy']:.3f}; open {s['html']}")
