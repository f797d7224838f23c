"""Kernels on Kaggle: push (never over a version still running), status, wait and pull, through the one client door."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from kaggle_kit.config import ProjectConfig, check_ref
from kaggle_kit.errors import KitError, RemoteError
from kaggle_kit.kernel.build import KernelBuild, build_kernel, kernel_metadata
from kaggle_kit.remote import state
from kaggle_kit.remote.client import call, get_api, normalise, poll

ACTIVE = ("QUEUED", "RUNNING")
FINISHED = ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED")
# Kaggle's answer to a push beyond the account's GPU sessions (the kaggle CLI prints it and exits 0).
SESSION_CAP_TEXT = "maximum batch gpu session count"
SESSION_CAP_HINT = ("Kaggle runs at most that many GPU kernels at once per account: see what runs with "
                    "`kaggle-kit status OWNER/SLUG` (or Your Work on kaggle.com/code) and push again when one ends; "
                    "`push-kernel train --folds K` waits for a slot by itself")


class SessionCapReached(RemoteError):
    """A push refused because the account already runs its maximum of GPU sessions."""


def push(task: str, cfg: ProjectConfig, out: Path, dry_run: bool = False, force: bool = False,
         notebook: bool = False) -> dict:
    """Build into `out`, then push. A dry run builds into a temp dir (removed) and sends nothing."""
    if dry_run:
        with tempfile.TemporaryDirectory(prefix="kk-dry-run-") as tmp:
            build = build_kernel(task, cfg, Path(tmp) / out.name, notebook=notebook)
            return {"dry_run": True, "id": build.metadata["id"], "would_build": str(out),
                    "script_bytes": build.script.stat().st_size, "metadata": build.metadata}
    refuse_while_running(kernel_metadata(task, cfg, notebook)["id"], force)
    return push_kernel(build_kernel(task, cfg, out, overwrite=True, notebook=notebook), cfg.kernel.timeout_s)


def refuse_while_running(kernel: str, force: bool) -> str | None:
    """Kaggle fails a push late (or queues it forever) while a previous version runs; a 404 is a new kernel."""
    try:
        status, _ = kernel_status(kernel)
    except RemoteError as exc:
        if exc.status == 404:
            return None
        raise
    if status in ACTIVE and not force:
        raise KitError(f"{kernel}: the previous version is still {status} on Kaggle",
                       hint=f"wait for it (kaggle-kit status {kernel} --wait) or pass --force")
    return status


def push_kernel(build: KernelBuild, timeout_s: int = 0) -> dict:
    """Push a built folder; the version Kaggle gave is recorded in the project's state file."""
    kernel = build.metadata["id"]
    api = get_api()
    timeout = str(timeout_s) if timeout_s else None
    response = call("push kernel", lambda: api.kernels_push(str(build.folder), timeout=timeout))
    if getattr(response, "error", None):
        if SESSION_CAP_TEXT in str(response.error).lower():
            raise SessionCapReached(f"push kernel {kernel} refused: {response.error}", hint=SESSION_CAP_HINT)
        raise RemoteError(f"push kernel {kernel}: {response.error}")
    invalid = {k: getattr(response, k, None) for k in ("invalid_dataset_sources", "invalid_competition_sources",
                                                       "invalid_kernel_sources", "invalid_model_sources")}
    invalid = {k: v for k, v in invalid.items() if v}
    if invalid:
        raise RemoteError(f"push kernel {kernel}: invalid sources {invalid}")
    if isinstance(response.version_number, int):
        state.record_push(kernel, response.version_number)
    return {"id": kernel, "version": response.version_number, "url": response.url}


def kernel_status(kernel: str) -> tuple[str, str]:
    """(status, failure message) of the kernel's newest version; also stored for versions pushed from here."""
    check_ref(kernel, "kernel")
    api = get_api()
    response = call(f"status of {kernel}", lambda: api.kernels_status(kernel))
    status = normalise(response.status)
    state.record_status(kernel, status)
    return status, response.failure_message or ""


def wait_for_kernel(kernel: str, interval: float = 30, timeout: float = 12 * 3600, echo=print,
                    sleep=time.sleep, logs: bool = False) -> tuple[str, str]:
    """Poll until the run ends; with `logs`, its new log lines appear between the state lines (where the client
    can stream them)."""
    follower = None
    if logs:
        from kaggle_kit.remote.logs import LogFollower

        follower = LogFollower(kernel, echo)
    _, (status, failure) = poll(kernel, lambda: kernel_status(kernel), lambda r: r[0], FINISHED, interval, timeout,
                                echo, sleep, hint="check it later with kaggle-kit status",
                                on_state=follower.tick if follower else None)
    return status, failure


def pull_kernel(kernel: str, to: Path) -> tuple[Path, list[str]]:
    """Outputs + log into a new versioned folder under `to`; never into an existing one, and none is left on failure."""
    from kaggle_kit.atomic import next_free

    check_ref(kernel, "kernel")
    api = get_api()
    target = next_free(to, kernel.split("/")[-1])
    target.mkdir(parents=True)
    try:
        files, _ = call(f"pull {kernel}", lambda: api.kernels_output(kernel, str(target), quiet=True), timeout=3600,
                        retries=2)
        root = target.resolve()
        # The client refuses escaping names today; checking what it wrote keeps that guarantee ours.
        escaped = [f for f in files if not Path(f).resolve().is_relative_to(root)]
        if escaped:
            raise RemoteError(f"pull {kernel}: output '{escaped[0]}' escapes {target}")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target, sorted(os.path.relpath(f, target) for f in files)
