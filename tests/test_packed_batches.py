"""Packed batches (model/packing.py, model/batching.py): on tiny decoders packed and padded probabilities agree and
packing computes almost no padding; predict, the budgeted path and pseudo-label use the same batching; encoders and
transformers without packed-sequence masks fall back (auto) or are refused (packed) in one line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import one_line_error, quick_config, run_cli
from kaggle_kit.data.encode import Encoder, EncodingSpec
from kaggle_kit.data.reading import read_train
from kaggle_kit.errors import UsageProblem
from kaggle_kit.metrics import softmax
from kaggle_kit.model.backbone import Precision, load_backbone_model
from kaggle_kit.model.batching import Batching, BatchStats, batching_for, check_batching, predict_logits
from kaggle_kit.model.packing import classifier_parts, pack_rows, packed_inputs
from kaggle_kit.model.tiny_backbone import build_tiny_backbone
from kaggle_kit.training.train import train

DECODERS = ("llama", "gemma2", "qwen2", "mistral")


@pytest.fixture(scope="module")
def decoder_rows(small_files, spec, tmp_path_factory):
    """Each tiny decoder with the sample rows encoded for it (up to 512 tokens: past Gemma-2's 128-token window)."""
    made = {}

    def make(arch: str):
        if arch not in made:
            backbone = build_tiny_backbone(tmp_path_factory.mktemp(arch) / arch, arch=arch)
            model, tokenizer = load_backbone_model(backbone, Precision("fp32"), training=False)
            encoded = Encoder(tokenizer, EncodingSpec(512, "decoder")).encode(read_train(small_files.train, spec))
            made[arch] = (model.eval(), tokenizer, encoded)
        return made[arch]

    return make


@pytest.mark.parametrize("arch", DECODERS)
def test_packed_probabilities_match_padded_with_almost_no_padding(decoder_rows, arch):
    model, tokenizer, encoded = decoder_rows(arch)
    padded, packed = BatchStats(), BatchStats()
    how = batching_for(model, "auto")
    assert how.packed
    a = predict_logits(model, tokenizer.pad_token_id, encoded, 4096, 3, False, batching=Batching(), stats=padded)
    b = predict_logits(model, tokenizer.pad_token_id, encoded, 4096, 3, False, batching=how, stats=packed)
    lengths = [len(e) for e in encoded]
    assert len(pack_rows(list(range(len(encoded))), lengths, how.capacity)) < len(encoded) / 2  # rows share packs
    assert np.abs(softmax(a) - softmax(b)).max() < 1e-4
    assert packed.padding_fraction < 0.01 < padded.padding_fraction
    assert packed.tokens == padded.tokens == sum(lengths)


def test_packed_rows_attend_to_each_other_without_the_position_ids_path(decoder_rows):
    """The control: the same packs with an all-ones attention mask (masking_utils then looks for no packed sequences)
    let rows see each other, so the agreement above is the block-diagonal mask's doing."""
    model, tokenizer, encoded = decoder_rows("llama")
    rows = encoded[:6]
    decoder, _ = classifier_parts(model)
    inputs, where = packed_inputs(rows, tokenizer.pad_token_id, capacity=10_000)
    assert len({p for p, _ in where}) == 1  # one pack
    with torch.inference_mode():
        apart = decoder(**inputs, attention_mask=None, use_cache=False).last_hidden_state
        mixed = decoder(**inputs, attention_mask=torch.ones_like(inputs["input_ids"]),
                        use_cache=False).last_hidden_state
    last = where[-1][1] + len(rows[-1]) - 1
    assert (apart[0, last] - mixed[0, last]).abs().max() > 1e-2


def test_transformers_without_packed_masks_pads_or_refuses(monkeypatch):
    """transformers 4.53 (setup.cfg's floor) has no masking_utils.find_packed_sequence_indices."""
    from transformers import masking_utils

    assert check_batching("auto", ["llama"]) is None
    monkeypatch.delattr(masking_utils, "find_packed_sequence_indices")
    assert "4.54+ does" in check_batching("auto", ["llama", "gemma2"])
    with pytest.raises(UsageProblem, match="builds no block-diagonal mask"):
        check_batching("packed", ["llama"])
    assert check_batching("padded", ["llama"]) is None


@pytest.fixture(scope="module")
def llama_model(tmp_path_factory, small_files, spec):
    backbone = build_tiny_backbone(tmp_path_factory.mktemp("bb") / "llama", arch="llama")
    return train([small_files.train], tmp_path_factory.mktemp("llama") / "m",
                 quick_config(backbone, max_steps=2, eval_steps=2, max_len=512), spec).out_dir


def _predict(model_dir, test, out, *flags):
    result = run_cli("predict", "--test", test, "--model", model_dir, "--out", out, "--probabilities",
                     out.with_suffix(".probs.csv"), "--json", *flags)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), pd.read_csv(out.with_suffix(".probs.csv")).iloc[:, 1:].to_numpy()


def test_predict_packs_by_default_and_reports_it(llama_model, small_files, tmp_path):
    auto, p_auto = _predict(llama_model, small_files.test, tmp_path / "auto.csv", "--tta", "swap")
    padded, p_padded = _predict(llama_model, small_files.test, tmp_path / "padded.csv", "--tta", "swap",
                                "--batching", "padded")
    assert auto["batching"] == "packed" and padded["batching"] == "padded"
    assert auto["models"] == padded["models"] == 1
    assert auto["padding_fraction"] < min(0.01, padded["padding_fraction"])
    assert np.abs(p_auto - p_padded).max() < 1e-4


def test_budgeted_and_pseudo_label_paths_pack_too(llama_model, small_files, tmp_path):
    budgeted, _ = _predict(llama_model, small_files.test, tmp_path / "b.csv", "--time-budget", "10h")
    assert budgeted["batching"] == "packed" and budgeted["padding_fraction"] < 0.01
    assert budgeted["measured"]["batching"] == "packed" and budgeted["models"] == 1
    result = run_cli("pseudo-label", "--model", llama_model, "--input", small_files.test, "--out",
                     tmp_path / "pl.csv", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["batching"] == "packed"


@pytest.fixture(scope="module")
def deberta_model(tmp_path_factory, small_files, spec, tiny_backbone):
    return train([small_files.train], tmp_path_factory.mktemp("deberta") / "m",
                 quick_config(tiny_backbone, max_steps=2, eval_steps=2), spec).out_dir


def test_an_encoder_pads_said_once_and_refuses_packed_before_loading(deberta_model, small_files, tmp_path):
    result = run_cli("predict", "--test", small_files.test, "--model", deberta_model, "--out", tmp_path / "s.csv",
                     "--tta", "swap")
    assert result.exit_code == 0, result.output
    assert result.output.count("padded batches: deberta-v2 models have no packed-sequence path") == 1
    refused = run_cli("predict", "--test", small_files.test, "--model", deberta_model, "--out", tmp_path / "t.csv",
                      "--batching", "packed")
    one_line_error(refused, "--batching packed: deberta-v2 models have no packed-sequence path", code=2)
    assert not (tmp_path / "t.csv").exists()
