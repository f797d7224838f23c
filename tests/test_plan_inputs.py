"""`plan train` plans only what can run: a --backbone-config that is not a backbone's config.json (malformed, empty,
sizes missing, negative, fractional, absurd) is one line naming what is wrong; a flag that does not apply to the
chosen GPUs is refused, not ignored; and a sharded plan names train flags that `train` itself accepts."""

from __future__ import annotations

import json

import pytest
from transformers import AutoConfig

from conftest import one_line_error, run_cli
from kaggle_kit.config.recipes import RECIPES
from kaggle_kit.errors import KitError
from kaggle_kit.training.sharded_plan import plan_sharded
from kaggle_kit.training.sharding import check_sharded_training

LLAMA = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
             intermediate_size=14336, vocab_size=128256, model_type="llama")
GPUS = ("t4", "t4x2", "l4", "a100x8", "h100x8")


def _plan(tmp_path, content, gpus="t4", recipe="llama3-8b-qlora", *extra):
    path = tmp_path / "config.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return run_cli("plan", "train", "--recipe", recipe, "--gpus", gpus, "--backbone-config", path, *extra)


@pytest.mark.parametrize("gpus", ["t4", "h100x8"])
@pytest.mark.parametrize(("content", "message"), [
    ("{", "not JSON"), ("", "not JSON"), ("[1, 2]", "not an object"), ('"llama"', "not an object"),
    ("null", "not an object"), (b"\xff\xfe{", "cannot read it"), ({}, "no model_type"),
    ({**LLAMA, "model_type": 7}, "no model_type"),
])
def test_unreadable_or_empty_configs_are_one_line(tmp_path, gpus, content, message):
    one_line_error(_plan(tmp_path, content, gpus), message, code=2)


@pytest.mark.parametrize("key", ["hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"])
def test_each_required_size_must_be_there(tmp_path, key):
    shape = {k: v for k, v in LLAMA.items() if k != key}
    one_line_error(_plan(tmp_path, shape), f"has no {key}", code=2)


@pytest.mark.parametrize("gpus", ["t4x2", "a100x8"])
@pytest.mark.parametrize("key", ["hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
                                 "intermediate_size", "num_key_value_heads", "head_dim"])
@pytest.mark.parametrize("value", [-4096, 0, 4096.5, "4096", True, None, 10**9])
def test_sizes_are_positive_whole_numbers_of_sane_size(tmp_path, gpus, key, value):
    if value is None and key in ("intermediate_size", "num_key_value_heads", "head_dim"):
        pytest.skip("optional sizes may be null (transformers' own default)")
    result = _plan(tmp_path, {**LLAMA, key: value}, gpus)
    one_line_error(result, key, code=2)


def test_nan_and_infinity_in_json_are_refused(tmp_path):
    for literal in ("NaN", "Infinity", "-Infinity", "1e400"):
        text = json.dumps(LLAMA).replace('"hidden_size": 4096', f'"hidden_size": {literal}')
        one_line_error(_plan(tmp_path, text), "hidden_size", code=2)


@pytest.mark.parametrize(("change", "message"), [
    ({"num_key_value_heads": 5}, "must divide"),
    ({"num_key_value_heads": 64}, "must divide"),
    ({"head_dim": None, "num_attention_heads": 64, "hidden_size": 32}, "more than hidden_size"),
    ({"hidden_size": 65536, "num_hidden_layers": 1024, "intermediate_size": 1_048_576, "head_dim": 4096},
     "T parameters"),
])
def test_inconsistent_or_absurd_shapes_are_refused(tmp_path, change, message):
    one_line_error(_plan(tmp_path, {**LLAMA, **change}, "h100x8"), message, code=2)


def test_a_recipe_that_freezes_every_layer_of_the_backbone_is_refused(tmp_path):
    """gemma2-9b-qlora freezes 16 layers: a 12-layer backbone would train nothing (a negative layer count)."""
    small = {**LLAMA, "num_hidden_layers": 12}
    for gpus in ("t4x2", "h100x8"):
        one_line_error(_plan(tmp_path, small, gpus, "gemma2-9b-qlora"), "freezes 16 layers", code=2)


@pytest.mark.parametrize("gpus", GPUS)
def test_a_real_config_plans_as_the_recipes_own_shape(tmp_path, gpus):
    with_file = _plan(tmp_path, LLAMA, gpus, "llama3-8b-qlora", "--json")
    builtin = run_cli("plan", "train", "--recipe", "llama3-8b-qlora", "--gpus", gpus, "--json")
    assert with_file.exit_code == 0 and builtin.exit_code == 0, with_file.output
    a, b = json.loads(with_file.output), json.loads(builtin.output)
    a.pop("recipe"), b.pop("recipe")
    assert a == b


@pytest.mark.parametrize("gpus", ["t4", "t4x2", "l4"])
@pytest.mark.parametrize("engine", ["zero2", "zero3"])
def test_shard_on_one_machine_gpus_is_refused_not_ignored(gpus, engine):
    result = run_cli("plan", "train", "--recipe", "deberta-v3-base", "--gpus", gpus, "--shard", engine)
    one_line_error(result, "--shard", code=2)


@pytest.mark.parametrize("gpus", ["a100x8", "h100x8"])
def test_shard_applies_on_clusters(gpus):
    for engine in ("zero2", "zero3"):
        result = run_cli("plan", "train", "--recipe", "deberta-v3-base", "--gpus", gpus, "--shard", engine, "--json")
        assert result.exit_code == 0 and json.loads(result.output)["engine"] == engine


@pytest.mark.parametrize("recipe", sorted(RECIPES))
@pytest.mark.parametrize("engine", ["zero2", "zero3"])
def test_a_sharded_plan_names_flags_train_accepts(tmp_path, recipe, engine):
    """The plan's train flags pass train's own refusals (4-bit under FSDP / ZeRO-3, FSDP on an encoder) for the
    recipe's backbone, as if on CUDA GPUs; only the optional deepspeed package may be missing here."""
    plan = plan_sharded(recipe, "h100x8", 2, engine)
    flags = plan.train_flags.split()
    assert plan.train_flags in plan.summary()
    given = dict(zip(flags[::2], flags[1::2]))
    assert given.get("--quantize") == plan.quantize
    backbone = tmp_path / "backbone"
    AutoConfig.for_model(RECIPES[recipe].shape["model_type"]).save_pretrained(backbone)
    try:
        check_sharded_training(given.get("--fsdp"), given.get("--deepspeed"), given.get("--quantize"), backbone,
                               cuda=True)
    except KitError as exc:
        assert "needs the deepspeed package" in exc.message, exc.message


@pytest.mark.parametrize(("flag", "value"), [("--batch-size", "100000"), ("--max-len", "100000000"),
                                             ("--batch-size", "0"), ("--max-len", "8")])
def test_absurd_batch_shapes_are_refused(flag, value):
    for gpus in ("t4", "h100x8"):
        result = run_cli("plan", "train", "--recipe", "llama3-8b-qlora", "--gpus", gpus, flag, value)
        one_line_error(result, flag, code=2)
