"""The `kernels` package's offline notice ("Skipping publisher trust check for '...' because Hugging Face Hub is in
offline mode."), which bitsandbytes' CPU backend triggers at import on CPUs with AVX512-BF16, is not printed by
kaggle-kit runs: it reads like a download and is none. Other warnings of that package still show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("kernels")

REPO = "kernels-community/quantization-bitsandbytes"  # the repository bitsandbytes' CPU backend asks for
CHECK = ("from kernels._internals.hf_hub import _check_trust_remote_code as check; "
         f"check({REPO!r}, local_files_only=True, trust_remote_code=False)")
ENV = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH") or str(Path(__file__).parents[1]),
       "HF_HUB_OFFLINE": "1"}


def _stderr(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120,
                          check=True, cwd=Path(__file__).parent).stderr


def test_the_library_prints_the_notice_without_kaggle_kit():
    """The source, checked: the check bitsandbytes' import runs, in offline mode, prints it."""
    assert "Skipping publisher trust check" in _stderr("import logging; logging.basicConfig(); " + CHECK)


def test_quiet_libraries_drops_it_and_keeps_the_packages_other_warnings():
    err = _stderr("from kaggle_kit.quiet import quiet_libraries; quiet_libraries(); " + CHECK + "; "
                  "import logging; logging.getLogger('kernels._internals.hf_hub').warning('kernel failed to load')")
    assert "Skipping publisher trust check" not in err and "kernel failed to load" in err


def test_the_cli_drops_it(tmp_path):
    """Through kaggle-kit's own entry point (quiet_libraries runs as the group starts): a command that then runs the
    check prints nothing about it."""
    code = ("import click, sys; from kaggle_kit.cli import main\n"
            "@main.command('probe-notice')\n"
            "def probe():\n"
            f"    {CHECK}\n"
            "main(['probe-notice'], standalone_mode=False)")
    assert "publisher trust" not in _stderr(code)
