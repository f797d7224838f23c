import json

import numpy as np
import pytest
from safetensors import safe_open
from transformers import TrainerCallback

from conftest import fake_model_dir, one_line_error, quick_config, run_cli
from kaggle_kit.config import TrainConfig
from kaggle_kit.data.reading import read_train
from kaggle_kit.errors import KitError
from kaggle_kit.model.model_dir import ADAPTER_DIR, CURVES_FILE, METRICS_FILE, MODEL_FILE
from kaggle_kit.model.tiny_backbone import build_tiny_backbone
from kaggle_kit.training.train import train


def test_default_flags_beat_class_prior(trained):
    m = trained.metrics
    assert m["holdout"]["log_loss"] < m["prior_log_loss"] - 0.05, m["holdout"]
    on_disk = json.loads((trained.out_dir / METRICS_FILE).read_text())
    assert on_disk["best_step"] == m["best_step"] and len(on_disk["eval_history"]) >= 2
    assert (trained.out_dir / CURVES_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pooler_and_head_are_saved_with_adapter(trained):
    with safe_open(str(trained.out_dir / ADAPTER_DIR / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any("pooler.dense.weight" in k for k in keys)
    assert any("classifier.weight" in k for k in keys)
    assert any("lora_A" in k for k in keys)
    info = json.loads((trained.out_dir / MODEL_FILE).read_text())
    assert info["encoding"]["max_len"] == 256 and info["encoding"]["template"] == "encoder"


class StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt("simulated kill")


def test_resume_ends_with_same_metrics(tmp_path, small_files, spec, tiny_backbone):
    cfg = quick_config(tiny_backbone, max_steps=8, eval_steps=3)
    full = train([small_files.train], tmp_path / "full", cfg, spec).metrics
    with pytest.raises(KeyboardInterrupt):
        train([small_files.train], tmp_path / "cut", cfg, spec, callbacks=[StopAt(5)])
    assert (tmp_path / "cut" / "checkpoints" / "checkpoint-3").is_dir()
    with pytest.raises(KitError, match="--resume"):
        train([small_files.train], tmp_path / "cut", cfg, spec)
    resumed = train([small_files.train], tmp_path / "cut", cfg, spec, resume=True).metrics
    assert resumed["holdout"]["log_loss"] == pytest.approx(full["holdout"]["log_loss"], abs=1e-4)
    assert [e["step"] for e in resumed["eval_history"]] == [e["step"] for e in full["eval_history"]]
    for a, b in zip(resumed["eval_history"], full["eval_history"]):
        assert a["log_loss"] == pytest.approx(b["log_loss"], abs=1e-4)
    with pytest.raises(KitError, match="already holds a trained model"):
        train([small_files.train], tmp_path / "full", cfg, spec)


@pytest.mark.parametrize("arch", ["gemma2", "llama"])
def test_decoder_backbones_train_and_predict(tmp_path, small_files, spec, arch):
    from kaggle_kit.data.reading import read_test
    from kaggle_kit.inference.predict import predict_probs
    from kaggle_kit.model.model_dir import load_trained

    backbone = build_tiny_backbone(tmp_path / arch, arch=arch)
    result = train([small_files.train], tmp_path / "out", quick_config(backbone, max_steps=1, eval_steps=1), spec)
    assert np.isfinite(result.metrics["holdout"]["log_loss"])
    info = json.loads((tmp_path / "out" / MODEL_FILE).read_text())
    assert info["encoding"]["template"] == "decoder"
    probs = predict_probs(load_trained(tmp_path / "out"), read_test(small_files.test, spec), spec, 4096, progress=False)
    assert probs.shape == (24, 3) and np.allclose(probs.sum(1), 1)


def test_swap_augment_maps_labels(small_files, spec):
    pairs = read_train(small_files.train, spec)
    swapped = pairs.swapped(spec)
    assert swapped.texts["response_a"] == pairs.texts["response_b"]
    assert swapped.texts["prompt"] == pairs.texts["prompt"]
    mapping = dict(zip(pairs.labels.tolist(), swapped.labels.tolist()))
    assert mapping == {0: 1, 1: 0, 2: 2}


def test_swap_augment_doubles_training_rows(tmp_path, small_files, spec, tiny_backbone):
    """The sequences the Trainer sees: twice the training rows with --swap-augment, once without; the holdout rows
    are never swapped in."""
    plain = train([small_files.train], tmp_path / "plain", quick_config(tiny_backbone, max_steps=1), spec).metrics
    m = train([small_files.train], tmp_path / "out", quick_config(tiny_backbone, max_steps=1, swap_augment=True),
              spec).metrics
    assert m["rows"]["train"] == plain["rows"]["train"] == 120 - m["rows"]["holdout"]
    assert plain["rows"]["sequences"] == plain["rows"]["train"]
    assert m["rows"]["sequences"] == 2 * m["rows"]["train"]


def test_clear_errors_before_any_work(tmp_path, small_files, spec, tiny_backbone):
    with pytest.raises(KitError, match="not a local folder"):
        train([small_files.train], tmp_path / "o", TrainConfig(backbone="microsoft/deberta-v3-base"), spec)
    with pytest.raises(KitError, match="needs a CUDA GPU"):  # 4-bit runs on bitsandbytes' CPU backend; 8-bit not
        train([small_files.train], tmp_path / "o", TrainConfig(backbone=str(tiny_backbone), quantize="8bit"), spec)
    with pytest.raises(KitError, match="i/k"):
        train([small_files.train], tmp_path / "o", TrainConfig(backbone=str(tiny_backbone), fold="3"), spec)


def test_kfold_holdout_is_the_fold(tmp_path, small_files, spec, tiny_backbone):
    m = train([small_files.train], tmp_path / "out", quick_config(tiny_backbone, max_steps=1, fold="1/4"), spec).metrics
    assert m["rows"]["holdout"] == 30


def test_merge_writes_a_full_model_that_predicts_the_same(tmp_path, small_files, spec, tiny_backbone):
    from kaggle_kit.data.reading import read_test
    from kaggle_kit.inference.predict import predict_probs
    from kaggle_kit.model.model_dir import MERGED_DIR, load_trained

    out = tmp_path / "out"
    train([small_files.train], out, quick_config(tiny_backbone, max_steps=3, merge=True), spec)
    assert (out / MERGED_DIR / "config.json").exists()
    test = read_test(small_files.test, spec)
    merged = predict_probs(load_trained(out), test, spec, 4096, progress=False)  # uses merged/
    adapter = predict_probs(load_trained(out, backbone=str(tiny_backbone)), test, spec, 4096, progress=False)
    assert np.abs(merged - adapter).max() < 1e-5


def test_gradient_checkpointing_still_trains_lora(tmp_path, small_files, spec, tiny_backbone):
    """LoRA B matrices start at zero: non-zero after two steps means gradients flowed through checkpointed layers."""
    out = tmp_path / "gc"
    cfg = quick_config(tiny_backbone, max_steps=2, eval_steps=2, gradient_checkpointing=True)
    train([small_files.train], out, cfg, spec)
    with safe_open(str(out / ADAPTER_DIR / "adapter_model.safetensors"), "pt") as f:
        lora_b = [f.get_tensor(k) for k in f.keys() if "lora_B" in k]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)


def test_train_resume_and_overwrite_together(small_files, tiny_backbone, tmp_path):
    model = fake_model_dir(tmp_path / "model", tiny_backbone)  # refused before anything reads it
    line = one_line_error(run_cli("train", "--train", small_files.train, "--backbone", tiny_backbone, "--out", model,
                              "--resume", "--overwrite"), "pass one of them", code=2)
    assert "pass --overwrite to train again" not in line


def test_train_with_target_modules_that_match_nothing(tiny_backbone, small_files, tmp_path):
    line = one_line_error(run_cli("train", "--train", small_files.train, "--backbone", tiny_backbone, "--out",
                              tmp_path / "m", "--target-modules", "no_such_proj", "--max-steps", 1),
                          "--target-modules no_such_proj: no such layer")
    assert "query_proj" in line or "query" in line


def test_training_rows_of_one_class_are_refused(tiny_backbone, small_files, tmp_path):
    import pandas as pd

    frame = pd.read_csv(small_files.train, dtype=str, keep_default_na=False)
    frame["winner_model_a"], frame["winner_model_b"], frame["winner_tie"] = "1", "0", "0"
    frame.to_csv(tmp_path / "one.csv", index=False)
    one_line_error(run_cli("train", "--train", tmp_path / "one.csv", "--backbone", tiny_backbone, "--out",
                       tmp_path / "m", "--max-steps", 1), "is labelled winner_model_a: nothing to learn")
    assert not (tmp_path / "m" / "kaggle_kit_model.json").exists()
