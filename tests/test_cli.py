import json

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import fake_model_dir, run_cli
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
    data = json.loads(run("config", "--config", toml, "--json").stdout)
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
    result = run("predict", "--test", tmp_path / "test.csv", "--model", trained.out_dir, "--tta", "swap",
                 "--name", "odd")
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
    # 75 holdout rows: too few for the side head, so temperature scaling, which is never worse than none on them
    assert data["calibrated_log_loss"] <= data["holdout_log_loss"] + 1e-12
    assert run("validate", data["submission"], "--test", "qs/run/data/test.csv").exit_code == 0


@pytest.mark.parametrize("args, code, message", [
    (["upload", "model", ".", "--dataset", "no-owner"], 2, "must be owner/slug"),
    (["upload", "model", ".", "--dataset", "me/abc"], 2, "must be 6-50 characters"),
    (["upload", "model", "--dataset", "me/abcdef"], 2, "upload model needs PATH"),
    (["run-kernel", ".", "--input", "nonsense"], 2, "is not SOURCE=EXISTING_DIR"),
    (["submit", "-m", "x"], 2, "give either FILE or --kernel"),
    (["report", "."], 1, "has no holdout_predictions.csv"),
    (["tiny-backbone", ".", "--arch", "gpt5"], 2, "Invalid value for '--arch'"),
])
def test_bad_input_messages(tmp_path, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output


def test_build_kernel_takes_the_username_of_the_credentials(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("build-kernel", "train", "--backbone", "tester/tiny-deberta-v3", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metadata"]["id"] == "tester/kaggle-kit-train"  # KAGGLE_USERNAME of conftest
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    result = run("build-kernel", "train", "--backbone", "tester/tiny-deberta-v3", "--out", tmp_path / "other")
    assert result.exit_code == 1 and "no Kaggle credentials found" in result.output
    assert not (tmp_path / "other").exists()


def test_init_without_username_leaves_it_to_the_credentials(tmp_path):
    from kaggle_kit.config import load_config

    assert run("init", tmp_path).exit_code == 0
    text = (tmp_path / "kaggle-kit.toml").read_text()
    assert "your-kaggle-username" not in text and load_config(tmp_path / "kaggle-kit.toml").username is None
    (tmp_path / "kaggle-kit.toml").write_text('username = "your-kaggle-username"\n')
    result = run("doctor", "--offline", "--config", tmp_path / "kaggle-kit.toml")
    assert result.exit_code == 1 and "placeholder" in result.output


def test_tracebacks_that_became_one_line_errors(tmp_path, small_files, monkeypatch):
    import shutil

    monkeypatch.chdir(tmp_path)
    five = pd.read_csv(small_files.train).head(5)
    five.to_csv(tmp_path / "five.csv", index=False)
    result = run("train", "--train", tmp_path / "five.csv", "--backbone", tmp_path, "--out", tmp_path / "m")
    assert result.exit_code == 1 and "Traceback" not in result.output
    (tmp_path / "exists.csv").write_text("x")
    result = run("sample-data", tmp_path / "exists.csv")
    assert result.exit_code == 2 and "is a file" in result.output
    dup = pd.read_csv(small_files.test)
    pd.concat([dup, dup.head(1)]).to_csv(tmp_path / "dup_test.csv", index=False)
    shutil.copy(small_files.sample_submission, tmp_path / "sub.csv")
    result = run("validate", tmp_path / "sub.csv", "--test", tmp_path / "dup_test.csv")
    assert result.exit_code == 1 and "duplicate id(s)" in result.output
    monkeypatch.setenv("KAGGLE_KIT_TIMEOUT", "abc")
    result = run("doctor")
    assert "Traceback" not in result.output and "KAGGLE_KIT_TIMEOUT='abc'" in result.output
    for args in (["bench", "padding", "--batch-size", "0"], ["bench", "padding", "--rows", "0"]):
        assert run(*args).exit_code == 2


def test_five_training_rows_fail_before_loading_a_model(tmp_path, small_files, tiny_backbone, spec):
    from kaggle_kit.config import TrainConfig
    from kaggle_kit.errors import KitError
    from kaggle_kit.training.train import train

    pd.read_csv(small_files.train).head(5).to_csv(tmp_path / "five.csv", index=False)
    with pytest.raises(KitError, match="too few"):
        train([tmp_path / "five.csv"], tmp_path / "m", TrainConfig(backbone=str(tiny_backbone)), spec)
    assert not (tmp_path / "m").exists()


def test_predict_checks_every_input_before_the_first_forward_pass(tmp_path, tiny_backbone, small_files, monkeypatch):
    import kaggle_kit.inference.predict as predict_module

    model = fake_model_dir(tmp_path / "model", tiny_backbone)  # every refusal comes before a model loads

    def no_inference(*args, **kwargs):
        raise AssertionError("a model ran before the inputs were checked")

    monkeypatch.setattr(predict_module, "predict_probs", no_inference)
    base = ["predict", "--test", small_files.test, "--model", model, "--out", tmp_path / "p.csv"]
    assert "1 model(s) but 2 weights" in run(*base, "--weights", "1,2").output
    both = ["predict", "--test", small_files.test, "--model", model, "--model", model,
            "--out", tmp_path / "p.csv"]
    assert "not all zero" in run(*both, "--weights", "0,0").output
    other = pd.read_csv(small_files.sample_submission)
    other["id"] = other["id"].astype(str) + "0"
    other.to_csv(tmp_path / "other_sample.csv", index=False)
    result = run(*base, "--sample-submission", tmp_path / "other_sample.csv")
    assert result.exit_code == 1 and "does not match the test file" in result.output
    (tmp_path / "adir").mkdir()
    result = run("predict", "--test", small_files.test, "--model", model, "--out", tmp_path / "adir",
                 "--overwrite")
    assert result.exit_code == 1 and "is a folder" in result.output


def test_filesystem_errors_anywhere_become_one_line(tmp_path, monkeypatch):
    """The CLI's handler: an OSError about a path, raised deep inside a command, is one line (what, where, a hint)."""
    from kaggle_kit.cli.app import filesystem_error_line

    assert filesystem_error_line(ConnectionRefusedError(111, "Connection refused")) is None  # not about a path
    line = filesystem_error_line(IsADirectoryError(21, "Is a directory", "x/y"))
    assert line.startswith("cannot use x/y: Is a directory") and "give a file path" in line


def test_recipe_driven_flags_say_where_their_default_comes_from():
    text = run_cli("train", "--help").output
    assert "--lr" in text and "[default: 0.001, or the recipe's]" in text
    assert "[default: 0.001]" not in text
