"""`upload`, `datasets`, `submit`, `deadline`, `submissions`: datasets and submissions on Kaggle."""

from __future__ import annotations

from pathlib import Path

import click

from kaggle_kit.cli.app import KitGroup, emit, main
from kaggle_kit.cli.options import (
    KitContext,
    config_option,
    dry_run_option,
    interval_option,
    json_option,
    pass_kit,
    timeout_option,
)
from kaggle_kit.errors import ExitStatus, KitError


def _now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


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
    from kaggle_kit.remote.datasets import upload_dataset

    if kind == "model" and path is None:
        raise click.UsageError("upload model needs PATH (a train --out folder)")
    result = upload_dataset(kind, path or Path("."), dataset, message, with_checkpoints, dry_run,
                            echo=lambda m: click.echo(m, err=True))
    done = {"create": "created", "version": "new version of"}.get(result.get("action"), result.get("action"))
    emit(result, as_json, "dry run: nothing sent" if dry_run else f"{done} {dataset}: {result['url']}")


@main.group("datasets", cls=KitGroup)
def datasets_group() -> None:
    """Kaggle datasets: processing state after an upload."""


@datasets_group.command("status")
@click.argument("dataset")
@click.option("--wait", is_flag=True, help="Poll until READY (or FAILED).")
@interval_option(10.0)
@timeout_option(3600.0)
@json_option
def datasets_status_cmd(dataset, wait, interval, timeout, as_json) -> None:
    """A dataset's processing state (ready when kernels can use it)."""
    from kaggle_kit.config.project import check_ref
    from kaggle_kit.remote.datasets import dataset_state, wait_for_dataset

    check_ref(dataset, "dataset")  # before asking Kaggle
    state = (wait_for_dataset(dataset, interval, timeout, echo=lambda m: click.echo(m, err=True)) if wait
             else dataset_state(dataset))
    emit({"dataset": dataset, "status": state}, as_json, f"{dataset}: {state}")
    if state == "FAILED":
        raise KitError(f"{dataset} processing failed", hint="upload it again")


@main.command("submit")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.option("-m", "--message", required=True, help="Submission description shown on Kaggle.")
@click.option("--kernel", help="owner/slug of a code-competition kernel.")
@click.option("--version", "kernel_version", type=click.IntRange(min=1),
              help="Kernel version (default: the last one push-kernel saw COMPLETE).")
@click.option("--sample-submission", type=click.Path(path_type=Path),
              help="Reference ids for FILE (default: the local data folder's copy, else Kaggle's).")
@click.option("--force", is_flag=True, help="Submit within 24 h of the deadline.")
@dry_run_option
@config_option
@json_option
@pass_kit
def submit_cmd(kit: KitContext, file, message, kernel, kernel_version, sample_submission, force, dry_run,
               as_json) -> None:
    """Validate, then submit a file or a kernel version; refuses after the deadline or past the daily limit."""
    from kaggle_kit.remote.submit import submit_file, submit_kernel

    cfg = kit.config
    spec = kit.spec
    if (file is None) == (kernel is None):
        raise click.UsageError("give either FILE or --kernel owner/slug")
    if kernel:
        result = submit_kernel(kernel, kernel_version, message, spec, _now(), force, dry_run)
    else:
        if sample_submission is not None and not sample_submission.exists():
            raise click.BadParameter(f"{sample_submission} does not exist", param_hint="--sample-submission")
        # the local data folder's copy (download's, else sample-data's data/) before asking Kaggle for one
        local = [cfg.competition_data_dir / spec.sample_submission_file, Path("data") / spec.sample_submission_file]
        sample = sample_submission or next((p for p in local if p.is_file()), None)
        result = submit_file(file, message, spec, sample, _now(), force, dry_run)
    refusal = _window_refusal(spec, force) if dry_run else None
    if result.get("warning"):
        click.echo(f"warning: {result['warning']}", err=True)
    if result.get("outcome"):
        click.echo(f"warning: {result['outcome']}", err=True)
    reference = f" ({result['rows']} rows, valid against {result['reference']})" if "reference" in result else ""
    if refusal:
        result = {**result, "would_be_refused": refusal}
    emit(result, as_json, (f"dry run: nothing sent{reference}" + (f"; the real submit would be refused: {refusal}"
                                                                     if refusal else "")) if dry_run else
         f"submitted: ref {result['ref']}; {result['remaining_today']} submission(s) left today")
    if refusal:
        raise SystemExit(ExitStatus.FAILED)


def _window_refusal(spec, force: bool) -> str | None:
    """What the real submit would refuse (closed, no submissions left today, within 24 h without --force): a dry run
    reads the deadline and today's limit too (read-only calls), so it does not say 'valid' and leave that out."""
    from kaggle_kit.remote.client import get_api, optional_timeout
    from kaggle_kit.remote.submit import check_window, deadline_info

    wait = optional_timeout()
    click.echo(f"checking the deadline and today's submission limit on Kaggle (optional; up to {wait:.0f}s)",
               err=True)
    try:
        info = deadline_info(get_api(), spec, timeout=wait, retries=1)
    except KitError as exc:  # offline, no credentials: the file's check still stands, said without the window
        click.echo(f"warning: could not read the deadline and today's limit: {exc.format_line()}", err=True)
        return None
    try:
        check_window(info, _now(), force)
    except KitError as exc:
        return exc.format_line()
    return None


@main.command("deadline")
@config_option
@json_option
@pass_kit
def deadline_cmd(kit: KitContext, as_json) -> None:
    """The competition deadline, time left and today's remaining submissions."""
    from kaggle_kit.remote.client import get_api
    from kaggle_kit.remote.submit import deadline_info

    spec = kit.spec
    info = deadline_info(get_api(), spec)
    now = _now()
    left = info.left(now)
    emit({"deadline": info.deadline, "seconds_left": int(left.total_seconds()) if left else None,
          "remaining_today": info.remaining_today}, as_json,
         f"{spec.slug}: deadline {info.describe(now)}; {info.remaining_today} submission(s) left today")


@main.command("submissions")
@click.option("--wait", "wait_ref", type=int, help="Wait until this submission is scored.")
@click.option("--limit", type=click.IntRange(min=1), help="Show only the newest N (default: every page of 20).")
@config_option
@json_option
@pass_kit
def submissions_cmd(kit: KitContext, wait_ref, limit, as_json) -> None:
    """List submissions (newest first, every page) with status and public score."""
    from kaggle_kit.remote.submit import list_submissions, wait_for_score

    spec = kit.spec
    if wait_ref:
        sub = wait_for_score(spec, wait_ref, echo=lambda m: click.echo(m, err=True))
        emit(sub, as_json, f"{sub['ref']}: {sub['status']} {sub['public_score']}")
        return
    subs = list_submissions(spec, limit=limit)
    emit(subs, as_json, "\n".join(f"{s['ref']}  {s['status']:<10} {s['public_score'] or '-':>8}  {s['description']}"
                                  + (f"  ({s['error']})" if s["error"] else "") for s in subs))


@main.command("quota")
@json_option
def quota_cmd(as_json) -> None:
    """GPU hours used and left this week (Kaggle's accelerator quota)."""
    from kaggle_kit.remote.quota import gpu_quota

    quota = gpu_quota()
    emit(quota.as_dict(), as_json, quota.describe())
