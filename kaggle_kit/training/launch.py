"""How a training run uses the GPUs it sees: one process per GPU (DDP under torchrun, each rank loading its model,
4-bit included, on LOCAL_RANK), or one process that sees one GPU. Never one process driving several GPUs: the HF
Trainer would then use nn.DataParallel (which cannot replicate bitsandbytes weights) and an n_gpu-multiplied batch.

Decided before CUDA starts in this process: a child that must stay on one GPU gets CUDA_VISIBLE_DEVICES at its start.
torch is imported only to count the GPUs (NVML; no CUDA context is created)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

NPROC_ENV = "KAGGLE_KIT_NPROC"  # processes to train with: overrides one per GPU (1 = one GPU; 2 CPU ranks in tests)


@dataclass(frozen=True)
class Launch:
    mode: str  # here (this process trains) | ddp (re-run under torchrun) | one_gpu (re-run seeing one GPU)
    nproc: int = 1
    note: str | None = None


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def launch_decision(gpus: int, env: Mapping[str, str]) -> Launch:
    """`gpus`: the GPUs this process sees. Under torchrun (LOCAL_RANK) this process is already one rank."""
    if "LOCAL_RANK" in env:
        return Launch("here")
    wanted = env.get(NPROC_ENV)
    nproc = int(wanted) if wanted and wanted.isdigit() and int(wanted) > 0 else max(gpus, 1)
    note = None
    if gpus and nproc > gpus:  # never two ranks on one GPU
        nproc, note = gpus, f"kaggle-kit: {NPROC_ENV}={wanted} but {gpus} GPU(s): {gpus} process(es)"
    if nproc >= 2:
        return Launch("ddp", nproc, note)
    if gpus >= 2:
        return Launch("one_gpu", 1, f"kaggle-kit: training on one GPU of {gpus} ({NPROC_ENV}=1)")
    return Launch("here", 1, note)


def child_env(launch: Launch, env: Mapping[str, str], package_parent: str | None = None) -> dict[str, str]:
    """The environment of the re-run: this kaggle_kit importable, and for one_gpu only the first visible GPU."""
    parent = package_parent or str(Path(__file__).resolve().parents[2])
    child = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [parent, env.get("PYTHONPATH")]))}
    if launch.mode == "one_gpu":
        visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        child["CUDA_VISIBLE_DEVICES"] = visible[0] if visible else "0"
        child[NPROC_ENV] = "1"
    return child


def child_command(launch: Launch, module: str, args: list[str]) -> list[str]:
    if launch.mode == "ddp":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={launch.nproc}",
                "-m", module, *args]
    return [sys.executable, "-m", module, *args]


def relaunch(module: str, args: list[str], env: Mapping[str, str] | None = None, gpus: int | None = None,
             echo=print) -> bool:
    """Re-run `python -m module args` as the GPUs need (see launch_decision); False when this process should train
    itself. A failed child ends this process with its exit code (its own one-line error is already printed)."""
    env = os.environ if env is None else env
    launch = launch_decision(visible_gpus() if gpus is None else gpus, env)
    if launch.note:
        echo(launch.note)
    if launch.mode == "here":
        return False
    code = subprocess.run(child_command(launch, module, args), env=child_env(launch, env)).returncode
    if code:
        raise SystemExit(code)
    return True
