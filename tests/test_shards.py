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

from conftest import quick_config, stop_predict_after
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

    out = tmp_path / "sub.csv"
    calls, real = stop_predict_after(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="stopped"):
        _predict(model, small_files.test, out, "--set", "predict.shard_rows=5", "--tta", "swap")
    assert not out.exists() and len(list(parts_dir(out).glob("*.npz"))) == 2
    changed = _predict(model, small_files.test, out, "--set", "predict.shard_rows=5")  # --tta none: other numbers
    assert changed.exit_code == 2 and "predicted with other settings (tta)" in changed.output
    assert len(changed.output.strip().splitlines()) == 1
    calls.clear()
    monkeypatch.setattr(predict_module, "predict_probs", lambda *a, **k: (calls.append(len(a[1])), real(*a, **k))[1])
    resumed = _predict(model, small_files.test, out, "--set", "predict.shard_rows=5", "--tta", "swap")
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
    args = ("pseudo-label", "--model", model, "--out", out, "--set", "predict.shard_rows=5",
            "--set", "predict.batching=padded")  # the tiny DeBERTa: no note that auto chose padded
    first = run(*args, "--input", half)
    assert first.exit_code == 0 and not folder.exists()  # nothing left behind after the merge
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "manifest.json").write_text(json.dumps({"writer": "kaggle-kit", "format": 2, "kind": "pseudo-label",
                                                      "fingerprint": {"input": "sha256 of an older file"}}))
    (folder / Unit(0, 0).name).write_bytes(b"a shard of that file")
    out.unlink()
    refused = run(*args, "--input", half)
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1
    assert "the shards in" in refused.output and "are of another input" in refused.output
    done = run(*args, "--input", half, "--overwrite")
    assert done.exit_code == 0, done.output
    assert [p.name for p in folder.iterdir()] == ["notes.txt"] and len(pd.read_csv(out)) == 12


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}


