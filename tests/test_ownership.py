""""Is this ours?" is answered by content, never by a name pattern: the cleanup of OUT.parts/ removes kaggle-kit's
exact file names only, a folder whose manifest.json is someone else's is neither used nor cleaned, files named like
shards that kaggle-kit cannot recognise as its own are never removed, and a model dir is kaggle-kit's only with the
record a run writes first (a user's metrics.json or report/ is not an unfinished run of ours)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from kaggle_kit.errors import KitError
from kaggle_kit.inference.shards import ShardJob, Unit, World, parts_dir, remove_parts, run_sharded
from kaggle_kit.model.model_dir import prepare_out_dir

FP = {"input": "rows", "models": ["model"], "backbones": ["backbone"], "settings": {}}
# Names a user may well have beside shards: each shares a prefix or suffix with kaggle-kit's, none is one of them.
LOOKALIKES = ("mine.npz", "m.npz", "model-final.npz", "m00-s00000.npz.bak", "m0-s0.npz", "notes.tmp", "m01.tmp",
              ".hidden.tmp", "manifest.json.orig", "lockfile")


def job(rows: int = 6, fingerprint: dict = FP) -> ShardJob:
    return ShardJob(kind="predict", rows=rows, num_labels=2, shard_rows=2, fingerprint=lambda: fingerprint,
                    model_count=1, predict=lambda m, index: np.full((len(index), 2), 0.5), release=lambda: None,
                    costs=lambda: np.ones(rows, dtype=np.int64), progress=False)


def _plant(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: f"the user's {name}".encode() for name in LOOKALIKES}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def _still_there(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        assert (folder / name).read_bytes() == data, name


def test_cleanup_after_a_run_removes_only_exact_names(tmp_path):
    out = tmp_path / "sub.csv"
    folder = parts_dir(out)
    files = _plant(folder)
    run_sharded(job(), out, overwrite=False, world=World())
    remove_parts(folder)
    _still_there(folder, files)
    assert sorted(p.name for p in folder.iterdir()) == sorted(LOOKALIKES)


def test_overwrite_removes_only_exact_names(tmp_path):
    out = tmp_path / "sub.csv"
    folder = parts_dir(out)
    run_sharded(job(), out, overwrite=False, world=World())
    files = _plant(folder)
    with pytest.raises(KitError, match="another input"):
        run_sharded(job(fingerprint={**FP, "input": "other rows"}), out, overwrite=False, world=World())
    run_sharded(job(fingerprint={**FP, "input": "other rows"}), out, overwrite=True, world=World())
    _still_there(folder, files)
    remove_parts(folder)
    _still_there(folder, files)


@pytest.mark.parametrize("manifest", [
    json.dumps({"format": 1, "kind": "my experiment", "fingerprint": {}}),
    json.dumps({"format": 2, "kind": "predict"}),
    json.dumps(["a", "list"]),
    "my own notes, not JSON",
])
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_manifest_that_is_not_ours_makes_the_folder_not_ours(tmp_path, manifest, overwrite):
    out = tmp_path / "sub.csv"
    folder = parts_dir(out)
    files = _plant(folder)
    (folder / "manifest.json").write_text(manifest)
    (folder / Unit(0, 0).name).write_bytes(b"the user's file with a shard's name")
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(KitError, match="not written by kaggle-kit"):
        run_sharded(job(), out, overwrite=overwrite, world=World())
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing removed, not even a lock file added
    assert (folder / "manifest.json").read_text() == manifest
    _still_there(folder, files)
    with pytest.raises(KitError, match="not written by kaggle-kit"):
        remove_parts(folder)
    assert sorted(p.name for p in folder.iterdir()) == before


@pytest.mark.parametrize("overwrite", [False, True])
def test_files_named_like_shards_without_a_manifest_are_never_removed(tmp_path, overwrite):
    out = tmp_path / "sub.csv"
    folder = parts_dir(out)
    folder.mkdir()
    (folder / Unit(0, 0).name).write_bytes(b"a user's archive that happens to have this name")
    with open(folder / Unit(0, 1).name, "wb") as f:
        np.savez(f, rows=np.arange(2, 4), probs=np.zeros((2, 2)))  # an npz of the user's: no run id, no checksum
    with pytest.raises(KitError, match="not kaggle-kit's shards"):
        run_sharded(job(), out, overwrite=overwrite, world=World())
    assert sorted(p.name for p in folder.iterdir()) == [Unit(0, 0).name, Unit(0, 1).name]


def test_our_own_shards_without_a_manifest_go_with_overwrite_only(tmp_path):
    out = tmp_path / "sub.csv"
    folder = parts_dir(out)
    run_sharded(job(), out, overwrite=False, world=World())
    (folder / "manifest.json").unlink()
    with pytest.raises(KitError, match="no manifest.json"):
        run_sharded(job(), out, overwrite=False, world=World())
    _, report = run_sharded(job(), out, overwrite=True, world=World())
    assert report["shards_reused"] == 0


@pytest.mark.parametrize("entries", [["metrics.json"], ["report/report.html"], ["adapter/weights.bin"],
                                     ["checkpoints/notes.txt", "metrics.json"], ["kaggle_kit_model.json"]])
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_with_our_names_but_no_run_record_is_not_ours(tmp_path, entries, overwrite):
    out = tmp_path / "mine"
    for entry in entries:
        (out / entry).parent.mkdir(parents=True, exist_ok=True)
        (out / entry).write_text(f"the user's {entry}")
    with pytest.raises(KitError, match="no record of a kaggle-kit run"):
        prepare_out_dir(out, resume=False, overwrite=overwrite)
    for entry in entries:
        assert (out / entry).read_text() == f"the user's {entry}"


def test_train_overwrite_keeps_a_users_folder_that_uses_our_names(tmp_path, small_files, tiny_backbone):
    out = tmp_path / "analysis"
    (out / "report").mkdir(parents=True)
    (out / "report" / "summary.md").write_text("my analysis")
    (out / "metrics.json").write_text('{"mine": 1}')
    result = run_cli("train", "--train", small_files.train, "--backbone", tiny_backbone, "--out", out, "--overwrite",
                     "--max-steps", "1")
    assert result.exit_code == 1 and "no record of a kaggle-kit run" in result.output, result.output
    assert (out / "report" / "summary.md").read_text() == "my analysis"
    assert (out / "metrics.json").read_text() == '{"mine": 1}'


def test_a_run_that_stopped_early_is_still_ours(tmp_path):
    """The run record is written before anything else of a run: a run stopped at once is replaced with
    --overwrite, and only with it."""
    from kaggle_kit.model.model_dir import save_run_config

    out = tmp_path / "m"
    out.mkdir()
    save_run_config(out, {"backbone": "b", "train_files": ["t.csv"]})
    with pytest.raises(KitError, match="unfinished run"):
        prepare_out_dir(out, resume=False, overwrite=False)
    (out / "notes.txt").write_text("mine")
    prepare_out_dir(out, resume=False, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("files", [{"oof.csv": "id,mine\n1,2\n"}, {"cv.json": '{"my": "notes"}'},
                                   {"oof.csv": "id\n1\n", "cv.json": "not json"}])
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_cv_folder_with_our_file_names_but_not_our_cv_json_is_not_ours(tmp_path, small_files, tiny_backbone, files,
                                                                         overwrite):
    """`cv` would write oof.csv and cv.json over a user's files of those names (gather replaces them): refused
    before any training, the files untouched."""
    out = tmp_path / "cv"
    out.mkdir()
    for name, text in files.items():
        (out / name).write_text(text)
    result = run_cli("cv", "--train", small_files.train, "--backbone", tiny_backbone, "--out", out, "--folds", "2",
                     *(["--overwrite"] if overwrite else []))
    assert result.exit_code == 1 and "no cv.json written by `cv`" in result.output, result.output
    assert {p.name: p.read_text() for p in out.iterdir()} == files


def test_a_cv_folder_of_ours_is_recognised_by_its_cv_json(tmp_path):
    from kaggle_kit.training.cv import check_cv_out

    out = tmp_path / "cv"
    out.mkdir()
    (out / "oof.csv").write_text("id\n1\n")
    (out / "cv.json").write_text(json.dumps({"folds": 2, "rows": 1, "oof_log_loss": 1.0, "per_fold": []}))
    check_cv_out(out, [0, 1], 2, overwrite=False)  # no fold trained yet: nothing to refuse
