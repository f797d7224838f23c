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
from kaggle_kit.competition.spec import SPECS_FILE
from kaggle_kit.config import ProjectConfig, accelerator_problem, check_ref
from kaggle_kit.config.project import kernel_accelerator_problem
from kaggle_kit.errors import KitError, UsageProblem, failure_line
from kaggle_kit.kernel.blend_sources import blend_backbone_sources, uses_blend_file
from kaggle_kit.kernel.inputs import KERNEL_PREFIX, Source, competition_source, metadata_sources, parse_source
from kaggle_kit.kernel.wheels import load_lock

PACKAGE_DIR = Path(kaggle_kit.__file__).parent
# Package data (setup.cfg); in the source tree a symlink to kernels/bootstrap.py.tmpl, the one copy.
TEMPLATE = Path(__file__).with_name("bootstrap.py.tmpl")
TASKS = ("train", "infer")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
REMOTE_DIR = PACKAGE_DIR / "remote"  # talks to Kaggle: never shipped inside a kernel


def package_archive() -> bytes:
    """The kaggle_kit sources, competition specs and recipes (without remote/) as a zip with fixed timestamps and
    order: same tree, same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted([*PACKAGE_DIR.rglob("*.py"), *PACKAGE_DIR.rglob(SPECS_FILE.name),
                            *(PACKAGE_DIR / "recipes").glob("*.toml")]):
            if path.is_relative_to(REMOTE_DIR):
                continue
            info = zipfile.ZipInfo(str(Path("kaggle_kit") / path.relative_to(PACKAGE_DIR)), ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def git_state() -> dict:
    """The commit of the kaggle-kit checkout this package runs from; none when installed (a venv inside some other
    repository must not lend it its commit)."""
    def git(*args):
        done = subprocess.run(["git", *args], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=10)
        return done.stdout.strip()

    try:
        top = git("rev-parse", "--show-toplevel")
        if not top or Path(top).resolve() != PACKAGE_DIR.resolve().parent:
            return {"commit": None, "dirty": None}
        dirty = bool(git("status", "--porcelain", "--", ".", "../kernels"))  # ../kernels: the template's one copy
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def template_text() -> str:
    """The kernel bootstrap template shipped with this package."""
    text = TEMPLATE.read_text(encoding="utf-8") if TEMPLATE.is_file() else ""
    if "{archive}" not in text:  # missing, or a checkout that stored the symlink as a one-line text file
        raise KitError(f"kernel template {TEMPLATE} is missing or not the kernel template",
                       hint="reinstall kaggle-kit (in a git checkout: clone with symlinks enabled)")
    return text


def kernel_config(cfg: ProjectConfig) -> dict:
    """What the kernel needs, nothing else: no credentials ever live in ProjectConfig. Every key is written out
    with where it came from, so the kernel layers its recipe as the command line does (config/layers.py)."""
    from kaggle_kit.config.layers import embedded

    return embedded(cfg)


@dataclass
class KernelBuild:
    folder: Path
    script: Path
    metadata: dict


def kernel_metadata(task: str, cfg: ProjectConfig, notebook: bool = False) -> dict:
    if not cfg.username:
        raise UsageProblem("no Kaggle username", hint="set username in kaggle-kit.toml (kaggle-kit init --username U)")
    problem = accelerator_problem(cfg.kernel.accelerator)
    if problem:
        raise UsageProblem(f"[kernel] accelerator {cfg.kernel.accelerator}: {problem}")
    unusable = kernel_accelerator_problem(cfg.kernel.accelerator, cfg.kernel.enable_gpu)
    if unusable:
        raise UsageProblem(f"[kernel] {unusable}")
    slug = cfg.kernel.train_slug if task == "train" else cfg.kernel.infer_slug
    named = {"backbone": cfg.datasets.backbone, "wheels": cfg.datasets.wheels}
    if task == "infer":
        named = {"model": cfg.datasets.model or f"{KERNEL_PREFIX}{cfg.username}/{cfg.kernel.train_slug}", **named}
    else:  # the chain's inputs (extra / pseudo-label files, a teacher) and an earlier session's output
        for location in [*cfg.datasets.extra_train, *filter(None, [cfg.datasets.teacher])]:
            named[f"input {location}"] = _location_ref(location)
        if cfg.kernel.resume_from:
            named["resume_from"] = f"{KERNEL_PREFIX}{cfg.kernel.resume_from}"
    for name, ref in named.items():
        try:
            metadata_sources([ref])
        except ValueError as exc:
            raise UsageProblem(f"[datasets] {name}: {exc}") from None
    members = []
    if task == "infer" and uses_blend_file(cfg):  # every member's backbone mounted; a blend it could not run refused
        members = blend_backbone_sources(cfg)
        try:
            metadata_sources(members)
        except ValueError as exc:
            raise UsageProblem(f"[predict] blend {cfg.predict.blend}: {exc}") from None
    sources = metadata_sources([*named.values(), *members])
    meta = {
        "id": f"{cfg.username}/{slug}", "title": slug.replace("-", " ").title(),
        "code_file": f"{slug}.ipynb" if notebook else f"{slug}.py",
        "language": "python", "kernel_type": "notebook" if notebook else "script", "is_private": True,
        "enable_gpu": cfg.kernel.enable_gpu,
        "enable_tpu": False,
        # Always written: the client defaults a missing key to true, and code competitions score with it off.
        "enable_internet": cfg.kernel.train_internet if task == "train" else False,
        "docker_image_pinning_type": cfg.kernel.image_pinning,
        "machine_shape": cfg.kernel.accelerator, **sources,
        "competition_sources": [cfg.competition],
    }
    validate_metadata(meta)
    return meta


def _location_ref(location: str) -> str:
    """The source part of SOURCE:PATH, as metadata_sources takes it."""
    prefix = KERNEL_PREFIX if location.startswith(KERNEL_PREFIX) else ""
    return prefix + location[len(prefix):].partition(":")[0]


def fold_config(cfg: ProjectConfig, fold: str) -> ProjectConfig:
    """The config of fold i of K ("i/K") in its own train kernel: the fold in [train], slug <train_slug>-fold-<i>."""
    from dataclasses import replace

    from kaggle_kit.config import with_overrides

    kernel = with_overrides(cfg.kernel, train_slug=f"{cfg.kernel.train_slug}-fold-{fold.split('/')[0]}")
    sources = {**cfg.sources, "train.fold": "flag", "kernel.train_slug": "flag"}  # build-kernel --fold set them
    return replace(cfg, train=with_overrides(cfg.train, fold=fold), kernel=kernel, sources=sources)


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
        try:
            cells = json.loads(code_file.read_text(encoding="utf-8"))["cells"]
            return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise KitError(f"{code_file} is not a readable notebook ({exc})",
                           hint="build it again with `kaggle-kit build-kernel ... --overwrite`") from None
    return code_file.read_text()


def build_kernel(task: str, cfg: ProjectConfig, out: Path, overwrite: bool = False,
                 notebook: bool = False) -> KernelBuild:
    if task not in TASKS:
        raise UsageProblem(f"unknown kernel task '{task}'", hint="train or infer")
    template_text()
    if task == "train" and not cfg.datasets.backbone and not cfg.train.backbone:  # else it fails only when run
        raise UsageProblem("a train kernel needs a backbone: none is set",
                           hint="pass --backbone OWNER/SLUG (a dataset of the weights) or set [datasets] backbone")
    meta, script = render_kernel(task, cfg, notebook)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise KitError(f"{out} already holds a build", hint="pass --overwrite to rebuild it")
    out.mkdir(parents=True, exist_ok=True)
    from kaggle_kit.atomic import write_text_atomic

    write_text_atomic(out / meta["code_file"], as_notebook(script) if notebook else script)
    write_text_atomic(out / "kernel-metadata.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return KernelBuild(out, out / meta["code_file"], meta)


def render_kernel(task: str, cfg: ProjectConfig, notebook: bool = False) -> tuple[dict, str]:
    """(kernel-metadata, script) that build_kernel writes for this config, in memory."""
    meta = kernel_metadata(task, cfg, notebook)
    config = kernel_config(cfg)
    archive = package_archive()
    manifest = {"kaggle_kit_version": __version__, **git_state(), "task": task,
                "config_sha256": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
                "package_sha256": hashlib.sha256(archive).hexdigest(), "lock": load_lock().to_dict()}
    script = template_text().format(task=task, archive=base64.b64encode(archive).decode(),
                                         config=json.dumps(config, sort_keys=True),
                                         manifest=json.dumps(manifest, sort_keys=True))
    return meta, script


LAYOUTS = ("today", "legacy")


def kernel_sources_of(meta: dict) -> list[Source]:
    """Every input a built kernel declares, as the resolver reads it."""
    sources = [competition_source(slug) for slug in meta.get("competition_sources", [])]
    sources += [parse_source(ref) for ref in meta.get("dataset_sources", []) + meta.get("model_sources", [])]
    return sources + [parse_source(KERNEL_PREFIX + ref) for ref in meta.get("kernel_sources", [])]


def source_for_input(name: str, sources: list[Source]) -> Source:
    """An --input name: a source as kernel-metadata.json writes it (a kernel's output also as kernel:owner/slug), or
    the slug alone when only one source has it."""
    exact = [s for s in sources if name in (s.ref, KERNEL_PREFIX + s.ref if s.kind == "kernel" else s.ref)]
    by_slug = [s for s in sources if s.kind != "model" and s.slug == name]
    found = exact or by_slug
    if len(found) != 1:
        known = ", ".join(s.ref for s in sources) or "none"
        why = "names several of its sources" if found else "is not one of its sources"
        raise UsageProblem(f"--input {name} {why} (this kernel's sources: {known})",
                           hint="give the source as kernel-metadata.json names it")
    return found[0]


RUN_MANIFEST = "kaggle_kit_manifest.json"  # what kernel/main.py writes into /kaggle/working first


def read_build_metadata(build: Path) -> dict:
    """A build's kernel-metadata.json as a dict; a missing, corrupt or non-object file is one line."""
    path = build / "kernel-metadata.json"
    if not path.is_file():
        raise KitError(f"{build} is not a kernel build (no kernel-metadata.json)",
                       hint="pass a folder written by `kaggle-kit build-kernel train|infer`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KitError(f"{path} is not valid JSON ({exc})",
                       hint="build it again with `kaggle-kit build-kernel ... --overwrite`") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("code_file", ""), str):
        raise KitError(f"{path} is not a kernel-metadata object",
                       hint="build it again with `kaggle-kit build-kernel ... --overwrite`")
    return meta


