"""`upload`, `datasets`, `submit`, `deadline`, `submissions`: datasets and submissions on Kaggle."""

from __future__ import annotations

import functools
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
@click.option("--dataset", help="owner/slug: upload as a Kaggle dataset (create or new version).")
@click.option("--kaggle-model", "kaggle_model",
              help="owner/model/framework/variation: publish a model dir as a Kaggle Model (the model and variation "
                   "when missing, else a new version; default: [models] handle).")
@click.option("--license", "license_name", help="Kaggle Model licence, e.g. 'Apache 2.0' (required: no default).")
@click.option("--public", is_flag=True, help="Create the Kaggle Model public (default: private).")
@click.option("-m", "--message", default="", help="Version notes (Kaggle Model default: the holdout figures).")
@click.option("--with-checkpoints", is_flag=True, help="Also send training checkpoints.")
@dry_run_option
@config_option
@json_option
@pass_kit
def upload_cmd(kit: KitContext, kind, path, dataset, kaggle_model, license_name, public, message, with_checkpoints,
               dry_run, as_json) -> None:
    """Upload a model dir, the kaggle-kit wheel, or offline wheels as a dataset, or publish a model dir as a Kaggle
    Model (private unless --public; --license required)."""
    if kind == "model" and path is None:
        raise click.UsageError("upload model needs PATH (a train --out folder)")
    if dataset and kaggle_model:
        raise click.UsageError("give --dataset or --kaggle-model, not both")
    echo = functools.partial(click.echo, err=True)
    if dataset is None and (kaggle_model or (kind == "model" and kit.config.models.handle)):
        if kind != "model":
            raise click.UsageError(f"--kaggle-model publishes a model dir: `upload model DIR --kaggle-model ...`, "
                                   f"not {kind}")
        _publish_model(kit, path, kaggle_model, license_name, public, message, with_checkpoints, dry_run, as_json)
        return
    if dataset is None:
        raise click.UsageError("give --dataset owner/slug, or --kaggle-model owner/model/framework/variation for a "
                               "model dir")
    if license_name or public:
        raise click.UsageError("--license and --public are for --kaggle-model (datasets are uploaded CC0)")
    from kaggle_kit.remote.datasets import upload_dataset

    result = upload_dataset(kind, path or Path("."), dataset, message, with_checkpoints, dry_run, echo=echo)
    if kind == "model" and not dry_run:
        from kaggle_kit.cli.runs import note

        note(f"upload of {path}", "record_upload", path, dataset)
    done = {"create": "created", "version": "new version of"}.get(result.get("action"), result.get("action"))
    emit(result, as_json, "dry run: nothing sent" if dry_run else f"{done} {dataset}: {result['url']}")


