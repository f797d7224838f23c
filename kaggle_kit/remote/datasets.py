"""Upload models, code and offline wheels as Kaggle datasets: stage a clean copy, create or version, then check that
Kaggle holds every staged file at its size."""

from __future__ import annotations

import fnmatch
import functools
import json
import shutil
import tempfile
import time
from pathlib import Path

from kaggle_kit.config import check_ref
from kaggle_kit.errors import KitError, RemoteError, UsageProblem
from kaggle_kit.kernel.wheels import build_own_wheel, build_wheel_set
from kaggle_kit.remote.client import call, get_api, normalise, poll, transfer_timeout

KINDS = ("model", "code", "wheels")
EXCLUDE = [".git", "__pycache__", ".cache", ".huggingface", "*.pyc", ".env", "*.env", "kaggle.json", "credentials.json",
           "access_token*", ".netrc", "*.pem", "*.key", "id_rsa*", ".ipynb_checkpoints", "wandb"]


def excluded(name: str, with_checkpoints: bool) -> bool:
    patterns = EXCLUDE + ([] if with_checkpoints else ["checkpoints", "checkpoint-*"])
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def staging_dir(dataset: str) -> Path:
    """A stable path (same file path, size and mtime on a rerun) lets the client resume an interrupted upload."""
    return Path(tempfile.gettempdir()) / "kaggle-kit-staging" / check_ref(dataset, "dataset")


def stage(kind: str, source: Path, dataset: str, staging: Path, with_checkpoints: bool = False) -> Path:
    """Fill `staging` with only what should be sent, plus dataset-metadata.json; the user's folder is never written."""
    slug = check_ref(dataset, "dataset")
    stage_files(kind, source, staging, with_checkpoints)
    title = slug.replace("-", " ").title()[:50].ljust(6, "_")
    metadata = {"id": dataset, "title": title, "licenses": [{"name": "CC0-1.0"}]}
    (staging / "dataset-metadata.json").write_text(json.dumps(metadata))
    return staging


def stage_files(kind: str, source: Path, staging: Path, with_checkpoints: bool = False) -> list[str]:
    """Copy what may be sent into a fresh `staging` (never secrets, caches or, unless asked, checkpoints); return
    the paths left out."""
    if kind not in KINDS:
        raise UsageProblem(f"unknown upload kind '{kind}'", hint=", ".join(KINDS))
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    left_out: list[str] = []

    def ignore(folder: str, names: list[str]) -> list[str]:
        skipped = [n for n in names if excluded(n, with_checkpoints)]
        left_out.extend(str((Path(folder) / n).relative_to(source)) for n in skipped)
        return skipped

    if kind == "code":
        build_own_wheel(staging)
    elif kind == "wheels":
        build_wheel_set(staging)
    else:
        if not source.is_dir():
            raise KitError(f"{source} is not a folder")
        for item in sorted(source.iterdir()):
            if ignore(str(source), [item.name]):
                continue
            if item.is_dir():
                shutil.copytree(item, staging / item.name, ignore=ignore)
            else:
                shutil.copy2(item, staging / item.name)
    if not any(p.is_file() for p in staging.rglob("*")):  # else Kaggle gets an empty dataset, "created"
        skipped = "" if with_checkpoints else " (checkpoints are left out without --with-checkpoints)"
        raise KitError(f"{source}: nothing to upload{skipped}", hint="give the folder `train --out` wrote")
    return left_out


METADATA_FILES = ("dataset-metadata.json", "model-metadata.json", "model-instance-metadata.json")  # never sent as data


def manifest(staging: Path) -> list[dict]:
    return [{"path": str(p.relative_to(staging)), "bytes": p.stat().st_size}
            for p in sorted(staging.rglob("*")) if p.is_file() and p.name not in METADATA_FILES]


def dataset_exists(api, dataset: str) -> bool:
    """Ask Kaggle (a 404 means free); other errors are real errors, not 'free' as the client would assume."""
    try:
        call(f"status of {dataset}", lambda: api.dataset_status(dataset))
        return True
    except RemoteError as exc:
        if exc.status == 404:
            return False
        raise


