"""The tested version range: the CLI flow on whatever stack runs the tests (newest in `make test`, setup.cfg's lower
bounds in `make test-oldest`), the kernel lock, the preflight, and a stand-in for Kaggle's image with offline wheels.

`make test-oldest` sets KK_IMAGE_PYTHON (a venv playing Kaggle's image: old transformers, no peft, no
bitsandbytes) and KK_WHEEL_CACHE (the lock's wheels, fetched once); `make test` sets neither."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from kaggle_kit.cli import main
from kaggle_kit.config import load_config
from kaggle_kit.errors import KitError
from kaggle_kit.kernel.build import build_kernel, run_kernel_locally
from kaggle_kit.kernel.wheels import IMAGE, ROOTS, build_wheel_set, declared_minimums, load_lock, wheel_name

IMAGE_PYTHON = os.environ.get("KK_IMAGE_PYTHON")
WHEEL_CACHE = os.environ.get("KK_WHEEL_CACHE")
NEWEST_PYTHON = Path(os.environ.get("KK_NEWEST_PYTHON", Path(__file__).resolve().parent.parent / ".venv/bin/python"))
stand_in = pytest.mark.skipif(not (IMAGE_PYTHON and WHEEL_CACHE), reason="needs the image stand-in: make test-oldest")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _flow(tmp_path: Path, backbone: Path, data: Path) -> None:
    """train -> predict --tta swap -> validate, each through the CLI with no traceback."""
    trained = run("train", "--train", data / "train.csv", "--backbone", backbone, "--out", tmp_path / "m",
                  "--max-len", 96, "--max-steps", 4, "--eval-steps", 2)
    assert trained.exit_code == 0, trained.output
    predicted = run("predict", "--test", data / "test.csv", "--model", tmp_path / "m", "--tta", "swap",
                    "--out", tmp_path / "sub.csv")
    assert predicted.exit_code == 0, predicted.output
    checked = run("validate", tmp_path / "sub.csv", "--test", data / "test.csv")
    assert checked.exit_code == 0 and "valid" in checked.output, checked.output


def test_cli_flow_on_this_stack(tmp_path, small_files):
    assert run("tiny-backbone", tmp_path / "tb").exit_code == 0
    _flow(tmp_path, tmp_path / "tb", small_files.train.parent)


@pytest.mark.skipif(not NEWEST_PYTHON.exists() or Path(sys.prefix).resolve() == NEWEST_PYTHON.parent.parent.resolve(),
                    reason="needs the newest stack's .venv (made by `make test`) and another interpreter running this")
def test_backbone_built_by_newest_stack_runs_here(tmp_path, small_files):
    root = Path(__file__).resolve().parent.parent
    subprocess.run([str(NEWEST_PYTHON), "-m", "kaggle_kit.cli", "tiny-backbone", str(tmp_path / "tb")], check=True,
                   cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True)
    _flow(tmp_path, tmp_path / "tb", small_files.train.parent)


def test_lock_minimums_are_setup_cfg_bounds():
    lock = load_lock()
    declared = declared_minimums()
    assert lock.minimum == {k: v for k, v in declared.items() if k in lock.packages or k in ROOTS or k in IMAGE}
    assert set(ROOTS) <= set(lock.packages) and not set(IMAGE) & set(lock.packages)


def test_gpu_asked_none_visible_fails_fast(project, small_files, tiny_backbone):
    cfg = load_config()
    build = build_kernel("train", cfg, project / "kb")
    inputs = {"lmsys-chatbot-arena": small_files.train.parent, "tiny-deberta-v3": tiny_backbone}
    with pytest.raises(KitError) as caught:
        run_kernel_locally(build.folder, inputs, project / "w", check_accelerator=True)
    line = "kernel failed (exit 1): kaggle-kit: the kernel asked for a GPU (NvidiaTeslaT4) but sees none"
    assert line in str(caught.value)
    assert not (project / "w" / "model").exists()  # stopped before any training
    env = json.loads((project / "w" / "kaggle_kit_env.json").read_text())
    assert env["gpu_count"] == 0 and env["problems"] and "Traceback" not in (project / "w" / "kernel.log").read_text()


@stand_in
def test_missing_wheel_is_one_line_before_training(project, small_files, tiny_backbone):
    empty = project / "wheels"
    empty.mkdir()
    (project / "kaggle-kit.toml").write_text((project / "kaggle-kit.toml").read_text().replace(
        "[datasets]\n", '[datasets]\nwheels = "tester/kk-wheels"\n'))
    build = build_kernel("train", load_config(), project / "kb")
    inputs = {"lmsys-chatbot-arena": small_files.train.parent, "tiny-deberta-v3": tiny_backbone, "kk-wheels": empty}
    with pytest.raises(KitError, match=r"has no .*peft==[\d.]+.*: kaggle-kit upload wheels --dataset") as caught:
        run_kernel_locally(build.folder, inputs, project / "w", python=IMAGE_PYTHON)
    assert "Traceback" not in (project / "w" / "kernel.log").read_text(), caught.value
    assert not (project / "w" / "model").exists()


@stand_in
def test_kaggle_image_stand_in_installs_offline_and_submits(project, small_files, tiny_backbone, tmp_path, image_copy):
    lock = load_lock()
    wheels = tmp_path / "kk-wheels"
    files = build_wheel_set(wheels, python=f"{sys.version_info[0]}.{sys.version_info[1]}",
                            find_links=[Path(WHEEL_CACHE)], no_index=True)  # the code of `upload wheels`, offline
    assert {wheel_name(f.name) for f in files} == set(lock.packages) | {"kaggle-kit"}
    assert json.loads((wheels / "kaggle_kit_lock.json").read_text())["lock"] == lock.to_dict()
    image = subprocess.run([IMAGE_PYTHON, "-c", "import importlib.util as u; print(u.find_spec('peft'))"],
                           capture_output=True, text=True)
    assert image.stdout.strip() == "None"  # the image really lacks peft before the kernel runs

    (project / "kaggle-kit.toml").write_text((project / "kaggle-kit.toml").read_text().replace(
        "[datasets]\n", '[datasets]\nwheels = "tester/kk-wheels"\n'))
    cfg = load_config()
    comp = small_files.train.parent
    train_build = build_kernel("train", cfg, project / "kb-train")
    run_kernel_locally(train_build.folder, {"lmsys-chatbot-arena": comp, "tiny-deberta-v3": tiny_backbone,
                                            "kk-wheels": wheels}, project / "w-train", python=image_copy)
    env = json.loads((project / "w-train" / "kaggle_kit_env.json").read_text())
    assert env["packages"]["peft"] == lock.packages["peft"]
    assert f"peft=={lock.packages['peft']}" in env["installed_from_wheels"]
    assert env["packages"]["transformers"] == _version(image_copy, "transformers")  # the image's own, kept
    infer_build = build_kernel("infer", cfg, project / "kb-infer")
    run_kernel_locally(infer_build.folder, {"lmsys-chatbot-arena": comp, "tiny-deberta-v3": tiny_backbone,
                                            "kk-wheels": wheels, "lmsys-train": project / "w-train"},
                       project / "w-infer", python=image_copy)
    checked = run("validate", project / "w-infer" / "submission.csv", "--test", small_files.test)
    assert checked.exit_code == 0, checked.output
    assert len(pd.read_csv(project / "w-infer" / "submission.csv")) == len(pd.read_csv(small_files.test))
    env = json.loads((project / "w-infer" / "kaggle_kit_env.json").read_text())
    assert env["gpu_count"] == 0 and env["installed_from_wheels"] == []  # installed once, by the train kernel's run
    present = {name for name, version in env["packages"].items() if version}
    assert {"transformers", "peft", "accelerate", "bitsandbytes", "tokenizers"} <= present
    assert env["manifest"]["task"] == "infer" and env["manifest"]["lock"] == lock.to_dict()


@pytest.fixture
def image_copy(tmp_path):
    """A throwaway copy of the stand-in (hard links: instant, and pip replaces files rather than writing into them)."""
    source = Path(IMAGE_PYTHON).parent.parent
    copy = source.parent / f"{source.name}-{tmp_path.name}"
    subprocess.run(["rm", "-rf", str(copy)], check=True)
    subprocess.run(["cp", "-al", str(source), str(copy)], check=True)
    yield str(copy / "bin" / "python")
    subprocess.run(["rm", "-rf", str(copy)], check=True)


def _version(python: str, name: str) -> str:
    return subprocess.run([python, "-c", f"from importlib.metadata import version; print(version('{name}'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
