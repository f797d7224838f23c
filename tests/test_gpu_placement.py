"""Two-GPU placement (inference/placement.py, model/split.py): the choice between a replica per GPU and fp16 layers
split over the GPUs, from faked GPU counts and memory (what torch.cuda would report); a split model predicts what
the whole one does; `plan infer --backbone-config` shows every placement with its memory."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import one_line_error, run_cli
from kaggle_kit.config.recipes import DEBERTA_V3_LARGE, GEMMA2_9B, LLAMA3_8B
from kaggle_kit.errors import KitError, UsageProblem
from kaggle_kit.inference.placement import choose_placement, placement_options, split_for
from kaggle_kit.model.backbone import Precision, load_backbone_model
from kaggle_kit.model.batching import Batching, batching_for, predict_logits
from kaggle_kit.model.split import split_device_map, split_model
from kaggle_kit.model.tiny_backbone import build_tiny_backbone

T4 = 14.5  # GiB per T4 as torch reports it (memory_plan.GPU_MEMORY_GIB)


@pytest.mark.parametrize(("shape", "chosen"), [(GEMMA2_9B, "split"), (LLAMA3_8B, "split"),
                                               (DEBERTA_V3_LARGE, "replica")])
def test_a_model_one_t4_cannot_hold_in_fp16_is_split_over_two(shape, chosen):
    options = {o.key: o for o in placement_options(shape, 2, T4, 2048, 16384)}
    assert set(options) == {"replica", "replica-4bit", "split"}
    assert choose_placement(list(options.values())).key == chosen
    if chosen == "split":  # ~18 GB of fp16 weights: not on one T4, half on each, 4-bit fits too
        assert not options["replica"].fits and options["split"].fits and options["replica-4bit"].fits
        assert options["split"].per_gpu_gib[0] < options["replica"].per_gpu_gib[0]
    one_gpu = {o.key for o in placement_options(shape, 1, T4, 2048, 16384)}
    assert "split" not in one_gpu


def test_nothing_fits_says_so():
    gemma27 = {**GEMMA2_9B, "hidden_size": 4608, "num_hidden_layers": 46, "intermediate_size": 36864,
               "num_attention_heads": 32, "head_dim": 128}
    assert choose_placement(placement_options(gemma27, 2, T4, 2048, 16384)) is None


def test_predict_splits_only_where_it_must_and_can():
    two_t4s, one_t4 = (2, T4), (1, T4)
    memory = split_for("auto", GEMMA2_9B, None, 2048, 16384, two_t4s)
    assert set(memory) == {0, 1} and all(0 < m < T4 * 2**30 for m in memory.values())
    assert split_for("auto", GEMMA2_9B, "4bit", 2048, 16384, two_t4s) is None  # --quantize asks for replicas
    assert split_for("auto", GEMMA2_9B, None, 2048, 16384, one_t4) is None
    assert split_for("auto", DEBERTA_V3_LARGE, None, 2048, 16384, two_t4s) is None  # one GPU holds it
    assert split_for("replica", GEMMA2_9B, None, 2048, 16384, two_t4s) is None
    assert split_for("split", DEBERTA_V3_LARGE, None, 2048, 16384, two_t4s) is not None  # asked for
    with pytest.raises(UsageProblem, match="needs two or more GPUs.*1 GPU"):
        split_for("split", GEMMA2_9B, None, 2048, 16384, one_t4)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    backbone = build_tiny_backbone(tmp_path_factory.mktemp("llama") / "llama", arch="llama", layers=4)
    model, tokenizer = load_backbone_model(backbone, Precision("fp32"), training=False)
    return model.eval(), tokenizer


def test_a_split_model_predicts_what_the_whole_one_does(tiny_llama):
    model, tokenizer = tiny_llama
    rng = np.random.default_rng(0)
    rows = [rng.integers(4, 700, rng.integers(10, 200)).tolist() for _ in range(16)]
    whole_padded = predict_logits(model, tokenizer.pad_token_id, rows, 2048, 3, False, batching=Batching())
    whole_packed = predict_logits(model, tokenizer.pad_token_id, rows, 2048, 3, False, batching=batching_for(model))
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    halves = {0: int(weights * 0.75), 1: int(weights * 0.75)}  # neither device holds it all
    device_map = split_device_map(model, halves)
    assert set(device_map.values()) == {0, 1}
    layers = [d for name, d in device_map.items() if ".layers." in name]
    assert layers == sorted(layers)  # whole layers, in order: the first GPU's, then the second's
    with pytest.raises(KitError, match="do not fit 2 GPU"):
        split_device_map(model, {0: weights // 4, 1: weights // 4})
    split, _ = split_model(model, halves, device_of=lambda device: "cpu")  # the pieces on this CPU
    assert split.hf_device_map == {name: "cpu" for name in device_map}
    padded = predict_logits(split, tokenizer.pad_token_id, rows, 2048, 3, False, batching=Batching())
    packed = predict_logits(split, tokenizer.pad_token_id, rows, 2048, 3, False, batching=batching_for(split))
    assert np.abs(padded - whole_padded).max() < 1e-5 and np.abs(packed - whole_packed).max() < 1e-5


def test_plan_infer_shows_both_placements_with_their_memory(tmp_path):
    bench = tmp_path / "bench.json"  # the fields plan_infer.read_measurement takes from `bench predict --json`
    bench.write_text(json.dumps({"max_len": 2048, "length_quantiles": [100, 2048], "ours": {"tokens_per_s": 5000.0}}))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(GEMMA2_9B))
    result = run_cli("plan", "infer", "--from", bench, "--backbone-config", config, "--rows", 25000, "--limit", "9h")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    split = next(line for line in lines if "fp16 layers split over 2 GPUs" in line)
    four_bit = next(line for line in lines if "4-bit replica per GPU" in line)
    assert "CHOSEN" in split and "GiB" in split and "fits" in four_bit
    as_json = json.loads(run_cli("plan", "infer", "--from", bench, "--backbone-config", config, "--rows", 25000,
                                 "--limit", "9h", "--json").stdout)
    assert as_json["placement"]["chosen"] == "split"
    config.write_text(json.dumps({"hidden_size": "big"}))
    one_line_error(run_cli("plan", "infer", "--from", bench, "--backbone-config", config, "--rows", 25000,
                           "--limit", "9h"), "has no model_type", code=2)

