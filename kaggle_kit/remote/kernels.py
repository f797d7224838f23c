"""Kernels on Kaggle: push once (never over a version still running, never twice), then status, wait and pull of
the version that push got, through the one client door.

What Kaggle answers (kaggle 2.2.5 `kaggle_api_extended.py`; shared/docs/kaggle-real-answers.md): an unknown kernel is
a 403 (`kernels_status` turns it into a ValueError) or a 404; SaveKernel is not retried by the client and a push Kaggle
accepted can still be answered 5xx; an unpinned status can describe the previous version for a while after a push,
so every read after a push asks for `owner/slug/N` (`_kernel_version_label`)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from kaggle_kit.config import ProjectConfig, check_ref
from kaggle_kit.errors import KitError, RemoteError
from kaggle_kit.kernel.build import KernelBuild, build_kernel, kernel_metadata
from kaggle_kit.remote import state
from kaggle_kit.remote.client import OutcomeUnknown, call, get_api, normalise, poll

FINISHED = ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED")
# Everything else is still going (QUEUED, RUNNING, CANCEL_REQUESTED, NEW_SCRIPT, a state the client cannot place).
NEW_KERNEL = (403, 404)  # Kaggle's answer for a kernel that does not exist yet (kaggle-cli PR #951, #538)
NOT_LISTED = "NOT_LISTED_YET"  # a version just pushed that Kaggle does not show yet
# Kaggle's answer to a push beyond the account's GPU sessions (the kaggle CLI prints it and exits 0).
SESSION_CAP_TEXT = "maximum batch gpu session count"
SESSION_CAP_HINT = ("Kaggle runs at most that many GPU kernels at once per account: see what runs with "
                    "`kaggle-kit status OWNER/SLUG` (or Your Work on kaggle.com/code) and push again when one ends; "
                    "`push-kernel train --folds K` waits for a slot by itself")


class SessionCapReached(RemoteError):
    """A push refused because the account already runs its maximum of GPU sessions."""


def is_active(status: str) -> bool:
    return status not in FINISHED


def push(task: str, cfg: ProjectConfig, out: Path, dry_run: bool = False, force: bool = False,
         notebook: bool = False) -> dict:
    """Build into `out`, then push. A dry run builds into a temp dir (removed) and sends nothing."""
    if dry_run:
        with tempfile.TemporaryDirectory(prefix="kk-dry-run-") as tmp:
            build = build_kernel(task, cfg, Path(tmp) / out.name, notebook=notebook)
            return {"dry_run": True, "id": build.metadata["id"], "would_build": str(out),
                    "script_bytes": build.script.stat().st_size, "metadata": build.metadata}
    refuse_while_running(kernel_metadata(task, cfg, notebook)["id"], force)
    return push_kernel(build_kernel(task, cfg, out, overwrite=True, notebook=notebook), cfg.kernel.timeout_s,
                       fold=getattr(cfg.train, "fold", None) if task == "train" else None)


def new_kernel(exc: RemoteError, kernel: str) -> bool:
    """403 or 404 for a kernel never pushed from here: it does not exist yet."""
    return exc.status in NEW_KERNEL and state.last_pushed(kernel) is None


def refuse_while_running(kernel: str, force: bool) -> str | None:
    """Kaggle starts a second session when a kernel that still runs is pushed; a new kernel has nothing running."""
    try:
        status, _ = kernel_status(kernel)
    except RemoteError as exc:
        if new_kernel(exc, kernel):
            return None
        raise
    if is_active(status) and status != NOT_LISTED and not force:
        raise KitError(f"{kernel}: the previous version is still {status} on Kaggle",
                       hint=f"wait for it (kaggle-kit status {kernel} --wait) or pass --force")
    return status


def latest_version(kernel: str) -> int | None:
    """Kaggle's newest version number of the kernel (GetKernel's `current_version_number`); 0 when Kaggle does not
    know the kernel (403/404); None when Kaggle could not be asked."""
    from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelRequest

    api = get_api()
    owner, slug = kernel.split("/")[:2]

    def get():
        with api.build_kaggle_client() as kaggle:
            request = ApiGetKernelRequest()
            request.user_name, request.kernel_slug = owner, slug
            return kaggle.kernels.kernels_api_client.get_kernel(request)

    try:
        response = call(f"versions of {kernel}", get, retries=3)
    except RemoteError as exc:
        return 0 if exc.status in NEW_KERNEL else None
    metadata = getattr(response, "metadata", None)
    return int(getattr(metadata, "current_version_number", 0) or 0)


def _settle(kernel: str, before: int | None, exc: OutcomeUnknown, fold: str | None) -> dict:
    """The push may have reached Kaggle: ask what it did, never push again."""
    after = latest_version(kernel)
    answered = exc.answered
    if before is not None and after is not None and after > before:
        state.record_push(kernel, after, fold=fold)
        return {"id": kernel, "version": after, "url": f"https://www.kaggle.com/code/{kernel}",
                "warning": f"pushed as version {after} ({answered} after accepting it)"}
    if before is not None and after is not None and not exc.timed_out:
        raise RemoteError(f"push kernel {kernel}: not pushed ({answered}; Kaggle lists no new version)",
                          hint=f"push again; `kaggle-kit status {kernel}` shows what runs", status=exc.status)
    raise RemoteError(f"push kernel {kernel}: unknown whether it was pushed ({answered})",
                      hint=f"see `kaggle-kit status {kernel}` before pushing again", status=exc.status)


def push_kernel(build: KernelBuild, timeout_s: int = 0, fold: str | None = None) -> dict:
    """Push a built folder once; the version Kaggle gave is recorded in the project's state file. After a 5xx, a
    dropped connection or a timeout, what Kaggle did is asked (its newest version) and reported."""
    kernel = build.metadata["id"]
    api = get_api()
    timeout = str(timeout_s) if timeout_s else None
    before = latest_version(kernel)
    try:
        response = call("push kernel", lambda: api.kernels_push(str(build.folder), timeout=timeout),
                        idempotent=False)
    except OutcomeUnknown as exc:
        return _settle(kernel, before, exc, fold)
    if getattr(response, "error", None):
        if SESSION_CAP_TEXT in str(response.error).lower():
            raise SessionCapReached(f"push kernel {kernel} refused: {response.error}", hint=SESSION_CAP_HINT)
        raise RemoteError(f"push kernel {kernel}: {response.error}")
    invalid = {k: getattr(response, k, None) for k in ("invalid_dataset_sources", "invalid_competition_sources",
                                                       "invalid_kernel_sources", "invalid_model_sources")}
    invalid = {k: v for k, v in invalid.items() if v}
    if invalid:
        raise RemoteError(f"push kernel {kernel}: invalid sources {invalid}")
    version = response.version_number
    if not isinstance(version, int) or version <= 0:  # a capped push comes back as version 0 and an empty ref
        raise RemoteError(f"push kernel {kernel}: Kaggle answered version {version!r} (not pushed)",
                          hint=f"see `kaggle-kit status {kernel}`")
    state.record_push(kernel, version, fold=fold)
    return {"id": kernel, "version": version, "url": response.url}


def kernel_state(ref: str) -> tuple[str, str, int | None]:
    """(status, failure message, version) of `owner/slug/N`, or of the version last pushed from here, or (never
    pushed from here) of Kaggle's newest. After a push from here, a 403 is a permission problem."""
    kernel, version = state.pinned(ref)
    check_ref(kernel, "kernel")
    api = get_api()
    asked = state.join_ref(kernel, version)
    try:
        response = call(f"status of {asked}", lambda: api.kernels_status(asked))
    except RemoteError as exc:
        pushed = state.last_pushed(kernel) is not None
        if exc.status == 404 and version and pushed:
            return NOT_LISTED, "", version
        if exc.status == 403 and pushed:
            raise RemoteError(f"status of {asked}: permission denied (403) for a kernel kaggle-kit pushed",
                              hint="a private kernel of another account, or the wrong username in kaggle-kit.toml "
                                   "or the credentials", status=403) from None
        raise
    status = normalise(response.status)
    state.record_status(kernel, status, version=version)
    return status, response.failure_message or "", version


