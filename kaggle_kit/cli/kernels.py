"""`build-kernel`, `run-kernel`, `push-kernel`, `status`, `pull`: Kaggle kernels."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kaggle_kit.atomic import check_writable
from kaggle_kit.cli.app import emit, main
from kaggle_kit.cli.options import (
    KitContext,
    config_option,
    dry_run_option,
    interval_option,
    json_option,
    pass_kit,
    timeout_option,
)
from kaggle_kit.errors import KitError, failure_line

resume_from_option = click.option(
    "--resume-from", metavar="OWNER/KERNEL",
    help="train: mount that kernel's output and resume its run from the last checkpoint (e.g. after a [train] "
         "time_budget stop), refusing changed settings.")
wait_quietly_option = click.option("--quiet", is_flag=True,
                                  help="While waiting, show state lines only, not the kernel's log.")


def with_account(cfg):
    """No username in kaggle-kit.toml: use the account of the credentials the kaggle client uses."""
    if not cfg.username:
        from kaggle_kit.remote.client import account_username

        cfg.username = account_username()
    return cfg


@main.command("build-kernel")
@click.argument("task", type=click.Choice(["train", "infer"]))
@click.option("--out", type=click.Path(path_type=Path), help="Default: kernels/build/<slug>.")
@click.option("--model", help="Trained model dir (infer): dataset owner/slug or Kaggle Model owner/model/framework/"
                              "variation/version.")
@click.option("--backbone", help="Backbone weights: dataset owner/slug or Kaggle Model owner/model/framework/"
                                 "variation/version.")
@click.option("--notebook", is_flag=True, help="Write an .ipynb (kernel_type notebook) instead of a script.")
@click.option("--fold", help="train: run fold i of K (i/K) in its own kernel, slug <train_slug>-fold-i; "
                             "gather the pulled outputs with `cv --gather`.")
@resume_from_option
@click.option("--overwrite", is_flag=True, help="Replace an existing build in --out.")
@config_option
@json_option
@pass_kit
def build_kernel_cmd(kit: KitContext, task, out, model, backbone, notebook, fold, resume_from, overwrite,
                     as_json) -> None:
    """Build a self-contained Kaggle kernel (script + kernel-metadata.json) embedding kaggle_kit."""
    from kaggle_kit.config import with_overrides
    from kaggle_kit.kernel.build import build_kernel

    if out is not None:
        check_writable(out, folder=True)
    cfg = with_account(kit.config)
    cfg.datasets = with_overrides(cfg.datasets, model=model, backbone=backbone)
    cfg = _resume_kernel(_fold_kernel(cfg, task, fold), task, resume_from)
    slug = cfg.kernel.train_slug if task == "train" else cfg.kernel.infer_slug
    out = out or Path("kernels/build") / slug
    check_writable(out, folder=True)
    build = build_kernel(task, cfg, out, overwrite=overwrite, notebook=notebook)
    emit({"folder": str(build.folder), "script": str(build.script), "metadata": build.metadata}, as_json,
         f"built {build.script} ({build.script.stat().st_size // 1024} KiB) for {build.metadata['id']}")


def _resume_kernel(cfg, task: str, resume_from: str | None):
    if not resume_from:
        return cfg
    from kaggle_kit.config import with_overrides

    if task != "train":
        raise click.UsageError("--resume-from is for the train kernel")
    cfg.kernel = with_overrides(cfg.kernel, resume_from=resume_from)
    return cfg


def _fold_kernel(cfg, task: str, fold: str | None):
    """One fold per train kernel: the fold goes into the embedded config and the slug gets -fold-<i>."""
    if not fold:
        return cfg
    from kaggle_kit.kernel.build import fold_config

    if task != "train":
        raise click.UsageError("--fold is for the train kernel")
    return fold_config(cfg, fold)


@main.command("run-kernel")
@click.argument("build", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--input", "inputs", multiple=True,
              help="SOURCE=PATH: one of the kernel's sources (competition slug, dataset owner/slug, Kaggle Model "
                   "handle, kernel owner/slug, or a slug alone) mounted where Kaggle would (repeatable).")
@click.option("--legacy-layout", is_flag=True,
              help="Mount every input at kaggle/input/<slug> (older Kaggle) instead of today's "
                   "input/competitions|datasets|models|notebooks/... layout.")
@click.option("--working", type=click.Path(path_type=Path), help="Default: a new folder beside the build.")
@click.option("--python", "python", type=click.Path(exists=True, dir_okay=False), help="Interpreter to run it with.")
@click.option("--check-accelerator", is_flag=True, help="Fail as on Kaggle when the asked-for GPU is not visible.")
@click.option("--quiet", is_flag=True, help="Do not stream the kernel's log (it is still written to kernel.log).")
@json_option
def run_kernel_cmd(build: Path, inputs, legacy_layout, working, python, check_accelerator, quiet, as_json) -> None:
    """Dry-run a built kernel locally with a simulated /kaggle layout and no network; streams its log."""
    from kaggle_kit.atomic import next_free
    from kaggle_kit.kernel.build import run_kernel_locally

    mounts = {}
    for item in inputs:
        slug, sep, path = item.partition("=")
        if not sep or not slug or not Path(path).is_dir():
            raise click.BadParameter(f"'{item}' is not SOURCE=EXISTING_DIR", param_hint="--input")
        if slug in mounts:  # the last one would silently win
            raise click.BadParameter(f"{slug} is given twice ({mounts[slug]} and {path})", param_hint="--input")
        mounts[slug] = Path(path)
    working = working or next_free(build.parent, f"{build.name}-working")
    check_writable(working, folder=True)
    outputs = run_kernel_locally(build, mounts, working, python=python, check_accelerator=check_accelerator,
                                 echo=None if quiet else (lambda line: click.echo(f"| {line}", err=True)),
                                 layout="legacy" if legacy_layout else "today")
    emit([str(p) for p in outputs], as_json, "\n".join(["outputs:", *(f"  {p}" for p in outputs)]))


@main.command("push-kernel")
@click.argument("task", type=click.Choice(["train", "infer"]))
@click.option("--wait", is_flag=True, help="Wait until the run ends (with --folds: until every fold has).")
@interval_option(30.0)
@click.option("--force", is_flag=True, help="Push even while a previous version is still queued or running "
                                             "(with --folds: also folds already COMPLETE, and past the GPU-hours "
                                             "estimate the weekly quota left cannot cover).")
@click.option("--fold", help="train: run fold i of K (i/K) in its own kernel, slug <train_slug>-fold-i.")
@click.option("--folds", type=click.IntRange(min=2, max=100),
              help="train: push all K fold kernels (as --fold i/K builds them), at most [kernel] max_gpu_sessions "
                   "running at once; waits for a slot, skips folds already COMPLETE, ends with a table.")
@resume_from_option
@click.option("--rebuild", is_flag=True, help="Replace kernels/build/<slug> with a fresh build even when it differs "
                                               "from the config (default: push it only when it matches).")
@wait_quietly_option
@dry_run_option
@config_option
@json_option
@pass_kit
def push_kernel_cmd(kit: KitContext, task, wait, interval, force, fold, folds, resume_from, rebuild, quiet, dry_run,
                    as_json) -> None:
    """Push the kernel in kernels/build/<slug> (built now if absent; refused if it differs from the config) to run
    on Kaggle; prints version and URL (a dry run writes nothing)."""
    from kaggle_kit.remote.kernels import push, wait_for_kernel

    if folds:
        if resume_from:
            raise click.UsageError("--resume-from resumes one kernel's run: use it without --folds")
        return _push_folds(kit, task, folds, fold, wait, interval, force, quiet, dry_run, as_json)
    cfg = with_account(kit.config)
    cfg = _resume_kernel(_fold_kernel(cfg, task, fold), task, resume_from)
    slug = cfg.kernel.train_slug if task == "train" else cfg.kernel.infer_slug
    shaped_by = [*(["--fold", fold] if fold else []), *(["--resume-from", resume_from] if resume_from else [])]
    notebook = _tested_build(task, shaped_by, cfg, Path("kernels/build") / slug, rebuild)
    result = push(task, cfg, Path("kernels/build") / slug, dry_run=dry_run, force=force, notebook=notebook)
    if result.get("warning"):
        click.echo(f"warning: {result['warning']}", err=True)
    if not dry_run:
        _note_push(result, Path("kernels/build") / slug)
    emit(result, as_json, json.dumps(result, indent=2) if dry_run
         else f"pushed {result['id']} version {result['version']}: {result['url']}")
    if wait and not dry_run:  # the version this push got, never the kernel's newest unpinned answer
        status, failure = wait_for_kernel(f"{result['id']}/{result['version']}", interval=interval,
                                          echo=lambda m: click.echo(m, err=True), logs=not quiet)
        if status != "COMPLETE":
            raise KitError(f"{result['id']} ended {status}: {failure_line(failure)}")


def _note_push(result: dict, folder: Path) -> None:
    """The version Kaggle gave and every source it mounts (read from the metadata that was pushed)."""
    from kaggle_kit.cli.app import warn
    from kaggle_kit.cli.runs import note

    try:
        meta = json.loads((folder / "kernel-metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # pushed already: the record is what is lost, not the push
        warn(f"the mounts of {result['id']} are not recorded in the runs ledger: {exc}")
        meta = {}
    mounts = [m for key in ("dataset_sources", "model_sources", "kernel_sources", "competition_sources")
              for m in meta.get(key, [])]
    note(f"push of {result['id']}", "record_push", result["id"], result["version"], mounts)


def _tested_build(task: str, shaped_by: list[str], cfg, folder: Path, rebuild: bool) -> bool:
    """What was run with run-kernel is what is pushed: an existing build that differs from what the config builds is
    refused, naming what differs (--rebuild replaces it). Returns whether the build is a notebook (kept as one).

    `shaped_by`: the flags that shaped it, as `build-kernel` takes them (for the hint)."""
    from kaggle_kit.kernel.same_build import build_differences, existing_build

    try:
        build = existing_build(folder)
    except KitError:  # not a readable build: --rebuild replaces it
        if rebuild:
            return False
        raise
    if build is None:
        return False
    differences = [] if rebuild else build_differences(task, cfg, build)
    if differences:
        raise KitError(f"{folder} is not what the config builds now: {'; '.join(differences)}",
                       hint=f"rebuild and test it (kaggle-kit build-kernel {' '.join([task, *shaped_by])} --overwrite, "
                            "then run-kernel), or pass --rebuild to push a fresh build untested")
    return build.script.suffix == ".ipynb"


def _push_folds(kit: KitContext, task, folds, fold, wait, interval, force, quiet, dry_run, as_json) -> None:
    from kaggle_kit.remote import fold_fanout
    from kaggle_kit.remote.logs import LogFollowers

    if task != "train" or fold:
        raise click.UsageError("--folds is for the train kernel, without --fold")
    cfg = with_account(kit.config)
    if dry_run:
        plan = fold_fanout.plan_dry_run(cfg, folds)
        emit(plan, as_json, json.dumps(plan, indent=2))
        return
    followers = None if quiet or not wait else LogFollowers(lambda m: click.echo(m, err=True))
    runs = fold_fanout.fan_out(cfg, folds, interval=interval, wait=wait, force=force,
                               echo=lambda m: click.echo(m, err=True), on_poll=followers and followers.poll)
    done = all(r.state == "COMPLETE" for r in runs)
    emit(fold_fanout.report(runs), as_json, "\n".join([fold_fanout.table(runs),
                                                       "then:" if done else "once every fold is COMPLETE:",
                                                       *(f"  {c}" for c in fold_fanout.next_commands(runs))]))
    if wait:
        fold_fanout.check_finished(runs)


@main.command("status")
@click.argument("kernel")
@click.option("--wait", is_flag=True, help="Poll until the run ends (COMPLETE, ERROR or CANCELLED), showing the "
                                            "kernel's new log lines.")
@interval_option(30.0)
@timeout_option(12 * 3600.0)
@wait_quietly_option
@json_option
def status_cmd(kernel, wait, interval, timeout, quiet, as_json) -> None:
    """A version's state (OWNER/SLUG/N, else the one last pushed from here); exit 1 if it ended other than COMPLETE."""
    from kaggle_kit.remote import state
    from kaggle_kit.remote.kernels import FINISHED, kernel_status, wait_for_kernel

    name, version = state.pinned(kernel)
    ref = state.join_ref(name, version)
    if wait:
        status, failure = wait_for_kernel(ref, interval, timeout, echo=lambda m: click.echo(m, err=True),
                                          logs=not quiet)
    else:
        status, failure = kernel_status(ref)
    which = f"version {version}" if version else "newest version (none pushed from here)"
    emit({"kernel": name, "version": version, "status": status, "failure": failure}, as_json,
         f"{name} {which}: {status}")
    if status in FINISHED and status != "COMPLETE":
        raise KitError(f"{ref} ended {status}: {failure_line(failure)}" if status != "ERROR"
                       else f"{ref} failed: {failure_line(failure)}")


@main.command("pull")
@click.argument("kernel")
@click.option("--to", default="outputs", show_default=True, type=click.Path(path_type=Path),
              help="Folder under which a new versioned folder receives the outputs.")
@json_option
def pull_cmd(kernel, to, as_json) -> None:
    """Download a version's outputs and log (text, Kaggle's JSON beside it) into a new versioned folder."""
    from kaggle_kit.remote.kernels import pull_kernel

    check_writable(to, folder=True)
    folder, files = pull_kernel(kernel, to)
    emit({"folder": str(folder), "files": files}, as_json, f"pulled {len(files)} file(s) into {folder}")