def upload_dataset(kind: str, source: Path, dataset: str, notes: str = "", with_checkpoints: bool = False,
                   dry_run: bool = False, echo=print) -> dict:
    """Stage, then create or version and verify; a dry run stages into a temp dir that is removed, and sends nothing."""
    if dry_run:
        with tempfile.TemporaryDirectory(prefix="kk-dry-run-") as tmp:
            files = manifest(stage(kind, source, dataset, Path(tmp) / "staging", with_checkpoints))
        _show(files, echo)
        return {"dry_run": True, "dataset": dataset, "files": files}
    staging = stage(kind, source, dataset, staging_dir(dataset), with_checkpoints)
    files = manifest(staging)
    _show(files, echo)
    result = upload(staging, dataset, notes)
    verify_upload(dataset, files, echo=echo)
    shutil.rmtree(staging, ignore_errors=True)  # kept only while a failed upload may be resumed
    return {**result, "files": files}


def _show(files: list[dict], echo) -> None:
    echo("\n".join(f"  {f['path']} ({f['bytes']:,} bytes)" for f in files))


def upload(staging: Path, dataset: str, notes: str) -> dict:
    api = get_api()
    timeout = transfer_timeout(sum(f["bytes"] for f in manifest(staging)))
    if dataset_exists(api, dataset):
        action = "version"
        response = call(f"new version of {dataset}", lambda: api.dataset_create_version(
            str(staging), notes or "new version", quiet=True, dir_mode="zip"), timeout=timeout, retries=2)
    else:
        action = "create"
        response = call(f"create {dataset}", lambda: api.dataset_create_new(str(staging), quiet=True, dir_mode="zip"),
                        timeout=timeout, retries=2)
    if (getattr(response, "status", "") or "").lower() != "ok":
        raise RemoteError(f"{action} {dataset}: {getattr(response, 'error', '') or 'failed'}")
    return {"action": action, "dataset": dataset, "url": response.url}


def dataset_state(dataset: str) -> str:
    api = get_api()
    return normalise(call(f"status of {dataset}", lambda: api.dataset_status(dataset)))


def wait_for_dataset(dataset: str, interval: float = 10, timeout: float = 3600, echo=print, sleep=time.sleep) -> str:
    """Poll until READY or FAILED, showing state and elapsed time."""
    state, _ = poll(dataset, lambda: dataset_state(dataset), lambda s: s, ("READY", "FAILED"), interval, timeout, echo,
                    sleep, hint=f"check it later with kaggle-kit datasets status {dataset}")
    return state


def remote_files(dataset: str) -> dict[str, int]:
    """Kaggle's file list of the dataset's current version: path -> bytes (folders sent as zips come back unpacked)."""
    api = get_api()
    files: dict[str, int] = {}
    token = None
    while True:
        # partial binds this page's token now (a closure would read the loop variable whenever it runs).
        list_page = functools.partial(api.dataset_list_files, dataset, page_token=token, page_size=200)
        page = call(f"file list of {dataset}", list_page)
        if getattr(page, "error_message", None):
            raise RemoteError(f"file list of {dataset}: {page.error_message}")
        files.update({f.name: int(f.total_bytes or 0) for f in page.dataset_files or []})
        token = page.next_page_token
        if not token:
            return files


def verify_upload(dataset: str, staged: list[dict], interval: float = 10, timeout: float = 3600, echo=print,
                  sleep=time.sleep) -> None:
    """After processing, every staged file must be on Kaggle at its size (clients have silently skipped subfolders)."""
    if wait_for_dataset(dataset, interval, timeout, echo, sleep) == "FAILED":
        raise RemoteError(f"{dataset}: Kaggle failed to process the upload", hint="upload it again")
    detail = files_differ(staged, remote_files(dataset))
    if detail:
        raise RemoteError(f"{dataset} on Kaggle does not match what was staged: {detail}",
                          hint="upload it again (a new version)")


def files_differ(staged: list[dict], remote: dict[str, int]) -> str | None:
    """What Kaggle lacks or holds at another size, of the staged files (None: every one is there at its size)."""
    missing = [f["path"] for f in staged if f["path"] not in remote]
    wrong = [f"{f['path']} ({remote[f['path']]:,} bytes, sent {f['bytes']:,})" for f in staged
             if f["path"] in remote and remote[f["path"]] != f["bytes"]]
    if not missing and not wrong:
        return None
    return "; ".join(filter(None, [missing and f"missing {', '.join(missing[:5])}",
                                   wrong and f"size differs: {', '.join(wrong[:5])}"]))
