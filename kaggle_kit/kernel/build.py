"""Kaggle kernels, local side: a reproducible self-contained build and a local dry run (pushing lives in remote/)."""

from __future__ import annotations

import base64
import collections
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import kaggle_kit
from kaggle_kit import __version__
from kaggle_kit.config import ProjectConfig, check_ref
from kaggle_kit.errors import KitError, UsageProblem, failure_line
from kaggle_kit.kernel.wheels import load_lock

PACKAGE_DIR = Path(kaggle_kit.__file__).parent
TEMPLATE = PACKAGE_DIR.parent / "kernels" / "bootstrap.py.tmpl"
TASKS = ("train", "infer")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
REMOTE_DIR = PACKAGE_DIR / "remote"  # talks to Kaggle: never shipped inside a kernel


def package_archive() -> bytes:
    """The kaggle_kit sources (without remote/) as a zip with fixed timestamps and order: same tree, same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(PACKAGE_DIR.rglob("*.py")):
            if path.is_relative_to(REMOTE_DIR):
                continue
            info = zipfile.ZipInfo(str(Path("kaggle_kit") / path.relative_to(PACKAGE_DIR)), ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def git_state() -> dict:
    def git(*args):
        done = subprocess.run(["git", *args], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=10)
        return done.stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--", "."))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def kernel_config(cfg: ProjectConfig) -> dict:
    """What the kernel needs, nothing else: no credentials ever live in ProjectConfig."""
    data = cfg.to_dict()
    data.pop("source", None)
    return data


@dataclass
class KernelBuild:
    folder: Path
    script: Path
    metadata: dict


def kernel_metadata(task: str, cfg: ProjectConfig, notebook: bool = False) -> dict:
    if not cfg.username:
        raise UsageProblem("no Kaggle username", hint="set username in kaggle-kit.toml (kaggle-kit init --username U)")
    slug = cfg.kernel.train_slug if task == "train" else cfg.kernel.infer_slug
    datasets = [d for d in (cfg.datasets.backbone, cfg.datasets.wheels) if d]
    kernel_sources: list[str] = []
    if task == "infer":
        if cfg.datasets.model:
            datasets.insert(0, cfg.datasets.model)
        else:
            kernel_sources.append(f"{cfg.username}/{cfg.kernel.train_slug}")
    meta = {
        "id": f"{cfg.username}/{slug}", "title": slug.replace("-", " ").title(),
        "code_file": f"{slug}.ipynb" if notebook else f"{slug}.py",
        "language": "python", "kernel_type": "notebook" if notebook else "script", "is_private": True,
        "enable_gpu": cfg.kernel.enable_gpu,
        "enable_tpu": False,
        "enable_internet": cfg.kernel.train_internet if task == "train" else cfg.kernel.infer_internet,
        "machine_shape": cfg.kernel.accelerator, "dataset_sources": datasets,
        "competition_sources": [cfg.competition], "kernel_sources": kernel_sources, "model_sources": [],
    }
    validate_metadata(meta)
    return meta


def validate_metadata(meta: dict) -> None:
    """What the client checks, checked before anything is sent, each with a clear message."""
    check_ref(meta["id"], "kernel")
    if len(meta["title"]) < 5:
        raise UsageProblem(f"kernel title '{meta['title']}' is too short", hint="at least 5 characters")
    for key in ("dataset_sources", "kernel_sources"):
        for ref in meta[key]:
            check_ref(ref, key)


def as_notebook(script: str) -> str:
    """One code cell holding the script; sorted keys and no outputs keep the build byte-reproducible."""
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": script.splitlines(keepends=True)}
    notebook = {"cells": [cell], "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                "name": "python3"}, "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(notebook, indent=1, sort_keys=True) + "\n"


def script_of(code_file: Path) -> str:
    if code_file.suffix == ".ipynb":
        cells = json.loads(code_file.read_text())["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return code_file.read_text()


def build_kernel(task: str, cfg: ProjectConfig, out: Path, overwrite: bool = False,
                 notebook: bool = False) -> KernelBuild:
    if task not in TASKS:
        raise UsageProblem(f"unknown kernel task '{task}'", hint="train or infer")
    if not TEMPLATE.exists():
        raise KitError(f"kernel template {TEMPLATE} not found", hint="build kernels from a kaggle-kit source checkout")
    if task == "train" and not cfg.datasets.backbone and not cfg.train.backbone:  # else it fails only when run
        raise UsageProblem("a train kernel needs a backbone: none is set",
                           hint="pass --backbone OWNER/SLUG (a dataset of the weights) or set [datasets] backbone")
    meta = kernel_metadata(task, cfg, notebook)
    config = kernel_config(cfg)
    archive = package_archive()
    manifest = {"kaggle_kit_version": __version__, **git_state(), "task": task,
                "config_sha256": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
                "package_sha256": hashlib.sha256(archive).hexdigest(), "lock": load_lock().to_dict()}
    script = TEMPLATE.read_text().format(task=task, archive=base64.b64encode(archive).decode(),
                                         config=json.dumps(config, sort_keys=True),
                                         manifest=json.dumps(manifest, sort_keys=True))
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise KitError(f"{out} already holds a build", hint="pass --overwrite to rebuild it")
    out.mkdir(parents=True, exist_ok=True)
    from kaggle_kit.atomic import write_text_atomic

    write_text_atomic(out / meta["code_file"], as_notebook(script) if notebook else script)
    write_text_atomic(out / "kernel-metadata.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return KernelBuild(out, out / meta["code_file"], meta)


def run_kernel_locally(build: Path, inputs: dict[str, Path], working: Path, timeout: float = 3600,
                       python: str | None = None, check_accelerator: bool = False,
                       echo: Callable[[str], None] | None = None) -> list[Path]:
    """Run the built script in a fresh process (`python`, default this one) with a simulated /kaggle layout, no network
    and no pip index; the accelerator check only warns unless `check_accelerator` (a local machine is no Kaggle GPU).

    The kernel's stdout and stderr go, interleaved in order, to WORKING/kernel.log and line by line to `echo`."""
    if not (build / "kernel-metadata.json").is_file():
        raise KitError(f"{build} is not a kernel build (no kernel-metadata.json)",
                       hint="pass a folder written by `kaggle-kit build-kernel train|infer`")
    meta = json.loads((build / "kernel-metadata.json").read_text())
    if not (build / meta.get("code_file", "")).is_file():
        raise KitError(f"{build} is an incomplete build: {meta.get('code_file')} is missing",
                       hint="build it again with `kaggle-kit build-kernel ... --overwrite`")
    working = working.resolve()
    if working.exists() and any(working.iterdir()):
        raise KitError(f"--working {working} already holds files", hint="choose a new folder (the default is one)")
    root = Path(tempfile.mkdtemp(prefix=f".{working.name}-root-", dir=working.parent if working.parent.exists()
                                 else None))
    try:
        (root / "input").mkdir()
        for slug, path in inputs.items():
            (root / "input" / slug).symlink_to(path.resolve(), target_is_directory=True)
        working.mkdir(parents=True, exist_ok=True)
        (root / "working").symlink_to(working, target_is_directory=True)
        # no credentials inside a kernel run; our own KAGGLE_KIT_* settings pass through
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_") or k.startswith("KAGGLE_KIT_")}
        env.update({"KAGGLE_KIT_ROOT": str(root), "KAGGLE_KERNEL_RUN_TYPE": "Batch", "HF_HUB_OFFLINE": "1",
                    "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "",
                    "PYTHONPATH": "", "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PYTHONUNBUFFERED": "1"})
        env.pop("KAGGLE_KIT_ACCEPT_OTHER_ACCELERATOR", None)
        if not check_accelerator:
            env["KAGGLE_KIT_ACCEPT_OTHER_ACCELERATOR"] = "1"
        before = {slug: _snapshot(path) for slug, path in inputs.items()}
        entry = root / "kernel_entry.py"
        entry.write_text(script_of(build / meta["code_file"]))
        returncode, last = _run_logged([python or sys.executable, str(entry)], working, env, timeout, echo)
    finally:
        shutil.rmtree(root, ignore_errors=True)  # symlinks inside are removed, never followed
    if returncode != 0:
        raise KitError(f"kernel failed (exit {returncode}): {last}", hint=f"full log in {working / 'kernel.log'}")
    for slug, path in inputs.items():
        if _snapshot(path) != before[slug]:
            raise KitError(f"the kernel wrote into input/{slug}",
                           hint="/kaggle/input is read-only on Kaggle: write to /kaggle/working")
    return sorted(p for p in working.rglob("*") if p.is_file())


def _run_logged(cmd: list[str], cwd: Path, env: dict, timeout: float,
                echo: Callable[[str], None] | None) -> tuple[int, str]:
    """Run `cmd`, streaming its merged output to cwd/kernel.log and `echo`; returns (exit code, the line saying what
    failed: a traceback's exception line, else the last line)."""
    tail: collections.deque[str] = collections.deque(maxlen=200)  # enough to hold a traceback's end
    with open(cwd / "kernel.log", "w", encoding="utf-8") as log, subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if line.strip():
                    tail.append(line.rstrip("\n"))
                if echo:
                    echo(line.rstrip("\n"))
            proc.wait()
        finally:
            timer.cancel()
    return proc.returncode, failure_line("\n".join(tail)) if tail else "no output"


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Sizes and mtimes of an input tree: a local run must leave it exactly as Kaggle's read-only mount would."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}
