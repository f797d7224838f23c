"""`[train] fsdp` / `[train] deepspeed`: the arguments handed to the real TrainingArguments / accelerate plugin, and
the one-line refusals (no CUDA, combinations the libraries refuse or silently do otherwise). No GPU here: the CUDA
side of the decision is given as `cuda=True`, never pretended to run."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kaggle_kit.cli import main
from kaggle_kit.errors import KitError, UsageProblem
from kaggle_kit.model.tiny_backbone import build_tiny_backbone
from kaggle_kit.training.sharding import check_sharded_training, deepspeed_config, sharded_training_args


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return build_tiny_backbone(tmp_path_factory.mktemp("bb") / "tiny-llama", arch="llama")


@pytest.mark.parametrize("mode, reshard", [("full_shard", True), ("shard_grad_op", False)])
def test_fsdp_becomes_accelerates_fsdp2_plugin_wrapping_decoder_layers(llama, tmp_path, mode, reshard):
    from accelerate.utils import FullyShardedDataParallelPlugin
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, **sharded_training_args(mode, None, llama))
    plugin = args.fsdp_plugin_args  # what Trainer passes to accelerate's FullyShardedDataParallelPlugin
    assert plugin["fsdp_version"] == 2 and plugin["reshard_after_forward"] is reshard
    assert plugin["auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert plugin["transformer_cls_names_to_wrap"] == "LlamaDecoderLayer"
    built = FullyShardedDataParallelPlugin(**plugin)  # the real plugin accepts them
    assert built.fsdp_version == 2 and built.transformer_cls_names_to_wrap == ["LlamaDecoderLayer"]


def test_deepspeed_presets_leave_shared_values_to_the_trainer(tmp_path, llama):
    zero3 = sharded_training_args(None, "zero3", llama)["deepspeed"]
    assert zero3["zero_optimization"]["stage"] == 3
    assert zero3["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True  # whole weights saved
    assert zero3["train_micro_batch_size_per_gpu"] == "auto" and zero3["gradient_accumulation_steps"] == "auto"
    assert deepspeed_config("zero2")["zero_optimization"]["stage"] == 2
    own = tmp_path / "ds.json"
    own.write_text(json.dumps({"zero_optimization": {"stage": 3, "offload_param": {"device": "cpu"}}}))
    assert deepspeed_config(str(own)) == str(own)  # the user's file goes to the Trainer as it is
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(KitError, match="cannot read it as a DeepSpeed JSON"):
        deepspeed_config(str(tmp_path / "bad.json"))
    assert sharded_training_args(None, None, llama) == {}


@pytest.mark.parametrize("fsdp, deepspeed, quantize, message", [
    ("full_shard", None, "4bit", "would not shard the 4-bit weights"),
    (None, "zero3", "4bit", "would not shard the 4-bit weights"),
    ("shard_grad_op", None, "8bit", "cannot shard 8-bit"),
    ("full_shard", "zero2", None, "accelerate runs one engine"),
])
def test_combinations_the_libraries_refuse(llama, fsdp, deepspeed, quantize, message):
    with pytest.raises(UsageProblem, match=message):
        check_sharded_training(fsdp, deepspeed, quantize, llama, cuda=True)


def test_allowed_with_cuda_and_deepspeed_needs_its_extra(llama, tiny_backbone):
    check_sharded_training("full_shard", None, None, llama, cuda=True)
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        with pytest.raises(KitError, match=r"kaggle-kit\[deepspeed\]"):
            check_sharded_training(None, "zero2", "4bit", llama, cuda=True)  # zero2 + 4-bit: allowed (LMSYS 1st)
    with pytest.raises(KitError, match="names no layer class to wrap"):
        check_sharded_training("full_shard", None, None, tiny_backbone, cuda=True)  # DeBERTa: an encoder


@pytest.mark.parametrize("flag", [["--set", "train.fsdp=full_shard"], ["--set", "train.deepspeed=zero3"]])
def test_train_with_fsdp_or_deepspeed_on_cpu_is_one_line(tmp_path, small_files, llama, flag):
    """On this CPU the Trainer would silently run DDP: refused before the model loads, one line, no traceback."""
    result = CliRunner().invoke(main, ["train", "--train", str(small_files.train), "--backbone", str(llama),
                                       "--out", str(tmp_path / "m"), *flag])
    assert result.exit_code == 1 and "needs CUDA GPUs" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "m").exists()


QWEN2_72B = {"model_type": "qwen2", "hidden_size": 8192, "num_hidden_layers": 80, "intermediate_size": 29568,
             "vocab_size": 152064, "num_attention_heads": 64, "num_key_value_heads": 8}  # its config.json's shape


def test_plan_divides_what_zero3_shards_over_every_gpu_of_every_node(tmp_path):
    from kaggle_kit.training.sharded_plan import plan_sharded

    one = plan_sharded("llama3-8b-qlora", "a100x8", 1, shape=QWEN2_72B)
    two = plan_sharded("llama3-8b-qlora", "h100x8", 2, shape=QWEN2_72B)
    assert (one.world_size, two.world_size) == (8, 16) and one.params_b == pytest.approx(71.5, abs=0.5)
    assert two.weights_gib == pytest.approx(one.weights_gib / 2, rel=0.01)  # 4 B x 71.5B / 16 GPUs
    assert two.activations_gib == one.activations_gib and two.gathered_gib == one.gathered_gib  # not divided
    assert one.fits and two.train_gib < one.train_gib
    zero2 = plan_sharded("llama3-8b-qlora", "a100x8", 2, engine="zero2", shape=QWEN2_72B)
    assert zero2.quantize == "4bit" and zero2.weights_gib > one.weights_gib  # weights whole on every GPU
    crowded = plan_sharded("llama3-8b-qlora", "a100x8", 1, batch_size=8, max_len=2048, shape=QWEN2_72B)
    assert not crowded.fits and "does NOT fit" in crowded.summary()
    (tmp_path / "config.json").write_text(json.dumps(QWEN2_72B))
    result = CliRunner().invoke(main, ["plan", "train", "--recipe", "llama3-8b-qlora", "--gpus", "a100x8",
                                       "--nodes", "2", "--backbone-config", str(tmp_path / "config.json"), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["world_size"] == 16
    refused = CliRunner().invoke(main, ["plan", "train", "--recipe", "llama3-8b-qlora", "--nodes", "2"])
    assert refused.exit_code == 2 and "a100x8" in refused.output


def test_multi_gpu_check_skips_in_one_line_below_two_gpus(tmp_path, capsys):
    """This machine has no CUDA GPU: the multi-GPU part of `make test-gpu` says so, exits 0, writes no report."""
    from kaggle_kit.evaluation.gpu_check_multi import main as gpu_check_multi

    assert gpu_check_multi(["--out", str(tmp_path / "report.json")]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("gpu-check-multi: 0 CUDA GPU(s) visible") and "skipped" in out and "\n" not in out
    assert not (tmp_path / "report.json").exists()
