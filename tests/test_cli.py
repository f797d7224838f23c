import json

import pandas as pd
import pytest
from click.testing import CliRunner

from kaggle_kit.cli import main


def run(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kw)


def test_version_and_help_on_every_command():
    assert run("--version").output.startswith("kaggle-kit, version")
    def walk(group, prefix):
        for name, cmd in group.commands.items():
            result = run(*prefix, name, "--help")
            assert result.exit_code == 0 and "Usage:" in result.output, name
            if hasattr(cmd, "commands"):
                walk(cmd, [*prefix, name])
    walk(main, [])


def test_bad_input_is_one_line_without_traceback(tmp_path):
    (tmp_path / "test.csv").write_text("id,prompt\n1,x\n")
    result = run("validate", tmp_path / "nope.csv", "--test", tmp_path / "test.csv")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    result = run("predict", "--test", tmp_path / "test.csv", "--model", tmp_path)
    assert result.exit_code == 1 and "missing column(s) response_a" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert run("train", "--out", tmp_path / "x").exit_code == 2  # usage error


def test_validate_exit_codes(tmp_path, small_files):
    good = pd.read_csv(small_files.sample_submission)
    good.to_csv(tmp_path / "good.csv", index=False)
    result = run("validate", tmp_path / "good.csv", "--sample-submission", small_files.sample_submission)
    assert result.exit_code == 0 and "valid (24 rows)" in result.output
    good.iloc[1:].to_csv(tmp_path / "bad.csv", index=False)
    result = run("validate", tmp_path / "bad.csv", "--test", small_files.test, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["problems"][0].startswith("1 missing id(s)")


def test_config_precedence(tmp_path):
    toml = tmp_path / "kaggle-kit.toml"
    toml.write_text('username = "me"\n[train]\nmax_len = 512\nlora_r = 8\n')
    data = json.loads(run("config", "--config", toml).stdout)
    assert data["username"] == "me" and data["train"]["max_len"] == 512 and data["train"]["epochs"] == 2.0
    from kaggle_kit.config import load_config, with_overrides

    cfg = with_overrides(load_config(toml).train, max_len=128, lora_r=None)
    assert cfg.max_len == 128 and cfg.lora_r == 8
    toml.write_text("[train]\nmax_lenn = 5\n")
    result = run("config", "--config", toml)
    assert result.exit_code == 1 and "unknown key(s) max_lenn" in result.output


def test_predict_on_malformed_rows_writes_valid_file(tmp_path, trained, monkeypatch):
    monkeypatch.chdir(tmp_path)
    test = pd.DataFrame({"id": ["1", "2", "3", "4", "5"],
                         "prompt": ['["hi", null]', "[]", "not json at all", '["\\ud83d ok"]', '["a\\r\\nb"]'],
                         "response_a": ['[null]', '["x"]', "[]", '["y"]', '["' + "long " * 3000 + '"]'],
                         "response_b": ['["z"]', "[]", '["q"]', "[null, null]", '["w"]']})
    test.to_csv(tmp_path / "test.csv", index=False)
    result = run("predict", "--test", tmp_path / "test.csv", "--model", trained.out_dir, "--tta", "swap", "--name", "odd")
    assert result.exit_code == 0, result.output
    assert "submissions/odd.csv (5 rows, valid)" in result.output
    check = run("validate", "submissions/odd.csv", "--test", tmp_path / "test.csv")
    assert check.exit_code == 0
    again = run("predict", "--test", tmp_path / "test.csv", "--model", trained.out_dir, "--name", "odd")
    assert again.exit_code == 1 and "already exists" in again.output


def test_ensemble_via_cli(tmp_path, trained, small_files, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("predict", "--test", small_files.test, "--model", trained.out_dir, "--model", trained.out_dir,
                 "--weights", "1,3", "--name", "ens", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 24
    bad = run("predict", "--test", small_files.test, "--model", trained.out_dir, "--weights", "1,x", "--name", "e2")
    assert bad.exit_code == 2


def test_quickstart_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("quickstart", "--workdir", "qs", "--rows", "300", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["submission"] == "submissions/quickstart.csv"
    assert run("validate", data["submission"], "--test", "qs/run/data/test.csv").exit_code == 0


@pytest.mark.parametrize("args, code, message", [
    (["upload", "model", ".", "--dataset", "no-owner"], 2, "must be owner/slug"),
    (["upload", "model", ".", "--dataset", "me/abc"], 2, "must be 6-50 characters"),
    (["upload", "model", "--dataset", "me/abcdef"], 2, "upload model needs PATH"),
    (["run-kernel", ".", "--input", "nonsense"], 2, "is not SLUG=EXISTING_DIR"),
    (["submit", "-m", "x"], 2, "give either FILE or --kernel"),
    (["build-kernel", "train"], 2, "no Kaggle username"),
    (["report", "."], 1, "has no holdout_predictions.csv"),
    (["tiny-backbone", ".", "--arch", "gpt5"], 2, "Invalid value for '--arch'"),
])
def test_bad_input_messages(tmp_path, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output
