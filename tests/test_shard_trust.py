"""A resumed sharded predict reuses a shard only if it is this run's, whole: its fingerprint covers everything the
numbers hang on (rows and texts, the model dir's prediction files, the backbone folder the model loads, precision,
quantisation, TTA, blend) and nothing else (file times, metrics and reports, --max-tokens, --shard-rows, the output
path), and every shard is checked as it is read (rows, shape, checksum, run id): a cut, unreadable or foreign one is
predicted again, never a traceback, never a wrong row."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import quick_config, run_cli, stop_predict_after
from kaggle_kit.config import PredictConfig
from kaggle_kit.errors import KitError
from kaggle_kit.inference.shards import ShardJob, Unit, World, parts_dir, run_sharded

LABELS = 3


def expected(model: int, rows) -> np.ndarray:
    """The stand-in model's probabilities for `rows` (a row's numbers depend on the row and the model only)."""
    logits = np.stack([np.asarray(rows, float) / 7, np.full(len(rows), model / 3), np.ones(len(rows))], axis=1)
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def numpy_job(fingerprint: dict, rows: int = 10, shard_rows: int = 3, models: int = 1, calls=None,
              during=None) -> ShardJob:
    """A ShardJob whose predict is a fixed function of (model, rows): what run_sharded does with shards is real."""
    calls = [] if calls is None else calls

    def predict(model, index):
        calls.append((model, list(index)))
        if during is not None:
            during(len(calls))
        return expected(model, index)

    return ShardJob(kind="predict", rows=rows, num_labels=LABELS, shard_rows=shard_rows,
                    fingerprint=lambda: fingerprint, model_count=models, predict=predict, release=lambda: None,
                    costs=lambda: np.ones(rows, dtype=np.int64), progress=False)


FP = {"input": "rows-1", "models": ["model-1"], "backbones": ["backbone-1"], "settings": {"tta": "none"}}


def _first_run(tmp_path, fingerprint=FP, **kw) -> Path:
    out = tmp_path / "sub.csv"
    prob_sets, report = run_sharded(numpy_job(fingerprint, **kw), out, overwrite=False, world=World())
    assert report["shards_reused"] == 0 and np.allclose(prob_sets[0], expected(0, range(kw.get("rows", 10))))
    return out


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a shard at all\n" * 10)


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _other_rows(path: Path) -> None:
    with open(path, "wb") as f:  # a shard of rows 0-2 under the name of rows 3-5
        np.savez(f, rows=np.arange(0, 3), probs=expected(0, range(0, 3)))


def _tampered(path: Path) -> None:
    with np.load(path) as data:
        fields = {k: data[k] for k in data.files}
    fields["probs"] = fields["probs"][::-1].copy()  # same shape, rows and run id: wrong numbers
    with open(path, "wb") as f:
        np.savez(f, **fields)


@pytest.mark.parametrize("damage", [_cut, _garbage, _empty, _other_rows, _tampered])
def test_a_damaged_shard_is_predicted_again(tmp_path, damage):
    out = _first_run(tmp_path)
    damage(parts_dir(out) / Unit(0, 1).name)
    calls = []
    prob_sets, report = run_sharded(numpy_job(FP, calls=calls), out, overwrite=False, world=World())
    assert calls == [(0, [3, 4, 5])] and report["shards_reused"] == 3
    assert np.allclose(prob_sets[0], expected(0, range(10)))


def test_a_shard_of_another_run_is_not_reused(tmp_path):
    """Shard files carry their run's id: one copied in from a run of other models (same name, same rows, a valid
    file) is predicted again."""
    other = tmp_path / "other"
    other.mkdir()
    foreign_out = _first_run(other, {**FP, "models": ["another model"]})
    out = _first_run(tmp_path)
    shutil.copy(parts_dir(foreign_out) / Unit(0, 2).name, parts_dir(out) / Unit(0, 2).name)
    calls = []
    prob_sets, report = run_sharded(numpy_job(FP, calls=calls), out, overwrite=False, world=World())
    assert calls == [(0, [6, 7, 8])] and report["shards_reused"] == 3
    assert np.allclose(prob_sets[0], expected(0, range(10)))


def test_a_shard_damaged_during_the_run_stops_the_merge_in_one_line(tmp_path):
    """A shard kept from the first run and cut while this one runs (another process, a full disk): the merge reads
    each shard checked again and says so; with one process the hint is not about nodes."""
    out = _first_run(tmp_path)
    (parts_dir(out) / Unit(0, 3).name).unlink()
    with pytest.raises(KitError) as stopped:
        run_sharded(numpy_job(FP, during=lambda n: _cut(parts_dir(out) / Unit(0, 0).name)), out, overwrite=False,
                    world=World())
    assert "not whole" in stopped.value.message and "node" not in stopped.value.format_line()


@pytest.mark.parametrize(("key", "value", "message"), [
    ("input", "rows-2", "another input"), ("models", ["model-2"], "other models"),
    ("backbones", ["backbone-2"], "another backbone"), ("settings", {"tta": "swap"}, r"other settings \(tta\)"),
])
def test_each_part_of_the_fingerprint_guards_the_shards(tmp_path, key, value, message):
    out = _first_run(tmp_path)
    with pytest.raises(KitError, match=message):
        run_sharded(numpy_job({**FP, key: value}), out, overwrite=False, world=World())
    calls = []
    prob_sets, report = run_sharded(numpy_job({**FP, key: value}, calls=calls), out, overwrite=True, world=World())
    assert len(calls) == 4 and report["shards_reused"] == 0


def test_a_changed_shard_rows_keeps_the_earlier_cut(tmp_path):
    out = _first_run(tmp_path)
    (parts_dir(out) / Unit(0, 3).name).unlink()
    calls, notes = [], []
    job = numpy_job(FP, shard_rows=4, calls=calls)
    job.echo = notes.append
    prob_sets, report = run_sharded(job, out, overwrite=False, world=World())
    assert calls == [(0, [9])] and report["shards_reused"] == 3 and report["shards"] == 4
    assert any("shards of 3 rows" in n for n in notes)
    assert np.allclose(prob_sets[0], expected(0, range(10)))


# --- the fingerprint of a real model dir, backbone and input --------------------------------------------------------

@pytest.fixture(scope="module")
def model(tmp_path_factory, small_files, tiny_backbone, spec):
    """A tiny trained model beside its own copy of the backbone (so the test may change that copy)."""
    from kaggle_kit.training.train import train

    root = tmp_path_factory.mktemp("trust")
    backbone = root / "backbone"
    shutil.copytree(tiny_backbone, backbone)
    train([small_files.train], root / "model", quick_config(backbone, max_steps=2, eval_steps=2), spec)
    return root / "model"


def _fingerprint(model_dir: Path, pairs, spec, cfg: PredictConfig | None = None, backbone: str | None = None,
                 weights=None) -> dict:
    from kaggle_kit.inference.shard_job import plain_models, shard_fingerprint, shard_settings

    cfg = cfg or PredictConfig()
    models = plain_models([model_dir], weights, cfg.blend, backbone)
    return shard_fingerprint(models, pairs, shard_settings(cfg, weights, spec))


def _weights_file(backbone: Path) -> Path:
    return max((p for p in backbone.iterdir() if p.suffix in (".safetensors", ".bin")), key=lambda p: p.stat().st_size)


@contextmanager
def _new_version(weights: Path):
    """Other weights under the same name, size and modification time (a dataset's new version, mounted where the
    old one was); the original bytes are back afterwards."""
    data, stat = weights.read_bytes(), weights.stat()
    middle = len(data) // 2
    weights.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64]) + data[middle + 64:])
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    try:
        yield
    finally:
        weights.write_bytes(data)


def _backbone_of(model_dir: Path) -> Path:
    return Path(json.loads((model_dir / "kaggle_kit_model.json").read_text())["backbone"])


@pytest.fixture
def pairs(small_files, spec):
    from kaggle_kit.data.reading import read_test

    return read_test(small_files.test, spec)


def test_what_does_not_change_the_numbers_keeps_the_fingerprint(model, pairs, spec, tmp_path, small_files):
    from kaggle_kit.data.reading import read_test

    before = _fingerprint(model, pairs, spec)
    stamp = 1_600_000_000
    for path in [*model.rglob("*"), *_backbone_of(model).rglob("*")]:
        os.utime(path, (stamp, stamp))  # a copy between nodes, a remount: new times, same bytes
    (model / "metrics.json").write_text((model / "metrics.json").read_text() + " ")
    (model / "report").mkdir(exist_ok=True)
    (model / "report" / "report.html").write_text("<html></html>")
    (model / "notes.txt").write_text("a note of the user's")
    resaved = tmp_path / "test.csv"  # the same rows, written by another tool (CRLF, every cell quoted)
    pd.read_csv(small_files.test).to_csv(resaved, index=False, lineterminator="\r\n", quoting=1)
    copy = tmp_path / "backbone-copy"  # the same backbone mounted elsewhere, passed with --backbone
    shutil.copytree(_backbone_of(model), copy)
    after = _fingerprint(model, read_test(resaved, spec), spec, PredictConfig(max_tokens=512, shard_rows=7,
                                                                              rules=True), backbone=str(copy))
    assert after == before


def test_what_changes_the_numbers_changes_the_fingerprint(model, pairs, spec, tmp_path):
    before = _fingerprint(model, pairs, spec)
    changed_rows = pairs.subset(range(len(pairs) - 1))
    assert _fingerprint(model, changed_rows, spec)["input"] != before["input"]
    other_text = pairs.subset(range(len(pairs)))
    column = sorted(other_text.texts)[0]
    other_text.texts[column][0] = [*other_text.texts[column][0][:-1], "another answer"]
    assert _fingerprint(model, other_text, spec)["input"] != before["input"]
    renamed = pairs.subset(range(len(pairs)))
    renamed.ids[0] = "renamed"
    assert _fingerprint(model, renamed, spec)["input"] != before["input"]
    for cfg in (PredictConfig(tta="swap"), PredictConfig(quantize="8bit"), PredictConfig(blend="logprob")):
        assert _fingerprint(model, pairs, spec, cfg)["settings"] != before["settings"]
    assert _fingerprint(model, pairs, spec, weights=[2.0])["settings"] != before["settings"]
    info = json.loads((model / "kaggle_kit_model.json").read_text())
    (model / "kaggle_kit_model.json").write_text(json.dumps({**info, "temperature": 1.7}))
    try:
        assert _fingerprint(model, pairs, spec)["models"] != before["models"]
    finally:
        (model / "kaggle_kit_model.json").write_text(json.dumps(info))


def test_a_new_backbone_version_under_the_same_path_changes_the_fingerprint(model, pairs, spec):
    """A mounted dataset's new version: other weights in the same file name, same size, even the same time."""
    before = _fingerprint(model, pairs, spec)
    with _new_version(_weights_file(_backbone_of(model))):
        after = _fingerprint(model, pairs, spec)
    assert after["backbones"] != before["backbones"] and after["models"] == before["models"]


