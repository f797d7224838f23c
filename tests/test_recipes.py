"""Recipes: the required five with sources, precedence recipe < kaggle-kit.toml < flags, family defaults, plan."""

import json

import pytest
from click.testing import CliRunner

from kaggle_kit.cli import main
from kaggle_kit.config import TrainConfig, config_from_dict
from kaggle_kit.config.layers import FLAG, Layer, resolve
from kaggle_kit.config.recipes import (
    DEBERTA_V3_BASE,
    FAMILY_FIELDS,
    GEMMA2_9B,
    GPUS,
    LLAMA3_8B,
    RECIPES,
    family_recipe,
    get_recipe,
)
from kaggle_kit.errors import KitError
from kaggle_kit.training.memory_plan import GIB, activation_bytes, plan_train

REQUIRED = {"deberta-v3-base", "deberta-v3-large", "gemma2-9b-qlora", "llama3-8b-qlora", "cpu-smoke"}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_recipes_json_lists_the_required_five_with_sources():
    result = run("recipes", "--json")
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert REQUIRED <= set(rows)
    for row in rows.values():
        assert len(row["source"]) > 20 and row["train"]["learning_rate"] > 0 and set(row["batches"]) == set(GPUS)
    assert rows["gemma2-9b-qlora"]["train"]["quantize"] == "4bit"
    assert rows["gemma2-9b-qlora"]["train"]["freeze_layers"] == 16
    assert rows["gemma2-9b-qlora"]["predict_max_len"] == 2048
    assert "cpu-smoke" in run("recipes").stdout


def test_every_recipe_is_a_valid_config():
    for recipe in RECIPES.values():
        for gpus in GPUS:
            cfg = resolve([Layer("kaggle-kit.toml", {"train": {"recipe": recipe.name}})], gpus=gpus).train
            assert cfg.learning_rate == recipe.train["learning_rate"]
            assert cfg.batch_size == recipe.batches[gpus]["batch_size"]


def test_toml_value_and_flag_win_over_the_recipe():
    toml = Layer("kaggle-kit.toml", {"train": {"max_len": 200}})  # sets max_len only
    config = resolve([toml, Layer(FLAG, {"train": {"recipe": "cpu-smoke", "epochs": 3.0}})])
    cfg, note = config.train, config.recipe_note
    assert cfg.max_len == 200  # toml
    assert cfg.epochs == 3.0  # flag
    assert cfg.learning_rate == get_recipe("cpu-smoke").train["learning_rate"]  # recipe, not erased by the toml
    assert note["recipe"] == "cpu-smoke" and "max_len" not in note["applied"] and "epochs" not in note["applied"]
    assert config.source_of("train.learning_rate") == "recipe cpu-smoke"
    # A toml value equal to the built-in default still counts as set by the user.
    cfg = resolve([Layer("kaggle-kit.toml", {"train": {"recipe": "deberta-v3-base", "learning_rate": 1e-3}})]).train
    assert cfg.learning_rate == 1e-3 and cfg.max_len == 1024 and cfg.gradient_checkpointing


def test_unknown_recipe_is_one_line_error(tmp_path):
    with pytest.raises(KitError, match="not a recipe"):
        config_from_dict({"train": {"recipe": "gemma-huge"}})
    result = run("train", "--train", tmp_path / "x.csv", "--out", tmp_path / "m", "--recipe", "nope")
    assert result.exit_code == 2 and "is not a recipe" in result.output


def test_family_defaults_follow_the_backbone_not_the_tiny_model(tmp_path, tiny_backbone):
    assert family_recipe(DEBERTA_V3_BASE) == "deberta-v3-base"
    assert family_recipe(GEMMA2_9B) == "gemma2-9b-qlora"
    assert family_recipe({**DEBERTA_V3_BASE, "hidden_size": 1024, "num_hidden_layers": 24}) == "deberta-v3-large"
    big = tmp_path / "gemma"
    big.mkdir()
    (big / "config.json").write_text(json.dumps(GEMMA2_9B))
    config = resolve([Layer("kaggle-kit.toml", {"train": {"backbone": str(big)}})])
    cfg, note = config.train, config.recipe_note
    assert note == {"recipe": "gemma2-9b-qlora", "auto": True, "predict_max_len": 2048, "applied": {
        k: v for k, v in get_recipe("gemma2-9b-qlora").train.items() if k in FAMILY_FIELDS}}
    assert cfg.quantize is None and cfg.batch_size == TrainConfig().batch_size  # GPU-specific settings untouched
    config = resolve([Layer("kaggle-kit.toml", {"train": {"backbone": str(tiny_backbone), "learning_rate": 1e-3}})])
    assert config.recipe_note["recipe"] == "cpu-smoke" and config.train.learning_rate == 1e-3


@pytest.mark.parametrize("gpus", ["t4", "t4x2"])
def test_plan_gemma2_qlora_on_a_t4_is_at_the_edge_and_says_so(gpus):
    """With a T4's 14.5 GiB as it reports them and the 4-bit residual stream in fp32 (issue 28), batch 1 x 1024 stays
    under the device's memory but inside the 10% margin: the plan says so rather than promising a fit."""
    result = run("plan", "train", "--recipe", "gemma2-9b-qlora", "--gpus", gpus, "--json")
    plan = json.loads(result.stdout)
    assert result.exit_code == 0 and plan["device_gib"] == 14.5 and plan["quantize"] == "4bit"
    assert plan["total_gib"] < plan["device_gib"] and not plan["fits"]
    assert plan["ranks"] == (2 if gpus == "t4x2" else 1)
    text = run("plan", "train", "--recipe", "gemma2-9b-qlora", "--gpus", gpus).stdout
    assert ("2 DDP ranks, one per GPU, each with its own 4bit model" in text) == (gpus == "t4x2")
    too_big = run("plan", "train", "--recipe", "gemma2-9b-qlora", "--gpus", gpus, "--batch-size", "8",
                  "--max-len", "4096")
    assert "does NOT fit" in too_big.stdout


