"""`sample-data`, `competitions`, `validate`, `download`: the competition's files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kaggle_kit.atomic import check_writable
from kaggle_kit.cli.app import emit, main
from kaggle_kit.cli.options import (
    KitContext,
    config_option,
    dry_run_option,
    json_option,
    pass_kit,
)
from kaggle_kit.errors import ExitStatus


@main.command("sample-data")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--rows", default=1000, show_default=True, type=click.IntRange(min=10), help="Training rows.")
@click.option("--test-rows", default=None, type=click.IntRange(min=1), help="Test rows (default: rows/4).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Random seed.")
@click.option("--overwrite", is_flag=True, help="Replace existing files.")
@click.option("--competition", help="Shape of which competition (`kaggle-kit competitions`; default: the project's).")
@config_option
@pass_kit
def sample_data_cmd(kit: KitContext, directory: Path, rows: int, test_rows: int | None, seed: int, overwrite: bool,
                    competition: str | None) -> None:
    """Write competition-shaped train, test (CSV or parquet, as the competition's) and sample_submission.csv into
    DIRECTORY."""
    from kaggle_kit.competition.sample_data import write_sample_data

    if directory.exists() and not directory.is_dir():
        raise click.BadParameter(f"{directory} is a file; sample-data writes three files into a folder",
                                 param_hint="DIRECTORY")
    spec = kit.spec_for(competition)
    check_writable(directory, folder=True)
    files = write_sample_data(directory, rows=rows, test_rows=test_rows, seed=seed, spec=spec, overwrite=overwrite)
    click.echo(f"wrote {files.train}, {files.test}, {files.sample_submission}")


@main.command("competitions")
@json_option
def competitions_cmd(as_json: bool) -> None:
    """The competitions kaggle-kit knows: files, labels, metric, submission (describe another in kaggle-kit.toml)."""
    from kaggle_kit.competition.spec import shipped_specs

    specs = [shipped_specs()[slug] for slug in sorted(shipped_specs())]
    lines = [f"{s.slug}: {s.format} ({s.train_file}, {s.test_file}), {s.num_labels} classes "
             f"({', '.join(s.classes)}), {s.metric_name}, submission {','.join(s.submission_columns)}"
             + (f", limit {s.time_limit_s / 3600:g} h" if s.time_limit_s else "") for s in specs]
    emit([s.to_dict() for s in specs], as_json, "\n".join(lines))


@main.command("validate")
@click.argument("submission", type=click.Path(path_type=Path))
@click.option("--test", "test_path", type=click.Path(path_type=Path), help="test.csv whose ids the file must cover.")
@click.option("--sample-submission", type=click.Path(path_type=Path), help="sample_submission.csv to match.")
@config_option
@json_option
@pass_kit
def validate_cmd(kit: KitContext, submission: Path, test_path: Path | None, sample_submission: Path | None,
                 as_json: bool) -> None:
    """Check a submission: header, ids, and finite values in [0, 1] summing to 1 per row (or, where the competition
    scores labels, only its label values)."""
    from kaggle_kit.submission import expected_ids, validate_file

    report = validate_file(submission, expected_ids(kit.spec, sample_submission, test_path), kit.spec)
    emit(report.to_dict(), as_json, report.summary())
    if not report.ok:
        sys.exit(ExitStatus.FAILED)


@main.command("download")
@click.option("--competition", help="Default: from kaggle-kit.toml.")
@click.option("--to", type=click.Path(path_type=Path), help="Default: data/<competition>.")
@dry_run_option
@config_option
@json_option
@pass_kit
def download_cmd(kit: KitContext, competition, to, dry_run, as_json) -> None:
    """Download, unzip and verify the competition's files (skips files already verified)."""
    from kaggle_kit.remote.download import download

    spec = kit.spec_for(competition)
    to = to or (kit.config.competition_data_dir if competition in (None, kit.config.competition)
                else Path("data") / spec.slug)
    check_writable(to, folder=True)  # before asking Kaggle or downloading anything
    result = download(spec, to, dry_run)
    emit(result, as_json, json.dumps(result, indent=2))