def run_kernel_locally(build: Path, inputs: dict[str, Path], working: Path, timeout: float = 3600,
                       python: str | None = None, check_accelerator: bool = False,
                       echo: Callable[[str], None] | None = None, layout: str = "today") -> list[Path]:
    """Run the built script in a fresh process (`python`, default this one) with a simulated /kaggle layout (today's,
    or the legacy one where everything sits at input/<slug>), no network and no pip index; the accelerator check only
    warns unless `check_accelerator` (a local machine is no Kaggle GPU).

    `inputs` maps each of the kernel's sources (see source_for_input) to a local folder mounted where Kaggle would.
    The kernel's stdout and stderr go, interleaved in order, to WORKING/kernel.log and line by line to `echo`."""
    if layout not in LAYOUTS:
        raise UsageProblem(f"unknown input layout '{layout}'", hint=" or ".join(LAYOUTS))
    meta = read_build_metadata(build)
    if not (build / meta.get("code_file", "")).is_file():
        raise KitError(f"{build} is an incomplete build: {meta.get('code_file')} is missing",
                       hint="build it again with `kaggle-kit build-kernel ... --overwrite`")
    sources = kernel_sources_of(meta)
    mounts = {name: source_for_input(name, sources) for name in inputs}
    working = working.resolve()
    if working.exists() and any(working.iterdir()):
        raise KitError(f"--working {working} already holds files", hint="choose a new folder (the default is one)")
    root = Path(tempfile.mkdtemp(prefix=f".{working.name}-root-", dir=working.parent if working.parent.exists()
                                 else None))
    where = {name: source.layouts(root)[layout] for name, source in mounts.items()}
    clash = [n for n in where if list(where.values()).count(where[n]) > 1]
    if clash:
        shutil.rmtree(root, ignore_errors=True)
        raise UsageProblem(f"--input {' and '.join(clash)} would be mounted at the same place "
                           f"({where[clash[0]].relative_to(root)}) in the {layout} layout", hint="give each once")
    try:
        (root / "input").mkdir()
        for name, path in inputs.items():
            where[name].parent.mkdir(parents=True, exist_ok=True)
            where[name].symlink_to(path.resolve(), target_is_directory=True)
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
        before = {name: _snapshot(path) for name, path in inputs.items()}
        entry = root / "kernel_entry.py"
        entry.write_text(script_of(build / meta["code_file"]))
        returncode, last = _run_logged([python or sys.executable, str(entry)], working, env, timeout, echo)
    finally:
        shutil.rmtree(root, ignore_errors=True)  # symlinks inside are removed, never followed
    if returncode != 0:
        raise KitError(f"kernel failed (exit {returncode}): {last}", hint=f"full log in {working / 'kernel.log'}")
    for name, path in inputs.items():
        if _snapshot(path) != before[name]:
            raise KitError(f"the kernel wrote into {where[name].relative_to(root)}",
                           hint="/kaggle/input is read-only on Kaggle: write to /kaggle/working")
    if not (working / RUN_MANIFEST).is_file():  # the kernel's first act: so an exit 0 without it ran something else
        raise KitError(f"the kernel produced nothing: {python or sys.executable} exited 0 without running kaggle-kit "
                       f"(no {RUN_MANIFEST} in {working})",
                       hint=f"--python must be a Python that can run the build; log in {working / 'kernel.log'}")
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

