"""Two runs writing the same output at once: the second stops before it reads or writes a shard, in one line that
names the run holding the output (pid, host, since when) and says nothing about nodes; a run that was killed holds
nothing; the lock goes with the shards once the output is written."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import quick_config, run_cli
from kaggle_kit.errors import KitError
from kaggle_kit.inference.shards import ShardJob, World, parts_dir, remove_parts, run_sharded

HERE = Path(__file__).parent  # not the repository root: the code under test comes from PYTHONPATH
FP = {"input": "rows", "models": ["model"], "backbones": ["backbone"], "settings": {}}
HOLD = ("import sys; from pathlib import Path; from kaggle_kit.inference.output_lock import acquire_lock; "
        "acquire_lock(Path(sys.argv[1])); print('holding', flush=True); sys.stdin.read()")
ENV = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH") or str(Path(__file__).parents[1])}


def job(calls: list | None = None, fail_at: int | None = None) -> ShardJob:
    calls = [] if calls is None else calls

    def predict(model, index):
        calls.append(list(index))
        if fail_at is not None and len(calls) == fail_at:
            raise RuntimeError("stopped")
        return np.full((len(index), 2), 0.5)

    return ShardJob(kind="predict", rows=6, num_labels=2, shard_rows=2, fingerprint=lambda: FP, model_count=1,
                    predict=predict, release=lambda: None, costs=lambda: np.ones(6, dtype=np.int64), progress=False)


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of tmp_path/sub.csv, as a running kaggle-kit run does."""
    out = tmp_path / "sub.csv"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(parts_dir(out))], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=HERE)
    try:
        assert proc.stdout.readline().strip() == "holding", proc.stderr.read()
        yield out, proc
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_a_second_run_stops_naming_the_holder_and_writes_nothing(holder):
    out, proc = holder
    calls = []
    with pytest.raises(KitError) as busy:
        run_sharded(job(calls), out, overwrite=False, world=World())
    line = busy.value.format_line()
    assert f"pid {proc.pid} on {socket.gethostname()}" in line and "being written by another kaggle-kit run" in line
    assert "node" not in line and "torchrun" not in line
    assert calls == [] and sorted(p.name for p in parts_dir(out).iterdir()) == ["lock"]  # no manifest, no shard
    with pytest.raises(KitError, match="being written"):
        run_sharded(job(calls), out, overwrite=True, world=World())  # --overwrite does not take it either


def test_the_lock_of_a_killed_run_holds_nothing(holder):
    out, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    prob_sets, report = run_sharded(job(), out, overwrite=False, world=World())
    assert report["shards"] == 3 and np.allclose(prob_sets[0], 0.5)
    remove_parts(parts_dir(out))
    assert not parts_dir(out).exists()


def test_the_lock_is_held_until_the_output_is_written_then_removed(tmp_path):
    out = tmp_path / "sub.csv"
    run_sharded(job(), out, overwrite=False, world=World())
    other = subprocess.run([sys.executable, "-c", HOLD, str(parts_dir(out))], input="", capture_output=True,
                           text=True, env=ENV, cwd=HERE, timeout=120)
    assert other.returncode != 0 and "being written by another kaggle-kit run" in other.stderr
    remove_parts(parts_dir(out))  # what predict does once OUT is written
    assert not parts_dir(out).exists()
    free = subprocess.run([sys.executable, "-c", HOLD, str(parts_dir(out))], input="", capture_output=True,
                          text=True, env=ENV, cwd=HERE, timeout=120)
    assert free.returncode == 0, free.stderr


def test_a_failed_run_lets_go_and_keeps_its_shards(tmp_path):
    out = tmp_path / "sub.csv"
    with pytest.raises(RuntimeError, match="stopped"):
        run_sharded(job(fail_at=2), out, overwrite=False, world=World())
    assert sorted(p.name for p in parts_dir(out).iterdir()) == ["m00-s00000.npz", "manifest.json"]
    free = subprocess.run([sys.executable, "-c", HOLD, str(parts_dir(out))], input="", capture_output=True,
                          text=True, env=ENV, cwd=HERE, timeout=120)
    assert free.returncode == 0, free.stderr


@pytest.fixture(scope="module")
def model(tmp_path_factory, small_files, tiny_backbone, spec):
    from kaggle_kit.training.train import train

    out = tmp_path_factory.mktemp("lock") / "model"
    train([small_files.train], out, quick_config(tiny_backbone, max_steps=2, eval_steps=2), spec)
    return out


@pytest.mark.parametrize("command", ["predict", "pseudo-label"])
def test_cli_second_run_is_one_line_without_a_node_hint(holder, model, small_files, command):
    out, proc = holder
    data = ["--test", small_files.test] if command == "predict" else ["--input", small_files.test]
    result = run_cli(command, *data, "--model", model, "--out", out)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    last = result.output.strip().splitlines()[-1]
    assert f"pid {proc.pid}" in last and "node" not in last and "shard" not in last, last
    assert not out.exists() and sorted(p.name for p in parts_dir(out).iterdir()) == ["lock"]
