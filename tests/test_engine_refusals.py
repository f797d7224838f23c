"""A refusal of a sharded-training engine names the engine as the user asked for it: `--deepspeed zero2` (or a
DeepSpeed JSON file of ZeRO stage 0-2) is never called ZeRO-3, and `--deepspeed` never --fsdp."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from kaggle_kit.errors import KitError
from kaggle_kit.model.tiny_backbone import build_tiny_backbone
from kaggle_kit.training.sharding import check_sharded_training


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return build_tiny_backbone(tmp_path_factory.mktemp("bb") / "tiny-llama", arch="llama")


def _deepspeed_values(tmp_path) -> dict[str, int]:
    """Each way to ask for DeepSpeed, with the ZeRO stage it is."""
    values = {"zero2": 2, "zero3": 3}
    for stage in range(4):
        path = tmp_path / f"ds-stage{stage}.json"
        path.write_text(json.dumps({"zero_optimization": {"stage": stage}}))
        values[str(path)] = stage
    return values


@pytest.mark.parametrize("quantize", [None, "4bit", "8bit"])
@pytest.mark.parametrize("cuda", [False, True])
def test_deepspeed_refusals_name_the_stage_asked_for(tmp_path, llama, quantize, cuda):
    for value, stage in _deepspeed_values(tmp_path).items():
        try:
            check_sharded_training(None, value, quantize, llama, cuda=cuda)
        except KitError as exc:
            assert f"--deepspeed {value}" in exc.message, exc.message
            assert "--fsdp" not in exc.message, exc.message
            for other in {0, 1, 2, 3} - {stage}:
                assert f"ZeRO-{other}" not in exc.message, (value, exc.message)
        else:
            assert cuda and (stage < 3 or quantize is None)


@pytest.mark.parametrize("quantize", [None, "4bit", "8bit"])
@pytest.mark.parametrize("mode", ["full_shard", "shard_grad_op"])
def test_fsdp_refusals_name_fsdp(llama, quantize, mode):
    with pytest.raises(KitError) as refused:
        check_sharded_training(mode, None, quantize, llama, cuda=False)
    assert f"--fsdp {mode}" in refused.value.message and "--deepspeed" not in refused.value.message
    assert "ZeRO" not in refused.value.message


def test_train_deepspeed_zero2_on_cpu_says_zero2(tmp_path, small_files, llama):
    for value in ("zero2", "zero3"):
        result = run_cli("train", "--train", small_files.train, "--backbone", llama, "--out", tmp_path / "m",
                         "--deepspeed", value)
        assert result.exit_code == 1 and "needs CUDA GPUs" in result.output, result.output
        assert f"--deepspeed {value} " in result.output
        assert value == "zero3" or "ZeRO-3" not in result.output, result.output
        assert not (tmp_path / "m").exists()
