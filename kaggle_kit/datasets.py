"""Upload models, code and offline wheels as Kaggle datasets: stage a clean copy, then create or version."""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .errors import KitError, RemoteError, UsageProblem
from .kaggle_client import transfer_timeout
from .kernels import REF_RE

KINDS = ("model", "code", "wheels")
EXCLUDE = [".git", "__pycache__", ".cache", ".huggingface", "*.pyc", ".env", "*.env", "kaggle.json", "credentials.json",
           "access_token*", ".netrc", "*.pem", "*.key", "id_rsa*", ".ipynb_checkpoints", "wandb"]


def excluded(name: str, with_checkpoints: bool) -> bool:
    patterns = EXCLUDE + ([] if with_checkpoints else ["checkpoints", "checkpoint-*"])
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def stage(kind: str, source: Path, dataset: str, with_checkpoints: bool = False) -> Path:
    """A temp copy holding only what should be sent, plus dataset-metadata.json; the user's folder is never written."""
    if kind not in KINDS:
        raise UsageProblem(f"unknown upload kind '{kind}'", hint=", ".join(KINDS))
    if not REF_RE.match(dataset):
        raise UsageProblem(f"dataset '{dataset}' must be owner/slug")
    slug = dataset.split("/")[1]
    if not 6 <= len(slug) <= 50:
        raise UsageProblem(f"dataset slug '{slug}' must be 6-50 characters")
    # A stable staging path (same file path, size and mtime on a rerun) lets the client resume an interrupted upload.
    staging = Path(tempfile.gettempdir()) / "kaggle-kit-staging" / slug
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if kind == "code":
        _build_wheel(staging)
    elif kind == "wheels":
        _download_wheels(staging)
    else:
        if not source.is_dir():
            raise KitError(f"{source} is not a folder")
        for item in sorted(source.iterdir()):
            if excluded(item.name, with_checkpoints):
                continue
            if item.is_dir():
                shutil.copytree(item, staging / item.name, ignore=lambda d, names: [n for n in names if excluded(n, with_checkpoints)])
            else:
                shutil.copy2(item, staging / item.name)
    title = slug.replace("-", " ").title()[:50].ljust(6, "_")
    (staging / "dataset-metadata.json").write_text(json.dumps({"id": dataset, "title": title, "licenses": [{"name": "CC0-1.0"}]}))
    return staging


def _build_wheel(staging: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    if not (root / "setup.cfg").exists():
        raise KitError("the code upload needs a kaggle-kit source checkout")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(staging), str(root)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise KitError(f"building the kaggle-kit wheel failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")


def _download_wheels(staging: Path) -> None:
    """The kernel lock's wheels for Kaggle's CPython + manylinux x86_64, our own wheel and the lock record."""
    from .wheels import build_wheel_set

    build_wheel_set(staging)


def manifest(staging: Path) -> list[dict]:
    return [{"path": str(p.relative_to(staging)), "bytes": p.stat().st_size}
            for p in sorted(staging.rglob("*")) if p.is_file() and p.name != "dataset-metadata.json"]


def dataset_exists(api, dataset: str) -> bool:
    """Ask Kaggle (a 404 means free); other errors are real errors, not 'free' as the client would assume."""
    from .kaggle_client import call

    try:
        call(f"status of {dataset}", lambda: api.dataset_status(dataset))
        return True
    except RemoteError as exc:
        if exc.status == 404:
            return False
        raise


def upload(staging: Path, dataset: str, notes: str) -> dict:
    from .kaggle_client import call, get_api

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


def wait_for_dataset(dataset: str, interval: float | None = None, timeout: float = 3600, echo=print,
                     sleep=time.sleep) -> str:
    """The processing state; with an interval, poll until ready or failed, showing state and elapsed time."""
    from .kaggle_client import call, get_api

    api = get_api()
    start = time.monotonic()
    while True:
        state = str(call(f"status of {dataset}", lambda: api.dataset_status(dataset)))
        if interval is None or state.lower() in ("ready", "failed"):
            return state
        echo(f"{dataset}: {state} ({time.monotonic() - start:.0f}s)")
        if time.monotonic() - start > timeout:
            raise RemoteError(f"{dataset} still {state} after {timeout:.0f}s")
        sleep(interval)
