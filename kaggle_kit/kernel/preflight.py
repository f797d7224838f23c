"""The first thing a kernel does: print one block about its environment, write kaggle_kit_env.json, fail fast on the
wrong accelerator or on libraries outside the tested range (before any data is read or GPU time spent)."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

ENV_FILE = "kaggle_kit_env.json"
SHOWN = ("transformers", "peft", "accelerate", "bitsandbytes", "tokenizers")
# Kaggle's "GPU T4 x2" (docs/kernels.md lists NvidiaTeslaT4Highmem as T4 x2); every other GPU shape has at least one
GPUS_FOR_SHAPE = {"NvidiaTeslaT4": 2, "NvidiaTeslaT4Highmem": 2}
ACCEPT_ENV = "KAGGLE_KIT_ACCEPT_OTHER_ACCELERATOR"


class PreflightError(SystemExit):
    """Exits the kernel with one line (SystemExit prints its message to stderr, no traceback)."""


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    found = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(x) for x in found.group().split(".")) if found else ()


def _below(have: str, low: str) -> bool:
    a, b = _release(have), _release(low)
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)) < b + (0,) * (width - len(b))


def environment(manifest: dict) -> dict:
    import torch

    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            gpus.append({"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                         "capability": list(torch.cuda.get_device_capability(i))})
    lock = manifest.get("lock", {})
    names = sorted(set(SHOWN) | set(lock.get("minimum", {})) | set(lock.get("packages", {})))
    return {
        "python": platform.python_version(), "executable": sys.executable,
        "torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
        "gpu_count": len(gpus), "gpus": gpus,
        "torch_arch_list": torch.cuda.get_arch_list() if gpus else [],
        "packages": {name: _version(name) for name in names},
        "installed_from_wheels": os.environ.get("KAGGLE_KIT_INSTALLED", "").split(),
        "manifest": manifest,
    }


def accelerator_problem(kernel: dict, gpu_count: int) -> str | None:
    """What was asked for (kernel-metadata's enable_gpu / machine_shape) versus what is visible."""
    if not kernel.get("enable_gpu"):
        return None
    shape = kernel.get("accelerator") or "a GPU"
    wanted = GPUS_FOR_SHAPE.get(shape, 1)
    if gpu_count == 0:
        return f"the kernel asked for a GPU ({shape}) but sees none"
    if gpu_count < wanted:
        return f"the kernel asked for {shape} x{wanted} but sees {gpu_count} GPU"
    return None


def _arch_number(arch: str) -> int:
    return int(arch.split("_", 1)[1]) if arch.split("_", 1)[-1].isdigit() else -1


def runs_on(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Can a torch built for `arch_list` (torch.cuda.get_arch_list()) run on a GPU of this compute capability?
    A cubin sm_XY runs on the same major with minor >= Y; PTX compute_XY is compiled for any GPU >= XY."""
    major, minor = capability
    device = major * 10 + minor
    for arch in arch_list:
        number = _arch_number(arch)
        if arch.startswith("sm_") and number // 10 == major and number % 10 <= minor:
            return True
        if arch.startswith("compute_") and 0 <= number <= device:
            return True
    return False


def capability_problem(gpus: list[dict], arch_list: list[str], torch_version: str) -> str | None:
    """The first GPU this image's torch has no kernels for (P100 sm_60 on today's image), or None."""
    if not arch_list:
        return None  # a CPU-only torch: the accelerator check reports the missing GPU
    for gpu in gpus:
        major, minor = gpu["capability"]
        if not runs_on((major, minor), arch_list):
            return (f"this image's torch {torch_version} has no kernels for {gpu['name']} (sm_{major}{minor}; built "
                    f"for {' '.join(arch_list)}): ask for NvidiaTeslaT4 or NvidiaL4 ([kernel] accelerator)")
    return None


def version_problems(lock: dict, packages: dict) -> tuple[list[str], list[str]]:
    """(below the oldest tested version or missing -> errors, newer than the lock -> notes)."""
    errors, notes = [], []
    for name, low in sorted(lock.get("minimum", {}).items()):
        have = packages.get(name)
        if have is None:
            errors.append(f"{name} missing (need >= {low})")
        elif _below(have, low):
            errors.append(f"{name} {have} < {low}")
        elif name in lock.get("packages", {}) and _below(lock["packages"][name], have):
            notes.append(f"{name} {have} is newer than tested ({lock['packages'][name]})")
    return errors, notes


def block(env: dict, notes: list[str]) -> str:
    gpus = ", ".join(f"{g['name']} {g['memory_gib']} GiB" for g in env["gpus"]) or "none"
    manifest = env["manifest"]
    lines = [
        "kaggle-kit preflight",
        f"  python {env['python']}  torch {env['torch']}  CUDA {env['cuda'] or '-'}",
        f"  GPUs {env['gpu_count']}: {gpus}",
        "  " + "  ".join(f"{name} {env['packages'].get(name) or '-'}" for name in SHOWN),
        f"  kaggle-kit {manifest.get('kaggle_kit_version')} commit {str(manifest.get('commit'))[:12]} "
        f"task {manifest.get('task')} config {str(manifest.get('config_sha256'))[:12]}",
    ]
    if env["installed_from_wheels"]:
        lines.append("  installed from wheels: " + " ".join(env["installed_from_wheels"]))
    lines += [f"  note: {n}" for n in notes]
    return "\n".join(lines)


def preflight(config: dict, manifest: dict, working: Path) -> dict:
    """Print the block, write ENV_FILE, then raise PreflightError with one line if the kernel cannot run as asked."""
    env = environment(manifest)
    errors, notes = version_problems(manifest.get("lock", {}), env["packages"])
    kernel = config.get("kernel", {})
    accepted = kernel.get("accept_other_accelerator") or os.environ.get(ACCEPT_ENV) == "1"
    device = accelerator_problem(kernel, env["gpu_count"])
    unusable = capability_problem(env["gpus"], env["torch_arch_list"], env["torch"])
    if device and accepted:
        notes.append(f"{device}; going on ([kernel] accept_other_accelerator)")
    print(block(env, notes), flush=True)
    env["problems"] = errors + ([device] if device and not accepted else []) + ([unusable] if unusable else [])
    working.mkdir(parents=True, exist_ok=True)
    (working / ENV_FILE).write_text(json.dumps(env, indent=2, default=str) + "\n")
    if unusable:  # no setting can help: the first CUDA op would fail with "no kernel image is available"
        raise PreflightError(f"kaggle-kit: {unusable}; stopping before any work")
    if device and not accepted:
        raise PreflightError(f"kaggle-kit: {device}; stopping before any work (set [kernel] accept_other_accelerator "
                             "= true to run anyway)")
    if errors:
        raise PreflightError(f"kaggle-kit: outside the tested range: {'; '.join(errors)} (attach the wheels "
                             "dataset: kaggle-kit upload wheels --dataset OWNER/SLUG, set [datasets] wheels, rebuild)")
    return env