def _publish_model(kit: KitContext, path: Path, handle, license_name, public, message, with_checkpoints, dry_run,
                   as_json) -> None:
    """`upload model DIR --kaggle-model ...`: flags over [models]; prints the card and the calls on a dry run."""
    from kaggle_kit.remote.models import PublishSettings, publish_model

    cfg = kit.config
    models = cfg.models
    settings = PublishSettings(license=license_name or models.license, public=public or models.public,
                               title=models.title, notes=message, wait=models.wait, interval=models.poll_interval,
                               timeout=models.wait_timeout, with_checkpoints=with_checkpoints)
    echo = functools.partial(click.echo, err=True)
    result = publish_model(path, handle or models.handle, settings, backbone_ref=cfg.datasets.backbone,
                           dry_run=dry_run, echo=echo)
    echo("\n".join(f"  {f['path']} ({f['bytes']:,} bytes)" for f in result["files"]))
    if result["left_out"]:
        echo(f"left out: {', '.join(result['left_out'])} (secrets never leave the machine; --with-checkpoints "
             "sends checkpoints)")
    if not dry_run:
        from kaggle_kit.cli.runs import note

        note(f"upload of {path}", "record_upload", path, result["mount"])
    if dry_run:
        text = "\n".join([result["card"]["usage"], "dry run: nothing sent; a real run calls:",
                          *(f"  {i}. {c}" for i, c in enumerate(result["calls"], 1))])
    else:
        done = (f"created the {' and the '.join(result['created'])}" if result["created"] else "new version")
        text = (f"published {result['handle']} version {result['version']} ({done}, {result['license']}): "
                f"{result['url']}\nmount it: [datasets] model = \"{result['mount']}\" then kaggle-kit build-kernel "
                "infer")
    emit(result, as_json, text)


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
@click.option("--wait", is_flag=True, help="Then wait until Kaggle has scored it (the score goes into `runs`).")
@interval_option(10.0)
@timeout_option(3600.0)
@dry_run_option
@config_option
@json_option
@pass_kit
def submit_cmd(kit: KitContext, file, message, kernel, kernel_version, sample_submission, force, wait, interval,
               timeout, dry_run, as_json) -> None:
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
    if not dry_run:
        _note_submission(spec, result, message, file)
    refusal = _window_refusal(spec, force) if dry_run else None
    if result.get("warning"):
        click.echo(f"warning: {result['warning']}", err=True)
    if result.get("outcome"):
        click.echo(f"warning: {result['outcome']}", err=True)
    reference = f" ({result['rows']} rows, valid against {result['reference']})" if "reference" in result else ""
    if refusal:
        result = {**result, "would_be_refused": refusal}
    text = ((f"dry run: nothing sent{reference}" + (f"; the real submit would be refused: {refusal}"
                                                     if refusal else "")) if dry_run else
            f"submitted: ref {result['ref']}; {result['remaining_today']} submission(s) left today")
    if wait and not dry_run:
        click.echo(text, err=True)  # said now: the wait's progress follows on stderr, the score on stdout
        sub = _wait_for_score(spec, result["ref"], interval, timeout)
        result = {**result, "scored": sub}
        text = f"ref {sub['ref']} {sub['status']}: public score {sub['public_score'] or '-'}"
    emit(result, as_json, text)
    if refusal:
        raise SystemExit(ExitStatus.FAILED)


def _note_submission(spec, result: dict, message: str, file: Path | None) -> None:
    from kaggle_kit.cli.runs import note

    note(f"submission {result['ref']}", "record_submission", spec.slug, result["ref"], message, file=file,
         kernel=result.get("kernel"), kernel_version=result.get("version"))


def _wait_for_score(spec, ref: int, interval: float, timeout: float) -> dict:
    """Poll until scored (an ERROR is the command's error; `runs` picks it up later); the score goes into the
    runs ledger."""
    from kaggle_kit.cli.runs import note_scores
    from kaggle_kit.remote.submit import wait_for_score

    sub = wait_for_score(spec, ref, interval, timeout, echo=lambda m: click.echo(m, err=True))
    note_scores(spec, [sub])
    return sub


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
    from kaggle_kit.cli.runs import note_scores
    from kaggle_kit.remote.submit import list_submissions

    spec = kit.spec
    if wait_ref:
        sub = _wait_for_score(spec, wait_ref, 10.0, 3600.0)
        emit(sub, as_json, f"{sub['ref']}: {sub['status']} {sub['public_score']}")
        return
    subs = list_submissions(spec, limit=limit)
    note_scores(spec, subs)
    emit(subs, as_json, "\n".join(f"{s['ref']}  {s['status']:<10} {s['public_score'] or '-':>8}  {s['description']}"
                                  + (f"  ({s['error']})" if s["error"] else "") for s in subs))


@main.command("quota")
@json_option
def quota_cmd(as_json) -> None:
    """GPU hours used and left this week (Kaggle's accelerator quota)."""
    from kaggle_kit.remote.quota import gpu_quota

    quota = gpu_quota()
    emit(quota.as_dict(), as_json, quota.describe())
