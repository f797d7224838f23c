"""init, doctor and report."""

import json
import time

import pytest
import tomllib
from click.testing import CliRunner

from conftest import one_line_error, run_cli
from kaggle_kit.cli import main
from kaggle_kit.config import config_from_dict, load_config


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_init_writes_loadable_config_and_never_overwrites(tmp_path):
    result = run("init", tmp_path / "proj", "--username", "alice")
    assert result.exit_code == 0 and "kaggle-kit doctor" in result.output
    cfg = load_config(tmp_path / "proj" / "kaggle-kit.toml")
    assert cfg.username == "alice" and cfg.datasets.backbone == "alice/deberta-v3-base" and cfg.predict.tta == "swap"
    assert "kaggle.json" in (tmp_path / "proj" / ".gitignore").read_text()
    from kaggle_kit.config import config_from_dict

    assert config_from_dict(cfg.to_dict()).to_dict() == {**cfg.to_dict(), "source": None}  # round-trips
    again = run("init", tmp_path / "proj")
    assert again.exit_code == 1 and "already exists" in again.output
    assert load_config(tmp_path / "proj" / "kaggle-kit.toml").username == "alice"


def test_init_appends_to_existing_gitignore(tmp_path):
    (tmp_path / ".gitignore").write_text("mine/\n")
    assert run("init", tmp_path).exit_code == 0
    lines = (tmp_path / ".gitignore").read_text().splitlines()
    assert lines[0] == "mine/" and "submissions/*.csv" in lines


def test_doctor_green_with_credentials_and_accepted_rules(project, fake):
    fake.competitions["lmsys-chatbot-arena"] = {"files": {"train.csv": b"x"}}
    result = run("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["kaggle credentials"]["ok"] and "KAGGLE_USERNAME" in checks["kaggle credentials"]["detail"]
    assert checks["competition rules"]["ok"]
    assert checks["torch"]["ok"] and not checks["cuda"]["required"]
    assert result.exit_code == 0
    assert "0123456789abcdef" not in result.output  # the key itself is never shown


def test_doctor_red_for_rules_and_missing_credentials(project, fake, monkeypatch):
    fake.competitions["lmsys-chatbot-arena"] = {"files": {}, "forbidden": True}
    result = run("doctor")
    assert result.exit_code == 1
    assert ("FAIL competition rules: not accepted  -> accept them at "
            "https://www.kaggle.com/competitions/lmsys-chatbot-arena/rules") in result.output
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    result = run("doctor", "--offline")
    assert result.exit_code == 1 and "FAIL kaggle credentials: none found  -> put kaggle.json" in result.output


def test_report_renders_png_and_html(trained, tmp_path):
    result = run("report", trained.out_dir, "--out", tmp_path / "rep", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    for name in ("confusion_matrix.png", "reliability.png", "training_curves.png"):
        assert (tmp_path / "rep" / name).read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "data:image/png;base64," in page and 'href="reliability.png"' in page
    assert sum(map(sum, summary["confusion_matrix"])) == summary["rows"] == trained.metrics["holdout"]["rows"]
    assert summary["log_loss"] == pytest.approx(trained.metrics["holdout"]["log_loss_calibrated"], abs=1e-6)
    assert run("report", tmp_path).exit_code == 1


def test_config_and_doctor_fail_for_an_unknown_competition(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text('competition = "no-such-competition"\n')
    one_line_error(run_cli("config"), "no-such-competition", code=2)
    result = run_cli("doctor", "--offline")
    assert result.exit_code == 1 and "FAIL config" in result.output and "no-such-competition" in result.output


def test_doctor_fails_for_a_truncated_kaggle_json(tmp_path, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path))
    (tmp_path / "kaggle.json").write_text('{"username": "alice", "ke')
    result = run_cli("doctor", "--offline")
    assert result.exit_code == 1 and "FAIL kaggle credentials" in result.output and "not valid JSON" in result.output
    (tmp_path / "kaggle.json").write_text('{"username": "alice"}')
    assert "lacks a username or a key" in run_cli("doctor", "--offline").output
    (tmp_path / "kaggle.json").write_text('{"username": "alice", "key": "0123456789abcdef"}')
    result = run_cli("doctor", "--offline", "--json")
    assert {c["name"]: c for c in json.loads(result.output)}["kaggle credentials"]["ok"]
    assert "0123456789abcdef" not in result.output


def test_init_refuses_a_bad_username_and_writes_nothing(tmp_path):
    one_line_error(run_cli("init", tmp_path / "p", "--username", "bad user!"), "--username 'bad user!'", code=2)
    assert not (tmp_path / "p" / "kaggle-kit.toml").exists()


def test_init_template_leaves_recipe_settings_to_the_recipe():
    """The toml outranks recipes: a value written there (the old lr 1e-3, batch 8) overrode `train --recipe`."""
    from kaggle_kit.config.init_template import TEMPLATE_RECIPE, TEMPLATE_TRAIN_KEYS, config_text
    from kaggle_kit.config.recipes import RECIPES

    text = config_text("lmsys-chatbot-arena", "alice")
    cfg = config_from_dict(tomllib.loads(text))
    assert not [key for key in cfg.sources if key.startswith("train.")]  # nothing in [train] outranks a recipe
    shown = {}
    for line in text[text.index("[train]"):text.index("[predict]")].splitlines():
        if line.startswith("# ") and " = " in line and line[2:].split(" = ")[0] in TEMPLATE_TRAIN_KEYS:
            shown.update(tomllib.loads(line[2:].split("#")[0]))
    assert shown == {k: v for k, v in RECIPES[TEMPLATE_RECIPE].settings().items() if k in TEMPLATE_TRAIN_KEYS}
    assert shown["learning_rate"] == RECIPES[TEMPLATE_RECIPE].train["learning_rate"] != 1e-3


def test_doctor_uses_kaggle_kit_timeout(tmp_path, monkeypatch, silent_server):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KAGGLE_KIT_TIMEOUT", "0.5")
    start = time.monotonic()
    result = run_cli("doctor", "--json")
    took = time.monotonic() - start
    checks = {c["name"]: c for c in json.loads(result.output)}
    assert not checks["competition rules"]["ok"] and "no answer within" in checks["competition rules"]["detail"]
    assert took < 10, took  # three tries of 0.5 s and their backoff, not three of a fixed 30 s


def test_init_writes_the_chosen_competitions_slugs(tmp_path):
    assert run_cli("init", tmp_path / "p", "--competition", "wsdm-cup-multilingual-chatbot-arena").exit_code == 0
    text = (tmp_path / "p" / "kaggle-kit.toml").read_text()
    assert 'train_slug = "wsdm-train"' in text and 'infer_slug = "wsdm-infer"' in text
    assert "lmsys-train" not in text and "lmsys-model" not in text and "(LMSYS: " not in text
    assert "/kaggle/input/datasets/<owner>/<slug>" in text  # today's mount path first, the legacy one as the older
