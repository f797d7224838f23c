"""`make test-gpu` on an offline GPU box: the driver-vs-torch verdict and the offline install of what it lacks.
A fake `nvidia-smi` on PATH stands in for a box's driver; this machine's CPU torch for a torch build that does not
match it. Nothing is downloaded here (`make gpu-wheels` needs the package index)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kaggle_kit.errors import KitError
from kaggle_kit.kernel.gpu_box import MANIFEST, install, missing

ROOT = Path(__file__).resolve().parent.parent


def test_make_test_gpu_fails_when_the_driver_shows_a_gpu_torch_cannot_use(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text('#!/bin/sh\necho "GPU 0: Tesla T4 (UUID: GPU-00000000-0000-0000-0000-0000)"\n')
    (fake / "nvidia-smi").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(["make", "-s", "-C", str(ROOT), "test-gpu", f"GPU_PYTHON={sys.executable}",
                           f"GPU_WHEELS={tmp_path / 'no-wheels'}"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0 and "test-gpu] Error 1" in proc.stderr  # gpu_check's own exit status: 1
    assert "gpu-check: FAILED: the driver lists 1 GPU(s)" in proc.stdout and "cannot use CUDA" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_offline_install_takes_only_what_the_environment_lacks_and_never_torch(tmp_path):
    with pytest.raises(KitError, match=MANIFEST):
        install(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"wheels": []}))
    for name in ("torch-2.11.0-cp312-cp312-manylinux_2_28_x86_64.whl", "tqdm-4.70.1-py3-none-any.whl"):
        (tmp_path / name).write_bytes(b"")  # never opened: torch is skipped, tqdm is installed already
    assert install(tmp_path) == []
    assert missing() == []  # this venv has everything the checks import