def test_plan_counts_full_swap_rows_and_fp32_under_4bit():
    plain, swapped = plan_train("deberta-v3-base", "t4"), plan_train("deberta-v3-base", "t4", full_swap=True)
    assert swapped.full_swap and swapped.activations_gib > 1.8 * plain.activations_gib - 0.01
    assert swapped.eval_gib == plain.eval_gib  # the holdout is never swapped
    llama = plan_train("llama3-8b-qlora", "t4")  # 4-bit: the checkpointed residual stream is not halved
    assert activation_bytes(LLAMA3_8B, 1, 1024, 32, True, "fp16", "4bit") > activation_bytes(
        LLAMA3_8B, 1, 1024, 32, True, "fp16", None) * 1.5
    assert llama.activations_gib == round(activation_bytes(LLAMA3_8B, 1, 1024, 32, True, "fp16", "4bit") / GIB, 2)


def test_every_recipe_fits_its_gpus():
    """All but the 7-9B QLoRA recipes on a T4 (at the edge, see above) fit with the 10% margin."""
    for recipe in RECIPES:
        for gpus in GPUS:
            plan = plan_train(recipe, gpus)
            if recipe.endswith("-qlora") and gpus.startswith("t4"):
                assert plan.peak_gib < plan.device_gib, plan.summary()
            else:
                assert plan.fits, plan.summary()


def test_activation_formula_matches_the_issue_measurement():
    """deberta-v3-base, LoRA r16, fp32, batch 1 and 2 x 1024, no checkpointing: +4.6 and +8.9 GiB measured."""
    for batch, measured in ((1, 4.6), (2, 8.9)):
        assert activation_bytes(DEBERTA_V3_BASE, batch, 1024, 12, False) / GIB == pytest.approx(measured, rel=0.1)
    assert activation_bytes(DEBERTA_V3_BASE, 8, 1024, 12, False) / GIB > 15  # today's defaults overflow a T4


def test_bench_seeds_reports_each_seed_against_the_prior(tmp_path):
    """The seed-stability benchmark on a small scale (the full check is `kaggle-kit bench seeds`: 2,000 rows x 5)."""
    from kaggle_kit.evaluation.bench_seeds import bench_seeds

    result = bench_seeds("cpu-smoke", rows=120, seeds=(0,), work=tmp_path)
    (run,) = result["runs"]
    assert run["seed"] == 0 and run["holdout_rows"] == 30
    assert run["margin"] == pytest.approx(run["prior_log_loss"] - run["holdout_log_loss"], abs=2e-4)
    assert result["stable"] == (run["margin"] > 0.05)


def test_plan_unknown_recipe_is_one_line():
    result = run("plan", "train", "--recipe", "nope")
    assert result.exit_code == 1 and "unknown recipe 'nope'" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_plan_train_knows_l4_and_t4x2_not_p100():
    l4 = json.loads(run("plan", "train", "--recipe", "gemma2-9b-qlora", "--gpus", "l4", "--json").stdout)
    t4x2 = json.loads(run("plan", "train", "--recipe", "gemma2-9b-qlora", "--json").stdout)  # the default
    assert (l4["gpus"], l4["precision"], l4["device_gib"]) == ("l4", "bf16", 22.0)
    assert (t4x2["gpus"], t4x2["precision"], t4x2["device_gib"]) == ("t4x2", "fp16", 14.5)  # as a T4 reports its memory
    refused = run("plan", "train", "--recipe", "gemma2-9b-qlora", "--gpus", "p100")
    assert refused.exit_code == 2 and "'p100' is not one of 't4x2', 'l4', 't4'" in refused.output
def test_plan_counts_kbit_upcast_and_the_inference_peaks():
    """kbit preparation keeps Gemma-2-9B's embeddings in fp32 (+1.7 GiB); evaluation, the holdout pass and predict
    are planned beside the training step, and eager attention caps predict's rows by length squared."""
    gemma, llama = plan_train("gemma2-9b-qlora", "t4"), plan_train("llama3-8b-qlora", "t4")
    assert gemma.kbit_upcast_gib == round(256000 * 3584 * 2 / GIB, 2) == 1.71
    assert gemma.eager_attention and not llama.eager_attention
    assert gemma.predict_max_len == 2048 and gemma.eval_batch_size == 4
    assert gemma.predict_rows == 4 < 16384 // 2048 and llama.predict_rows == 16384 // 1280
    for plan in (gemma, llama, plan_train("deberta-v3-large", "t4")):
        assert plan.peak_gib == max(plan.total_gib, plan.eval_gib, plan.predict_gib)
        assert plan.fits == (plan.peak_gib <= plan.device_gib * 0.9)
    large = plan_train("deberta-v3-large", "t4")
    assert large.eval_gib > large.total_gib  # 16 rows x 1024 tokens after a batch-2 training step
    assert "evaluation" in large.summary() and "predict" in large.summary()


def test_recipe_sources_cite_public_sources():
    from kaggle_kit.config.recipes import RECIPES

    for recipe in RECIPES.values():
        assert "shared/docs" not in recipe.source
        assert recipe.name == "cpu-smoke" or "https://" in recipe.source, recipe.source