def test_big_weights_are_read_by_samples_not_by_time(tmp_path):
    from kaggle_kit.inference.fingerprints import HASHED_WHOLE, content_digest

    rng = np.random.default_rng(0)
    big = tmp_path / "model.safetensors"
    big.write_bytes(rng.bytes(HASHED_WHOLE + 3 * 2**20))
    first = content_digest(big)
    os.utime(big, (1, 1))
    assert content_digest(big) == first
    big.write_bytes(rng.bytes(HASHED_WHOLE + 3 * 2**20))  # a new version: other weights, same size
    assert content_digest(big) != first
    with open(big, "ab") as f:
        f.write(b"\0")
    assert content_digest(big) != first


def test_resumed_predict_refuses_a_replaced_backbone_and_keeps_shards_through_harmless_changes(
        model, small_files, tmp_path, monkeypatch):
    """Through the CLI: a run stopped after one shard; the backbone's weights replaced in place (same size and
    time) -> refused in one line; restored, then rerun with a re-saved input, --max-tokens and --shard-rows changed
    -> the shard is kept and the file equals a run in one go."""
    import kaggle_kit.inference.predict as predict_module

    out = tmp_path / "sub.csv"
    _, real = stop_predict_after(monkeypatch, 1)
    with pytest.raises(RuntimeError, match="stopped"):
        run_cli("predict", "--test", small_files.test, "--model", model, "--out", out, "--set", "predict.shard_rows=10")
    monkeypatch.setattr(predict_module, "predict_probs", real)
    with _new_version(_weights_file(_backbone_of(model))):
        refused = run_cli("predict", "--test", small_files.test, "--model", model, "--out", out,
                          "--set", "predict.shard_rows=10", "--batching", "padded")  # no note: one line
    assert refused.exit_code == 2 and "another backbone" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    resaved = tmp_path / "data" / "test.csv"
    resaved.parent.mkdir()
    pd.read_csv(small_files.test).to_csv(resaved, index=False, lineterminator="\r\n", quoting=1)
    shutil.copy(small_files.sample_submission, resaved.parent / "sample_submission.csv")
    resumed = run_cli("predict", "--test", resaved, "--model", model, "--out", out, "--set", "predict.shard_rows=6",
                      "--set", "predict.max_tokens=2048", "--json")
    assert resumed.exit_code == 0, resumed.output
    report = json.loads(resumed.stdout)
    assert report["shards_reused"] == 1 and report["shards"] == 3
    whole = run_cli("predict", "--test", small_files.test, "--model", model, "--out", tmp_path / "whole.csv")
    assert whole.exit_code == 0
    a, b = pd.read_csv(out), pd.read_csv(tmp_path / "whole.csv")
    assert list(a["id"]) == list(b["id"])
    assert np.abs(a.drop(columns="id").to_numpy() - b.drop(columns="id").to_numpy()).max() < 1e-5
