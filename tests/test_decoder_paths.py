"""Decoder paths a GPU run depends on, shown on a tiny Llama without a pad token (Llama-3 ships none): no K/V cache
in training, evaluation, the holdout pass or predict; pad = eos; a non-finite row gets the class prior; the
saved merged model wins; frozen inference weights load in the compute dtype."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pandas as pd
import pytest
import torch

from conftest import quick_config
from kaggle_kit.config import PredictConfig
from kaggle_kit.inference.run import predict_to_submission
from kaggle_kit.model.backbone import Precision, load_backbone_model
from kaggle_kit.model.batching import attention_square_budget, token_budget_batches
from kaggle_kit.model.model_dir import ADAPTER_DIR, load_trained
from kaggle_kit.model.tiny_backbone import build_tiny_backbone
from kaggle_kit.submission import validate_file
from kaggle_kit.training.train import train


@contextmanager
def every_forward(hook):
    """A forward hook on every module of every model (the real forward passes, only observed or edited)."""
    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def kv_caches_seen():
    seen: list[str] = []

    def hook(module, args, output):
        if getattr(output, "past_key_values", None) is not None:
            seen.append(type(module).__name__)

    with every_forward(hook):
        yield seen


@pytest.fixture(scope="module")
def padless_llama(tmp_path_factory):
    return build_tiny_backbone(tmp_path_factory.mktemp("llama") / "no-pad", arch="llama", pad_token=False)


@pytest.fixture(scope="module")
def llama_run(tmp_path_factory, small_files, spec, padless_llama):
    """Trained once (train, eval every 2 steps, holdout pass) with every forward watched for a K/V cache."""
    out = tmp_path_factory.mktemp("llama-model") / "m"
    with kv_caches_seen() as seen:
        result = train([small_files.train], out, quick_config(padless_llama, max_steps=4, eval_steps=2, merge=True),
                       spec)
    return result, seen


def test_padless_decoder_pads_with_eos(padless_llama, llama_run):
    config = json.loads((padless_llama / "config.json").read_text())
    assert config.get("pad_token_id") is None  # the Llama-3 situation the old tiny decoders never had
    result, _ = llama_run
    assert result.metrics["holdout"]["rows"] > 0 and (result.out_dir / ADAPTER_DIR).is_dir()
    trained = load_trained(result.out_dir)
    assert trained.tokenizer.pad_token_id == trained.tokenizer.eos_token_id == trained.model.config.pad_token_id


def test_no_kv_cache_in_training_evaluation_and_holdout(llama_run):
    _, seen = llama_run
    assert seen == []


def test_predict_builds_no_kv_cache_and_pads_with_eos(llama_run, small_files, spec, tmp_path):
    result, _ = llama_run
    with kv_caches_seen() as seen:
        done = predict_to_submission([result.out_dir], small_files.test, tmp_path / "sub.csv", spec,
                                     PredictConfig(tta="swap"))
    assert seen == [] and done["rows"] == 24 and done["nonfinite_rows"] == 0
    assert validate_file(tmp_path / "sub.csv", pd.read_csv(small_files.test)["id"].astype(str).tolist(), spec).ok


def test_a_non_finite_row_gets_the_class_prior_and_is_counted(llama_run, small_files, spec, tmp_path):
    """fp16 overflow on one long row: that row gets the prior, the rest are the model's, and the run says so."""
    result, _ = llama_run
    poisoned: list[int] = []

    def overflow_first_row(module, args, output):  # the score head: per token (padded) or per pooled row (packed)
        if isinstance(module, torch.nn.Linear) and module.out_features == spec.num_labels and not poisoned:
            output[0] = float("nan")
            poisoned.append(1)
        return output

    lines: list[str] = []
    with every_forward(overflow_first_row):
        done = predict_to_submission([result.out_dir], small_files.test, tmp_path / "sub.csv", spec, PredictConfig(),
                                     echo=lines.append)
    assert poisoned and done["nonfinite_rows"] == 1 and "1 row(s) had non-finite" in lines[-1]
    frame = pd.read_csv(tmp_path / "sub.csv")
    prior = result.metrics["class_prior"]
    as_prior = (frame[list(spec.label_columns)].sub(prior).abs().max(axis=1) < 1e-6)
    assert as_prior.sum() == 1


def test_saved_merged_model_is_preferred_over_backbone_and_adapter(llama_run, tmp_path):
    """A model dir with merged/ needs neither the backbone nor the adapter: the kernel passes --backbone anyway."""
    import shutil

    result, _ = llama_run
    copy = tmp_path / "m"
    shutil.copytree(result.out_dir, copy)
    shutil.rmtree(copy / ADAPTER_DIR)
    trained = load_trained(copy, backbone=str(tmp_path / "no-such-backbone"))
    assert trained.model.config.use_cache is False


def test_frozen_inference_weights_load_in_the_compute_dtype(padless_llama):
    model, _ = load_backbone_model(padless_llama, Precision("bf16"), training=False)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    model, _ = load_backbone_model(padless_llama, Precision("bf16"))  # training: fp32 master weights under autocast
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_eager_attention_bounds_rows_by_length_squared(tmp_path):
    gemma = build_tiny_backbone(tmp_path / "gemma2", arch="gemma2", heads=16)  # Gemma-2-9B's head count
    model, _ = load_backbone_model(gemma, Precision("fp32"), training=False)
    square = attention_square_budget(model)
    assert square is not None and model.config.use_cache is False
    lengths = [2048] * 16 + [256] * 64
    batches = token_budget_batches(lengths, 16384, square)
    assert all(len(b) * max(lengths[i] for i in b) ** 2 <= square or len(b) == 1 for b in batches)
    # 16 heads x 2048^2 x 4 bytes is 256 MiB per row: 4 rows a batch, where the token budget alone allows 8
    assert max(len(b) for b in batches if lengths[b[0]] == 2048) == 4
    assert token_budget_batches(lengths, 16384) == token_budget_batches(lengths, 16384, None)


def test_sdpa_decoders_keep_the_linear_token_budget(padless_llama):
    model, _ = load_backbone_model(padless_llama, Precision("fp32"), training=False)
    assert model.config._attn_implementation != "eager" and attention_square_budget(model) is None
