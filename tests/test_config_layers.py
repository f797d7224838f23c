"""The configuration as layers of plain data: defaults < recipe < kaggle-kit.toml < --set < flags, each key with its
source; `kaggle-kit config` shows it as train uses it; recipes as TOML files; short grouped help with hidden aliases."""

import dataclasses
import json
import math
import sys

import click
import pytest

from conftest import one_line_error, run_cli
from kaggle_kit.cli import main
from kaggle_kit.config import SECTIONS, TrainConfig, config_from_dict, field_types
from kaggle_kit.config.layers import FLAG, SET, Layer, embedded, from_embedded, parse_set, resolve, set_layer
from kaggle_kit.config.recipes import RECIPES, get_recipe, recipe_text
from kaggle_kit.errors import KitError, UsageProblem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def shown(*args):
    result = run_cli("config", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ---- --set, and where each key came from
def test_set_shows_its_value_coming_from_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = shown("--set", "train.learning_rate=2e-4")
    assert data["train"]["learning_rate"] == 2e-4 and data["sources"]["train.learning_rate"] == "--set"
    assert data["sources"]["train.epochs"] == "default"
    text = run_cli("config", "--set", "train.learning_rate=2e-4").stdout
    line = next(s for s in text.splitlines() if s.startswith("learning_rate"))
    assert line.split("#")[0].split("=")[1].strip() == "0.0002" and line.endswith("# --set")


def test_each_layer_outranks_the_one_below(tmp_path, monkeypatch):
    """lr: recipe 3e-4 < toml 5e-4 < --set 6e-4 < --lr 7e-4; every other key from the highest layer that sets it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text('[train]\nrecipe = "cpu-smoke"\nlearning_rate = 5e-4\nseed = 3\n')
    data = shown()
    assert (data["train"]["learning_rate"], data["sources"]["train.learning_rate"]) == (5e-4, "kaggle-kit.toml")
    assert (data["train"]["max_len"], data["sources"]["train.max_len"]) == (256, "recipe cpu-smoke")
    assert (data["train"]["valid_frac"], data["sources"]["train.valid_frac"]) == (0.05, "default")
    data = shown("--set", "train.learning_rate=6e-4", "--set", "train.seed=4")
    assert (data["train"]["learning_rate"], data["sources"]["train.learning_rate"]) == (6e-4, "--set")
    assert data["train"]["seed"] == 4
    data = shown("--set", "train.learning_rate=6e-4", "--lr", "7e-4")  # --lr is a hidden alias of config: a --set
    assert data["train"]["learning_rate"] == 7e-4
    data = shown("--set", "train.max_len=300", "--recipe", "deberta-v3-base")  # a first-class flag, over the toml
    assert data["train"]["recipe"] == "deberta-v3-base" and data["sources"]["train.recipe"] == "flag"
    assert data["sources"]["train.max_len"] == "--set" and data["recipe"]["recipe"] == "deberta-v3-base"
    assert data["train"]["gradient_checkpointing"] is True  # deberta-v3-base's, not cpu-smoke's


def test_set_values_are_toml_values():
    assert parse_set("train.learning_rate=2e-4") == ("train.learning_rate", 2e-4)
    assert parse_set("train.swap_augment=true") == ("train.swap_augment", True)
    assert parse_set('train.target_modules=["q_proj", "v_proj"]') == ("train.target_modules", ["q_proj", "v_proj"])
    assert parse_set("train.target_modules=q_proj,v_proj") == ("train.target_modules", ["q_proj", "v_proj"])
    assert parse_set("train.fold=0/5") == ("train.fold", "0/5")  # a bare word is a string
    assert parse_set("train.backbone=123") == ("train.backbone", "123")  # a folder named 123: the field takes text
    assert parse_set("predict.time_budget=600") == ("predict.time_budget", 600)
    assert parse_set("username=alice") == ("username", "alice")
    layer = set_layer(["train.seed=1", ("train.seed", 2), "kernel.enable_gpu=false"])
    assert layer.data == {"train": {"seed": 2}, "kernel": {"enable_gpu": False}}


@pytest.mark.parametrize("setting, message", [
    ("train.learning_rate=abc", "--set train.learning_rate must be a number, got 'abc'"),
    ("train.no_such_key=1", "--set train.no_such_key=1: [train] has no key no_such_key"),
    ("train.lora_r=-3", "--set train.lora_r must be >= 1, got -3"),
    ("train.learning_rate=nan", "--set train.learning_rate must be a finite number, got nan"),
    ("train.epochs=inf", "--set train.epochs must be a finite number, got inf"),
    ("nosection.x=1", "--set nosection.x=1: no section [nosection]"),
    ("foo", "--set foo: expected SECTION.KEY=VALUE"),
    ("train.recipe=nope", "--set train.recipe is not a recipe"),
    ("train.learning_rat=1e-4", "did you mean learning_rate?"),
])
def test_bad_set_is_one_line_error_before_any_work(tmp_path, setting, message):
    for args in (["config"], ["train", "--train", tmp_path / "none.csv", "--out", tmp_path / "m"]):
        one_line_error(run_cli(*args, "--set", setting), message, code=2)
    assert not (tmp_path / "m").exists()


def test_a_bad_toml_value_names_the_file_and_a_bad_recipe_value_the_recipe(tmp_path):
    with pytest.raises(KitError, match=r"^kaggle-kit.toml \[train\] lora_r must be >= 1, got 0$"):
        resolve([Layer("kaggle-kit.toml", {"train": {"lora_r": 0}})])
    with pytest.raises(UsageProblem, match=r"^--set train.lora_r must be >= 1"):
        resolve([Layer("kaggle-kit.toml", {"train": {"lora_r": 8}}), Layer(SET, {"train": {"lora_r": 0}})])
    mine = tmp_path / "mine.toml"
    mine.write_text(recipe_text("cpu-smoke").replace("lora_r = 16", "lora_r = 0"))
    with pytest.raises(KitError, match=rf"^recipe {mine} \[train\] lora_r must be >= 1, got 0$"):
        resolve([Layer(FLAG, {"train": {"recipe": str(mine)}})])
    # a toml that fixes the recipe's bad value wins over it: the recipe's value is never used
    assert resolve([Layer(FLAG, {"train": {"recipe": str(mine), "lora_r": 8}})]).train.lora_r == 8


# ---- NaN and inf, wherever a finite number is meant
def float_fields():
    for name, cls in SECTIONS.items():
        types = field_types(cls)
        for f in dataclasses.fields(cls):
            if "float" in str(types[f.name]):
                yield name, f.name


def test_every_float_setting_refuses_nan_and_inf():
    fields = list(float_fields())
    assert len(fields) >= 8  # learning_rate, epochs, warmup, ... distill_temperature
    for section, key in fields:
        for bad in (math.nan, math.inf, -math.inf):
            with pytest.raises(KitError, match=f"{key} must be a finite number"):
                config_from_dict({section: {key: bad}}, "kaggle-kit.toml")


def test_nan_from_a_toml_file_and_from_a_flag(tmp_path):
    path = tmp_path / "kaggle-kit.toml"
    path.write_text("[train]\nwarmup = nan\n")
    one_line_error(run_cli("config", "--config", path), "kaggle-kit.toml [train] warmup must be a finite number")
    result = run_cli("train", "--train", tmp_path / "x.csv", "--out", tmp_path / "m", "--lr", "nan")
    assert result.exit_code == 2 and "must be a finite number, got nan" in result.output


# ---- recipes as TOML files
def test_recipes_are_toml_files_with_their_sources_as_comments():
    for name in RECIPES:
        text = recipe_text(name)
        assert text.startswith(f"# {name}: ") and "Source" in text.split("[recipe]")[0]
        assert get_recipe(name).train == tomllib.loads(text)["train"]
    result = run_cli("recipes", "--show", "gemma2-9b-qlora")
    assert result.exit_code == 0 and tomllib.loads(result.stdout)["train"]["freeze_layers"] == 16
    one_line_error(run_cli("recipes", "--show", "nope"), "unknown recipe 'nope'")


def test_a_copied_recipe_with_one_change_is_taken(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    copied = run_cli("recipes", "--show", "deberta-v3-base").stdout
    (tmp_path / "mine.toml").write_text(copied.replace("learning_rate = 2e-4", "learning_rate = 5e-5"))
    data = shown("--recipe", "./mine.toml")
    assert (data["train"]["learning_rate"], data["sources"]["train.learning_rate"]) == (5e-5, "recipe ./mine.toml")
    assert data["train"]["max_len"] == 1024 and data["train"]["gradient_checkpointing"] is True  # the rest as copied
    plan = json.loads(run_cli("plan", "train", "--recipe", "./mine.toml", "--gpus", "t4", "--json").stdout)
    assert plan["batch_size"] == 4  # plan train reads a recipe file's shapes too
    one_line_error(run_cli("config", "--recipe", "./missing.toml"), "recipe file missing.toml not found")
    (tmp_path / "bad.toml").write_text("[train]\nlearning_rat = 1e-4\n")
    one_line_error(run_cli("config", "--recipe", "bad.toml"), "unknown key(s) learning_rat (did you mean")


def test_a_copied_recipe_trains(tmp_path, monkeypatch, small_files, tiny_backbone):
    """The file recipe reaches the model dir: its values, the sources, and the toml/--set above it."""
    monkeypatch.chdir(tmp_path)
    text = recipe_text("cpu-smoke").replace("lora_r = 16", "lora_r = 4")
    (tmp_path / "mine.toml").write_text(text)
    result = run_cli("train", "--train", small_files.train, "--out", tmp_path / "m", "--backbone", tiny_backbone,
                     "--recipe", "mine.toml", "--max-len", "64", "--max-steps", "2",
                     "--set", "train.eval_steps=1", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "m" / "kaggle_kit_model.json").read_text())
    assert info["train_config"]["lora_r"] == 4 and info["recipe"]["recipe"] == "mine.toml"
    sources = info["recipe"]["sources"]
    assert (sources["lora_r"], sources["max_len"], sources["eval_steps"]) == ("recipe mine.toml", "flag", "--set")


def test_a_kernel_layers_its_recipe_again_on_its_own_gpus(tmp_path):
    """Built on one T4, run on T4 x2: the recipe's batch shape follows the kernel's GPUs, a --set value stays, and a
    recipe file travels inside the embedded config."""
    toml = Layer("kaggle-kit.toml", {"train": {"recipe": "deberta-v3-base", "max_len": 512}})
    here = resolve([toml, Layer(SET, {"train": {"seed": 9}})], gpus="t4")
    assert (here.train.batch_size, here.train.grad_accum) == (4, 2)
    there = from_embedded(json.loads(json.dumps(embedded(here))), gpus="t4x2")
    assert (there.train.batch_size, there.train.grad_accum) == (4, 1)
    assert (there.train.max_len, there.train.seed) == (512, 9)
    assert there.source_of("train.seed") == "--set" and there.source_of("train.grad_accum") == "recipe deberta-v3-base"
    mine = tmp_path / "mine.toml"
    mine.write_text(recipe_text("cpu-smoke").replace("warmup = 0.1", "warmup = 0.3"))
    data = embedded(resolve([Layer(FLAG, {"train": {"recipe": str(mine)}})], gpus="t4"))
    mine.unlink()  # the kernel has no copy of the file: the embedded tables stand in
    assert from_embedded(json.loads(json.dumps(data)), gpus="t4").train.warmup == 0.3


def test_the_kernel_archive_ships_the_recipes():
    import io
    import zipfile

    from kaggle_kit.kernel.build import package_archive

    names = zipfile.ZipFile(io.BytesIO(package_archive())).namelist()
    assert {f"kaggle_kit/recipes/{name}.toml" for name in RECIPES} <= set(names)


# ---- short help, nothing broken
COMMON = {"--config", "--set", "--json", "--help"}


def visible_options(name):
    command = main.commands[name]
    return [p for p in command.params if isinstance(p, click.Option) and not p.hidden and p.opts[0] not in COMMON]


@pytest.mark.parametrize("name", ["train", "cv"])
def test_train_and_cv_help_is_short_and_grouped(name):
    assert len(visible_options(name)) <= 13
    text = run_cli(name, "--help").stdout
    for title in ("Data and encoding:", "Model and LoRA:", "Optimisation:", "Run:", "Configuration:"):
        assert title in text
    assert "--grad-accum" not in text and "--set SECTION.KEY=VALUE" in text
    assert len(text.splitlines()) < 70


def test_every_old_flag_still_works_and_says_its_set_form(tmp_path, monkeypatch):
    """Each train flag that --help no longer lists: taken as before, one note line naming its --set."""
    monkeypatch.chdir(tmp_path)
    special = {"fold": "0/5", "deepspeed": "zero2", "teacher": "t.csv", "time_budget": "90s", "target_modules": "q,v",
               "fsdp": "shard_grad_op", "quantize": "8bit", "precision": "fp32", "truncate": "left"}
    hidden = [p for p in main.commands["train"].params if isinstance(p, click.Option) and p.hidden]
    assert len(hidden) >= 25
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for param in hidden:
        f = fields[param.name]
        if param.name in special:
            args, expected = [param.opts[0], special[param.name]], special[param.name]
        elif param.secondary_opts:  # --merge/--no-merge: the one that changes the default
            args, expected = [param.secondary_opts[0] if f.default else param.opts[0]], not f.default
        else:
            expected = changed(f, field_types(TrainConfig)[f.name])
            args = [param.opts[0], str(expected)]
        result = run_cli("config", "--json", *args)
        assert result.exit_code == 0, (args, result.output)
        value = json.loads(result.stdout)["train"][param.name]
        assert value == (expected.split(",") if param.name == "target_modules" else expected), args
        (note,) = result.stderr.splitlines()
        assert note.startswith(f"note: {args[0]}") and f" is --set train.{param.name}=" in note, note
    assert {p.opts[0] for p in hidden} <= {o for p in main.commands["cv"].params for o in p.opts} | {"--time-budget"}


def changed(f, tp):
    """A valid value other than the default."""
    if "int" in str(tp):
        return (f.default if f.default is not None else f.metadata["min"] or 1) + 1
    return f.default / 2 if f.default else 0.5


def test_an_alias_on_train_prints_one_line_and_takes_effect(tmp_path, small_files, tiny_backbone):
    result = run_cli("train", "--train", small_files.train, "--out", tmp_path / "m", "--backbone", tiny_backbone,
                     "--max-len", "64", "--max-steps", "2", "--eval-steps", "1", "--grad-accum", "3", "--json")
    assert result.exit_code == 0, result.output
    assert "note: --grad-accum 3 is --set train.grad_accum=3" in result.stderr.splitlines()
    assert "note: --eval-steps 1 is --set train.eval_steps=1" in result.stderr.splitlines()
    info = json.loads((tmp_path / "m" / "kaggle_kit_model.json").read_text())
    assert info["train_config"]["grad_accum"] == 3 and info["recipe"]["sources"]["grad_accum"] == "--set"


def test_predict_help_keeps_its_common_flags_and_hides_the_rest():
    text = run_cli("predict", "--help").stdout
    assert "--tta" in text and "--blend" in text and "--max-tokens" not in text
    assert "--max-tokens" in {o for p in main.commands["predict"].params for o in p.opts}
