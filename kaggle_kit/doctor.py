"""`kaggle-kit doctor`, local side: green/red checks of this machine, each red one with its fix (Kaggle's: remote/)."""

from __future__ import annotations

import importlib.metadata
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from kaggle_kit.config import ProjectConfig


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    ok = sys.version_info >= (3, 10)
    return Check("python", ok, sys.version.split()[0], "" if ok else "use Python >= 3.10 (3.11 for the kaggle client)")


def check_torch() -> list[Check]:
    try:
        import torch
    except ImportError:
        return [Check("torch", False, "not installed", "pip install torch==2.13.0 (CPU-only: add --index-url https://download.pytorch.org/whl/cpu)")]
    checks = [Check("torch", True, torch.__version__)]
    if torch.cuda.is_available():
        for k in range(torch.cuda.device_count()):
            major, _ = torch.cuda.get_device_capability(k)
            dtype = "bf16+fp16" if major >= 8 else "fp16"
            checks.append(Check(f"cuda:{k}", True, f"{torch.cuda.get_device_name(k)} ({dtype})", required=False))
    else:
        checks.append(Check("cuda", False, "no GPU: CPU training/inference only (fine for the tiny backbone)",
                            "run real training in a Kaggle kernel (kaggle-kit push-kernel train)", required=False))
    return checks


def check_libraries() -> list[Check]:
    checks = []
    for name in ("transformers", "peft", "datasets", "bitsandbytes", "accelerate"):
        version = _version(name)
        checks.append(Check(name, version is not None, version or "not installed", f"pip install {name}"))
    return checks


def check_disk(path: Path = Path("."), need_gib: float = 5.0) -> Check:
    free = shutil.disk_usage(path).free / 2**30
    return Check("free disk", free >= need_gib, f"{free:.1f} GiB free", f"free at least {need_gib:.0f} GiB",
                 required=False)


def check_config(cfg: ProjectConfig, competition_problem: str | None) -> Check:
    """The config loaded; `competition_problem` is why its competition cannot be resolved (None: it can)."""
    where = cfg.source or "built-in defaults (no kaggle-kit.toml; `kaggle-kit init` writes one)"
    if competition_problem:
        return Check("config", False, f"{where}: {competition_problem}",
                     "set competition in kaggle-kit.toml to a known one (`kaggle-kit config` shows the value)")
    return Check("config", True, where)


def local_checks(cfg: ProjectConfig, competition_problem: str | None = None) -> list[Check]:
    """Python, torch/CUDA, libraries, config and the kaggle client's presence: nothing here touches the network."""
    checks = [check_python(), *check_torch(), *check_libraries(), check_config(cfg, competition_problem)]
    if sys.version_info >= (3, 11):
        checks.append(Check("kaggle client", _version("kaggle") is not None, _version("kaggle") or "not installed",
                            "pip install kaggle six"))
    return checks


def as_dicts(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]