def _torchrun_async(*args) -> subprocess.Popen:
    cmd = [*TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "kaggle_kit.cli", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def _torchrun(*args, nodes: list[int] | None = None, port: int = 0) -> list[subprocess.CompletedProcess]:
    """kaggle-kit under torchrun on 2 CPU ranks (gloo): --standalone on one machine, or with `nodes` one launch per
    "node" meeting on the loopback, as two machines meet on their network."""
    cli = ["-m", "kaggle_kit.cli", *map(str, args)]
    if nodes is None:
        launches = [[*TORCHRUN, "--standalone", "--nproc_per_node", "2", *cli]]
    else:
        launches = [[*TORCHRUN, "--nnodes", "2", "--node-rank", str(r), "--nproc-per-node", "1", "--rdzv-backend",
                     "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", *cli] for r in nodes]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
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


def test_two_ranks_predict_half_each_and_write_the_one_process_file(model, small_files, tmp_path, monkeypatch):
    """`torchrun --nproc_per_node 2 ... predict` with swap TTA and rules, resuming a one-process run stopped after
    2 of 6 shards: one file, equal to one process without shards; the two ranks shared the 4 missing shards, rank 0
    alone printed the JSON."""
    import kaggle_kit.inference.predict as predict_module

    out = tmp_path / "two.csv"
    args = ("predict", "--test", small_files.test, "--model", model, "--out", out, "--tta", "swap",
            "--set", "predict.rules=true", "--set", "predict.shard_rows=4", "--json")
    real, calls = predict_module.predict_probs, []

    def failing_after_two(*a, **k):
        if len(calls) == 2:
            raise RuntimeError("stopped")
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(predict_module, "predict_probs", failing_after_two)
    with pytest.raises(RuntimeError, match="stopped"):
        run(*args)
    (proc,) = _torchrun(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["world_size"] == 2 and report["rows"] == 24 and report["shards"] == 6
    assert report["shards_reused"] == 2 and sorted(r["rank"] for r in report["ranks"]) == [0, 1]
    assert [r["rows"] for r in report["ranks"]] == [8, 8]  # 4 rows x 2 shards each
    assert "rank 1/2: predicted" in proc.stderr and not parts_dir(out).exists()
    monkeypatch.setattr(predict_module, "predict_probs", real)
    one = _predict(model, small_files.test, tmp_path / "one.csv", "--tta", "swap", "--set", "predict.rules=true")
    assert one.exit_code == 0 and json.loads(one.output)["shards"] == 1
    a, b = pd.read_csv(out), pd.read_csv(tmp_path / "one.csv")
    assert list(a["id"]) == list(b["id"]) == list(pd.read_csv(small_files.sample_submission)["id"])
    assert np.abs(a.drop(columns="id").to_numpy() - b.drop(columns="id").to_numpy()).max() < 1e-5


def test_distillation_chain_teacher_folds_two_node_labels_student(small_files, tiny_backbone, tmp_path):
    """The winners' chain on CPU: two teacher folds trained by torchrun DDP (2 gloo ranks each, launched side by side
    as two jobs would be), 120 unlabelled pairs labelled by both folds on two torchrun "nodes" meeting on the
    loopback (the file equals one process's, --min-confidence included), then a student trained on --teacher."""
    train_args = ["--train", small_files.train, "--backbone", tiny_backbone, "--max-len", "128", "--max-steps", "2",
                  "--eval-steps", "2", "--json"]
    launches = [_torchrun_async("train", *train_args, "--fold", f"{k}/2", "--out", tmp_path / f"teacher-{k}")
                for k in range(2)]
    for proc in launches:
        out, err = proc.communicate(timeout=LAUNCH_TIMEOUT)
        assert proc.returncode == 0, err[-3000:]
        assert json.loads(out)["world_size"] == 2
    pairs = pd.read_csv(small_files.train).drop(columns=["winner_model_a", "winner_model_b", "winner_tie"])
    pairs["id"] = pairs["id"] + 10_000_000  # unlabelled pairs: ids the teachers never trained on
    pairs.to_csv(tmp_path / "unlabelled.csv", index=False)
    teachers = ["--model", tmp_path / "teacher-0", "--model", tmp_path / "teacher-1"]
    label = ["pseudo-label", *teachers, "--input", tmp_path / "unlabelled.csv", "--set", "predict.shard_rows=16",
             "--json"]
    once = run(*label, "--out", tmp_path / "pl-all.csv")
    assert once.exit_code == 0, once.output
    threshold = round(json.loads(once.output)["mean_confidence"], 4)  # drops about half of the rows
    one = run(*label, "--out", tmp_path / "pl-one.csv", "--min-confidence", threshold)
    assert one.exit_code == 0, one.output
    nodes = _torchrun(*label, "--out", tmp_path / "pl.csv", "--min-confidence", threshold, nodes=[0, 1],
                      port=_free_port())
    assert [p.returncode for p in nodes] == [0, 0], nodes[0].stderr[-2000:] + nodes[1].stderr[-2000:]
    report = json.loads(nodes[0].stdout)  # node 0 holds rank 0: it merged and printed
    assert report["world_size"] == 2 and sum(r["rows"] for r in report["ranks"]) == 2 * 120  # 2 models
    assert nodes[1].stdout == "" and "rank 1/2: predicted" in nodes[1].stderr
    a, b = pd.read_csv(tmp_path / "pl.csv"), pd.read_csv(tmp_path / "pl-one.csv")
    assert 0 < len(a) < 120 and list(a["id"]) == list(b["id"])
    labels = ["winner_model_a", "winner_model_b", "winner_tie"]
    assert np.abs(a[labels].to_numpy() - b[labels].to_numpy()).max() < 1e-5
    student = run("train", "--train", tmp_path / "pl.csv", "--set", f"train.teacher={tmp_path / 'pl.csv'}",
                  "--set", "train.distill_weight=0.5", "--backbone", tiny_backbone, "--out", tmp_path / "student",
                  "--max-len", "128", "--max-steps", "2", "--eval-steps", "2", "--json")
    assert student.exit_code == 0, student.output
    assert json.loads(student.stdout)["teacher_rows"] == len(a)