def kernel_status(ref: str) -> tuple[str, str]:
    status, failure, _ = kernel_state(ref)
    return status, failure


def wait_for_kernel(ref: str, interval: float = 30, timeout: float = 12 * 3600, echo=print,
                    sleep=time.sleep, logs: bool = False) -> tuple[str, str]:
    """Poll the pinned version until it has ended (NEW_SCRIPT and states the client cannot place are waited on);
    with `logs`, its new log lines appear between the state lines."""
    kernel, version = state.pinned(ref)
    asked = state.join_ref(kernel, version)
    follower = None
    if logs:
        from kaggle_kit.remote.logs import LogFollower

        follower = LogFollower(asked, echo)
    _, (status, failure) = poll(asked, lambda: kernel_status(asked), lambda r: r[0], FINISHED, interval, timeout,
                                echo, sleep, hint="check it later with kaggle-kit status",
                                on_state=follower.tick if follower else None)
    return status, failure


def readable_log(raw: str) -> str | None:
    """The kernel log Kaggle lists as a JSON array [{"stream_name", "time", "data"}, ...] as text: one line per
    line of output, stderr marked; None when it is not that array."""
    try:
        entries = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(entries, list):
        return None
    lines = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        mark = "[stderr] " if entry.get("stream_name") == "stderr" else ""
        lines += [f"{mark}{line}" for line in str(entry.get("data", "")).rstrip("\n").split("\n")]
    return "\n".join(lines) + ("\n" if lines else "")


def _rewrite_log(target: Path, slug: str, files: list[str]) -> list[str]:
    log = target / f"{slug}.log"
    if not log.is_file():
        return files
    raw = log.read_text(encoding="utf-8")
    text = readable_log(raw)
    if text is None:
        return files
    from kaggle_kit.atomic import write_text_atomic

    write_text_atomic(target / f"{slug}.log.json", raw)
    write_text_atomic(log, text)
    return [*files, str(target / f"{slug}.log.json")]


def pull_kernel(ref: str, to: Path) -> tuple[Path, list[str]]:
    """Outputs + log of the pinned version into a new versioned folder under `to`; never into an existing one, and
    none is left on failure. The log is written as text (`<slug>.log`) with Kaggle's JSON beside it."""
    from kaggle_kit.atomic import missing_folders, next_free, remove_empty

    kernel, version = state.pinned(ref)
    check_ref(kernel, "kernel")
    asked = state.join_ref(kernel, version)
    api = get_api()
    slug = kernel.split("/")[-1]
    target = next_free(to, slug)
    created = missing_folders(target)
    target.mkdir(parents=True)
    try:
        files, _ = call(f"pull {asked}", lambda: api.kernels_output(asked, str(target), quiet=True), timeout=3600,
                        retries=2)
        root = target.resolve()
        # The client refuses escaping names today; checking what it wrote keeps that guarantee ours.
        escaped = [f for f in files if not Path(f).resolve().is_relative_to(root)]
        if escaped:
            raise RemoteError(f"pull {asked}: output '{escaped[0]}' escapes {target}")
        files = _rewrite_log(target, slug, list(files))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        remove_empty(created[1:])  # --to and its parents, if this pull made them
        raise
    return target, sorted(os.path.relpath(f, target) for f in files)
