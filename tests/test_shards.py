"""Rank-sharded, resumable predict and pseudo-label: shards balanced by tokens, a stopped run resumed, changed inputs
refused, and real torchrun launches (2 gloo ranks; 2 "nodes" meeting on the loopback) equal to one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import quick_config
from kaggle_kit.cli import main
from kaggle_kit.inference.shards import Unit, World, assign, current_world, parts_dir, shard_ranges

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
LAUNCH_TIMEOUT = 240


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def model(tmp_path_factory, small_files, tiny_backbone, spec):
    from kaggle_kit.training.train import train

    out = tmp_path_factory.mktemp("shards") / "model"
    train([small_files.train], out, quick_config(tiny_backbone, max_steps=2, eval_steps=2), spec)
    return out


def test_shares_balance_tokens_and_take_every_unit_once():
    costs = {Unit(0, s): c for s, c in enumerate([100, 10, 10, 10, 10, 10, 10, 40])}
    shares = assign(costs, 2)
    assert sorted(u for share in shares for u in share) == sorted(costs)
    loads = [sum(costs[u] for u in share) for share in shares]
    assert loads == [100, 100]  # by rows it would be 4 shards each: 130 against 70
    assert assign(costs, 2) == shares  # every rank computes the same plan
    assert [list(r) for r in shard_ranges(7, 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert current_world({"RANK": "1", "WORLD_SIZE": "2"}) == World(1, 2) and not current_world({}).sharded


def _predict(model, test, out, *extra):
    return run("predict", "--test", test, "--model", model, "--out", out, "--json", *extra)


def test_stopped_run_resumes_keeping_its_shards(model, small_files, tmp_path, monkeypatch):
    """A run that fails after two shards (the stand-in for a preempted node or a session limit) is rerun: the two
    shards are kept, only the other three are predicted, and the file equals a run without shards (one shard)."""
    import kaggle_kit.inference.predict as predict_module

    real = predict_module.predict_probs
    calls = []

    def failing_after_two(trained, pairs, *args, **kwargs):
        if len(calls) == 2:
            raise RuntimeError("stopped")
        calls.append(len(pairs))
        return real(trained, pairs, *args, **kwargs)

    out = tmp_path / "sub.csv"
    monkeypatch.setattr(predict_module, "predict_probs", failing_after_two)
    with pytest.raises(RuntimeError, match="stopped"):
        _predict(model, small_files.test, out, "--shard-rows", "5", "--tta", "swap")
    assert not out.exists() and len(list(parts_dir(out).glob("*.npz"))) == 2
    changed = _predict(model, small_files.test, out, "--shard-rows", "5")  # --tta none: other numbers
    assert changed.exit_code == 2 and "predicted with other settings (tta)" in changed.output
    assert len(changed.output.strip().splitlines()) == 1
    calls.clear()
    monkeypatch.setattr(predict_module, "predict_probs", lambda *a, **k: (calls.append(len(a[1])), real(*a, **k))[1])
    resumed = _predict(model, small_files.test, out, "--shard-rows", "5", "--tta", "swap")
    assert resumed.exit_code == 0, resumed.output
    report = json.loads(resumed.output)
    assert calls == [5, 5, 4] and report["shards"] == 5 and report["shards_reused"] == 2
    assert report["world_size"] == 1 and report["ranks"][0]["rows"] == 14
    assert not parts_dir(out).exists()  # removed once the output is written
    whole = _predict(model, small_files.test, tmp_path / "whole.csv", "--tta", "swap")
    assert whole.exit_code == 0 and json.loads(whole.output)["shards"] == 1
    a, b = pd.read_csv(out), pd.read_csv(tmp_path / "whole.csv")
    assert list(a["id"]) == list(pd.read_csv(small_files.sample_submission)["id"]) == list(b["id"])
    assert np.abs(a.drop(columns="id").to_numpy() - b.drop(columns="id").to_numpy()).max() < 1e-5


def test_other_input_refused_and_overwrite_removes_only_our_files(model, small_files, tmp_path):
    """Shards of another input left in OUT.parts/ (a stopped run on an older file) are refused in one line;
    --overwrite removes kaggle-kit's files only (a file of the user's in that folder stays, and so does the folder)."""
    half = tmp_path / "half.csv"
    pd.read_csv(small_files.test).head(12).to_csv(half, index=False)
    out = tmp_path / "pl.csv"
    folder = parts_dir(out)
    args = ("pseudo-label", "--model", model, "--out", out, "--shard-rows", "5")
    first = run(*args, "--input", half)
    assert first.exit_code == 0 and not folder.exists()  # nothing left behind after the merge
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "manifest.json").write_text(json.dumps({"format": 1, "kind": "pseudo-label", "fingerprint": {
        "input": "sha256 of an older file"}}))
    (folder / Unit(0, 0).name).write_bytes(b"a shard of that file")
    out.unlink()
    refused = run(*args, "--input", half)
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1
    assert "the shards in" in refused.output and "are of another input file" in refused.output
    done = run(*args, "--input", half, "--overwrite")
    assert done.exit_code == 0, done.output
    assert [p.name for p in folder.iterdir()] == ["notes.txt"] and len(pd.read_csv(out)) == 12


def _torchrun(*args, nodes: list[int] | None = None, port: int = 0) -> list[subprocess.CompletedProcess]:
    """kaggle-kit under torchrun on 2 CPU ranks (gloo): --standalone on one machine, or with `nodes` one launch per
    "node" meeting on the loopback, as two machines meet on their network."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    cli = ["-m", "kaggle_kit.cli", *map(str, args)]
    if nodes is None:
        launches = [[*TORCHRUN, "--standalone", "--nproc_per_node", "2", *cli]]
    else:
        launches = [[*TORCHRUN, "--nnodes", "2", "--node-rank", str(r), "--nproc-per-node", "1", "--rdzv-backend",
                     "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", *cli] for r in nodes]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for cmd in launches]
    done = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=LAUNCH_TIMEOUT)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_predict_half_each_and_write_the_one_process_file(model, small_files, tmp_path):
    """`torchrun --nproc_per_node 2 ... predict` with swap TTA and rules: one file, equal to one process without
    shards, each rank predicted about half of the rows, rank 0 alone printed the JSON."""
    out = tmp_path / "two.csv"
    (proc,) = _torchrun("predict", "--test", small_files.test, "--model", model, "--out", out, "--tta", "swap",
                        "--rules", "--shard-rows", "4", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["world_size"] == 2 and report["rows"] == 24 and report["shards"] == 6
    assert sorted(r["rank"] for r in report["ranks"]) == [0, 1]
    assert sum(r["rows"] for r in report["ranks"]) == 24 and all(8 <= r["rows"] <= 16 for r in report["ranks"])
    assert "rank 1/2: predicted" in proc.stderr and not parts_dir(out).exists()
    one = _predict(model, small_files.test, tmp_path / "one.csv", "--tta", "swap", "--rules")
    assert one.exit_code == 0 and json.loads(one.output)["shards"] == 1
    a, b = pd.read_csv(out), pd.read_csv(tmp_path / "one.csv")
    assert list(a["id"]) == list(b["id"]) == list(pd.read_csv(small_files.sample_submission)["id"])
    assert np.abs(a.drop(columns="id").to_numpy() - b.drop(columns="id").to_numpy()).max() < 1e-5
