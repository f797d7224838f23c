"""4-bit QLoRA on the encoder backbones kaggle-kit trains (DeBERTa-v3, BERT), on CPU through bitsandbytes' CPU
backend: the head LoRA trains whole (pooler + classifier) stays in full precision, so `train --quantize 4bit` trains
and `predict --quantize 4bit` loads, where both stopped on 'only Tensors of floating point dtype can require
gradients' (train with a traceback, predict blaming the model dir)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from kaggle_kit.model.backbone import quantize_on_cpu
from kaggle_kit.model.tiny_backbone import build_tiny_backbone

pytestmark = pytest.mark.skipif(not quantize_on_cpu("4bit"), reason="this bitsandbytes has no CPU 4-bit backend")


@pytest.fixture(scope="module", params=["deberta-v3", "bert"])
def encoder(request, tmp_path_factory):
    return build_tiny_backbone(tmp_path_factory.mktemp("bb") / f"tiny-{request.param}", arch=request.param)


def _valid(path, small_files):
    frame = pd.read_csv(path)
    probs = frame.drop(columns="id").to_numpy()
    assert list(frame["id"]) == list(pd.read_csv(small_files.sample_submission)["id"])
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    return probs


def test_the_head_stays_full_precision_and_the_body_is_4bit(encoder):
    import torch
    from bitsandbytes.nn import Linear4bit

    from kaggle_kit.model.backbone import HEAD_MODULES, Precision, load_backbone_model, model_type

    model, _ = load_backbone_model(encoder, Precision("fp32"), "4bit", num_labels=3)
    head = HEAD_MODULES[model_type(encoder)]
    named = dict(model.named_modules())
    quantised = [n for n, m in named.items() if isinstance(m, Linear4bit)]
    in_head = [n for n in named if set(n.split(".")) & set(head)]  # DeBERTa's pooler, BERT's bert.pooler
    assert quantised and in_head and not set(quantised) & set(in_head)
    for name, param in model.named_parameters():
        if set(name.split(".")) & set(head):
            assert param.dtype in (torch.float32, torch.float16, torch.bfloat16), (name, param.dtype)


def test_train_4bit_on_an_encoder_trains_and_predicts(encoder, small_files, tmp_path):
    out = tmp_path / "model"
    trained = run_cli("train", "--train", small_files.train, "--backbone", encoder, "--out", out, "--quantize", "4bit",
                      "--max-steps", "2", "--eval-steps", "2", "--max-len", "64")
    assert trained.exit_code == 0 and "Traceback" not in trained.output, trained.output
    predicted = run_cli("predict", "--test", small_files.test, "--model", out, "--out", tmp_path / "sub.csv")
    assert predicted.exit_code == 0, predicted.output
    _valid(tmp_path / "sub.csv", small_files)


def test_predict_4bit_on_a_full_precision_encoder_model(encoder, small_files, tmp_path):
    out = tmp_path / "model"
    trained = run_cli("train", "--train", small_files.train, "--backbone", encoder, "--out", out, "--max-steps", "2",
                      "--eval-steps", "2", "--max-len", "64")
    assert trained.exit_code == 0, trained.output
    full = run_cli("predict", "--test", small_files.test, "--model", out, "--out", tmp_path / "full.csv")
    four = run_cli("predict", "--test", small_files.test, "--model", out, "--out", tmp_path / "4bit.csv",
                   "--quantize", "4bit")
    assert full.exit_code == 0 and four.exit_code == 0, four.output
    assert "cannot load the model" not in four.output
    assert _valid(tmp_path / "4bit.csv", small_files).shape == _valid(tmp_path / "full.csv", small_files).shape
