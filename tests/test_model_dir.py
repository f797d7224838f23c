"""The model dir: --overwrite removes only kaggle-kit's own files, --resume refuses what it cannot continue, and a
broken or moved model dir is a one-line error."""

import json
import shutil

import pytest
from click.testing import CliRunner

from conftest import fake_model_dir, quick_config
from kaggle_kit.cli import main
from kaggle_kit.errors import KitError
from kaggle_kit.model.model_dir import ADAPTER_DIR, MODEL_FILE, load_trained, prepare_out_dir
from kaggle_kit.training.train import train


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_overwrite_never_deletes_files_kaggle_kit_did_not_write(tmp_path, small_files, tiny_backbone):
    victim = tmp_path / "victim"
    victim.mkdir()
    shutil.copy(small_files.train, victim / "train.csv")
    (victim / "notes.txt").write_text("precious")
    result = run("train", "--train", victim / "train.csv", "--backbone", tiny_backbone, "--out", victim,
                 "--overwrite", "--max-len", "64", "--max-steps", "1")
    assert result.exit_code == 1 and "did not write" in result.output
    assert (victim / "notes.txt").read_text() == "precious" and (victim / "train.csv").exists()


def test_overwrite_replaces_only_our_entries(tmp_path, small_files, spec, tiny_backbone):
    out = tmp_path / "m"
    train([small_files.train], out, quick_config(tiny_backbone, max_steps=1, eval_steps=1), spec)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(KitError, match="already holds a trained model"):
        prepare_out_dir(out, resume=False, overwrite=False)
    prepare_out_dir(out, resume=False, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_resume_refuses_a_finished_run_and_changed_settings(tmp_path, small_files, spec, tiny_backbone):
    out = tmp_path / "m"
    cfg = quick_config(tiny_backbone, max_steps=2, eval_steps=1)
    train([small_files.train], out, cfg, spec)
    before = (out / MODEL_FILE).read_text()
    with pytest.raises(KitError, match="nothing to resume"):
        train([small_files.train], out, cfg, spec, resume=True)
    assert (out / MODEL_FILE).read_text() == before
    (out / MODEL_FILE).unlink()  # now it looks like an interrupted run with checkpoints
    changed = quick_config(tiny_backbone, max_steps=2, eval_steps=1, max_len=64, learning_rate=5e-2)
    with pytest.raises(KitError, match="differ from the checkpoints'.*learning_rate"):
        train([small_files.train], out, changed, spec, resume=True)


def test_model_dir_found_from_another_working_directory(tmp_path, trained, small_files, monkeypatch):
    """The backbone is stored resolved; a moved pair (model + backbone side by side) is found beside the model."""
    info = json.loads((trained.out_dir / MODEL_FILE).read_text())
    assert info["backbone"].startswith("/")
    moved = tmp_path / "moved"
    shutil.copytree(trained.out_dir, moved / "model")
    shutil.copytree(info["backbone"], moved / "tiny-deberta-v3")
    data = json.loads((moved / "model" / MODEL_FILE).read_text())
    data["backbone"] = "/nowhere/tiny-deberta-v3"
    (moved / "model" / MODEL_FILE).write_text(json.dumps(data))
    monkeypatch.chdir(tmp_path)
    assert load_trained(moved / "model").info["backbone"] == "/nowhere/tiny-deberta-v3"
    shutil.rmtree(moved / "tiny-deberta-v3")
    with pytest.raises(KitError, match="pass --backbone PATH"):
        load_trained(moved / "model")


def _predict_fails_in_one_line(model, small_files, tmp_path, message):
    result = run("predict", "--test", small_files.test, "--model", model, "--out", tmp_path / "p.csv",
                 "--batching", "padded")  # no note that auto chose padded for DeBERTa: one line
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("breakage, message", [("no_adapter", "has no adapter weights"),
                                               ("corrupt_info", "is corrupt")])
def test_broken_model_dirs_are_one_line_errors(tmp_path, tiny_backbone, small_files, breakage, message):
    """Found before any weights load: a model dir that was never trained shows them."""
    model = fake_model_dir(tmp_path / "model", tiny_backbone)
    if breakage == "no_adapter":
        shutil.rmtree(model / ADAPTER_DIR)
    else:
        (model / MODEL_FILE).write_text("{not json")
    _predict_fails_in_one_line(model, small_files, tmp_path, message)


def test_truncated_adapter_weights_are_a_one_line_error(tmp_path, trained, small_files):
    model = tmp_path / "model"
    shutil.copytree(trained.out_dir, model)
    weights = model / ADAPTER_DIR / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    _predict_fails_in_one_line(model, small_files, tmp_path, "cannot load the model")


def test_backbone_of_another_architecture_is_refused(tmp_path, tiny_backbone, small_files):
    from kaggle_kit.model.tiny_backbone import build_tiny_backbone

    llama = build_tiny_backbone(tmp_path / "llama", arch="llama")
    model = fake_model_dir(tmp_path / "model", tiny_backbone)  # refused before any model loads: nothing trained
    result = run("predict", "--test", small_files.test, "--model", model, "--backbone", llama,
                 "--out", tmp_path / "p.csv")
    assert result.exit_code == 1 and "was trained on a deberta-v2" in result.output
