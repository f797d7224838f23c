"""Backbone token limits: read from config/tokenizer, --max-len lowered once with a warning, predict never exceeds."""

import json

import pytest
from click.testing import CliRunner

from kaggle_kit.cli import main
from kaggle_kit.data.reading import read_test
from kaggle_kit.inference.predict import encoder_for
from kaggle_kit.model.limits import backbone_limit, model_limit
from kaggle_kit.model.model_dir import load_trained
from kaggle_kit.model.tiny_backbone import build_tiny_backbone


@pytest.mark.parametrize("config, tokens", [
    ({"model_type": "bert", "max_position_embeddings": 512}, 512),
    ({"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}, 512),
    ({"model_type": "deberta-v2", "max_position_embeddings": 512, "relative_attention": True,
      "position_biased_input": False}, None),
    ({"model_type": "deberta-v2", "max_position_embeddings": 512, "relative_attention": False,
      "position_biased_input": True}, 512),
    ({"model_type": "gemma2", "max_position_embeddings": 8192}, 8192),
    ({"model_type": "llama"}, None),
])
def test_model_limit_by_family(config, tokens):
    assert model_limit(config).tokens == tokens


def test_tokenizer_limit_applies_except_to_relative_deberta(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 8192}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 2048}))
    assert backbone_limit(tmp_path).tokens == 2048
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": int(1e30)}))
    assert backbone_limit(tmp_path).tokens == 8192  # the "no limit" sentinel is ignored
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "deberta-v2", "relative_attention": True,
                                                      "position_biased_input": False}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512}))
    assert backbone_limit(tmp_path).tokens is None


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return build_tiny_backbone(tmp_path_factory.mktemp("bert") / "tiny-bert", arch="bert", max_positions=64)


def _lines(result, caplog) -> list[str]:
    """What the user sees on stderr: click's own lines and the log warnings (pytest captures those apart)."""
    return result.stderr.splitlines() + caplog.messages


def test_max_len_lowered_once_recorded_and_respected_by_predict(tmp_path, small_files, tiny_bert, spec, caplog):
    runner = CliRunner()
    out = tmp_path / "m"
    result = runner.invoke(main, ["train", "--train", str(small_files.train), "--out", str(out), "--backbone",
                                  str(tiny_bert), "--max-len", "128", "--max-steps", "2", "--eval-steps", "1",
                                  "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lowered = [line for line in _lines(result, caplog) if "lowered to 64" in line]
    assert len(lowered) == 1 and "max_position_embeddings 64" in lowered[0]
    metrics = json.loads(result.stdout)
    assert any("lowered to 64" in w for w in metrics["warnings"])
    info = json.loads((out / "kaggle_kit_model.json").read_text())
    assert info["max_len"] == {"requested": 128, "used": 64, "backbone_limit": 64, "predict": 64,
                               "reason": "bert max_position_embeddings 64"}
    assert info["encoding"]["max_len"] == 64

    trained = load_trained(out)
    encoder = encoder_for(trained)
    pairs = read_test(small_files.test, spec)
    assert max(len(row) for row in encoder.encode(pairs)) <= 64
    sub = tmp_path / "sub.csv"
    result = runner.invoke(main, ["predict", "--test", str(small_files.test), "--model", str(out), "--out", str(sub),
                                  "--tta", "swap"], catch_exceptions=False)
    assert result.exit_code == 0 and "valid" in result.output, result.output


def test_run_that_learned_nothing_says_so_in_text_and_json(tmp_path, small_files, tiny_bert, caplog):
    runner = CliRunner()
    args = ["train", "--train", str(small_files.train), "--backbone", str(tiny_bert), "--max-len", "64",
            "--max-steps", "1", "--lr", "1e-8"]
    text = runner.invoke(main, [*args, "--out", str(tmp_path / "a")], catch_exceptions=False)
    assert text.exit_code == 0, text.output
    assert "NO better than the prior" in text.stdout
    assert sum("learned nothing" in line for line in _lines(text, caplog)) == 1
    as_json = runner.invoke(main, [*args, "--out", str(tmp_path / "b"), "--json"], catch_exceptions=False)
    metrics = json.loads(as_json.stdout)
    assert metrics["learned"] is False and any("learned nothing" in w for w in metrics["warnings"])


def test_inference_length_follows_the_recipe_within_the_limit():
    from kaggle_kit.training.train import predict_max_len

    gemma = {"recipe": "gemma2-9b-qlora", "auto": False, "applied": {"max_len": 1024}}
    assert predict_max_len(1024, 8192, gemma) == 2048
    assert predict_max_len(1024, 1500, gemma) == 1500  # never past the backbone
    assert predict_max_len(700, 8192, {**gemma, "applied": {}}) == 700  # the user's own --max-len
    assert predict_max_len(512, None, None) == 512
