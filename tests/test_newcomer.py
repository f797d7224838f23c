"""Issue 24, a second newcomer pass: each repro of the issue, run as the newcomer ran it (real commands, real files).

Tests run as root here, so chmod cannot make a folder unwritable: an unwritable output location is made the way that
stops root too, a path under a regular file (mkdir and open fail with NotADirectoryError/FileExistsError)."""

import json
import tomllib

import pytest
from click.testing import CliRunner

from kaggle_kit.cli import main
from kaggle_kit.config import config_from_dict
from kaggle_kit.config.init_template import TEMPLATE_RECIPE, TEMPLATE_TRAIN_KEYS, config_text
from kaggle_kit.config.recipes import RECIPES

MEASURED = {"measured": {"device": "cuda", "replicas": 2, "rows": 1000, "max_len": 1024, "max_tokens": 16384,
                         "tokens_per_s": 20000.0, "pad_factor": 1.05, "load_s": 60.0, "tokenize_s_per_row": 0.002,
                         "startup_s": 30.0, "length_quantiles": [2100 + 100 * k for k in range(21)]}}


def run(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kw)


def one_line_error(result, message, code=1):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert message in lines[-1] and lines[-1].startswith("Error"), result.output
    return lines[-1]


# ---- 4. checks that say ok and fail later
def test_config_and_doctor_fail_for_an_unknown_competition(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text('competition = "no-such-competition"\n')
    one_line_error(run("config"), "no-such-competition", code=2)
    result = run("doctor", "--offline")
    assert result.exit_code == 1 and "FAIL config" in result.output and "no-such-competition" in result.output


def test_doctor_fails_for_a_truncated_kaggle_json(tmp_path, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path))
    (tmp_path / "kaggle.json").write_text('{"username": "alice", "ke')
    result = run("doctor", "--offline")
    assert result.exit_code == 1 and "FAIL kaggle credentials" in result.output and "not valid JSON" in result.output
    (tmp_path / "kaggle.json").write_text('{"username": "alice"}')
    assert "lacks a username or a key" in run("doctor", "--offline").output
    (tmp_path / "kaggle.json").write_text('{"username": "alice", "key": "0123456789abcdef"}')
    result = run("doctor", "--offline", "--json")
    assert {c["name"]: c for c in json.loads(result.output)}["kaggle credentials"]["ok"]
    assert "0123456789abcdef" not in result.output


def test_init_refuses_a_bad_username_and_writes_nothing(tmp_path):
    one_line_error(run("init", tmp_path / "p", "--username", "bad user!"), "--username 'bad user!'", code=2)
    assert not (tmp_path / "p" / "kaggle-kit.toml").exists()


def test_plan_infer_refuses_a_budget_above_the_limit(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps(MEASURED))
    result = run("plan", "infer", "--from", tmp_path / "m.json", "--limit", "90s", "--budget", "2h")
    assert result.exit_code == 2 and "above the runtime limit" in result.output and "fits" not in result.output


# ---- 5. what a newcomer reads
def test_init_template_leaves_recipe_settings_to_the_recipe():
    """The toml outranks recipes: a value written there (the old lr 1e-3, batch 8) overrode `train --recipe`."""
    text = config_text("lmsys-chatbot-arena", "alice")
    cfg = config_from_dict(tomllib.loads(text))
    assert cfg.explicit["train"] == []  # nothing in [train] outranks a recipe
    shown = {}
    for line in text[text.index("[train]"):text.index("[predict]")].splitlines():
        if line.startswith("# ") and " = " in line and line[2:].split(" = ")[0] in TEMPLATE_TRAIN_KEYS:
            shown.update(tomllib.loads(line[2:].split("#")[0]))
    assert shown == {k: v for k, v in RECIPES[TEMPLATE_RECIPE].settings().items() if k in TEMPLATE_TRAIN_KEYS}
    assert shown["learning_rate"] == RECIPES[TEMPLATE_RECIPE].train["learning_rate"] != 1e-3
