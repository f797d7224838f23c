"""Issue 24, a second newcomer pass: each repro of the issue, run as the newcomer ran it (real commands, real files).

Tests run as root here, so chmod cannot make a folder unwritable: an unwritable output location is made the way that
stops root too, a path under a regular file (mkdir and open fail with NotADirectoryError/FileExistsError)."""

import json

import pytest
import tomllib

from conftest import one_line_error
from conftest import run_cli as run
from kaggle_kit.config import config_from_dict

MEASURED = {"measured": {"device": "cuda", "replicas": 2, "rows": 1000, "max_len": 1024, "max_tokens": 16384,
                         "tokens_per_s": 20000.0, "pad_factor": 1.05, "load_s": 60.0, "tokenize_s_per_row": 0.002,
                         "startup_s": 30.0, "length_quantiles": [2100 + 100 * k for k in range(21)]}}


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
    from kaggle_kit.config.init_template import TEMPLATE_RECIPE, TEMPLATE_TRAIN_KEYS, config_text
    from kaggle_kit.config.recipes import RECIPES

    text = config_text("lmsys-chatbot-arena", "alice")
    cfg = config_from_dict(tomllib.loads(text))
    assert cfg.explicit["train"] == []  # nothing in [train] outranks a recipe
    shown = {}
    for line in text[text.index("[train]"):text.index("[predict]")].splitlines():
        if line.startswith("# ") and " = " in line and line[2:].split(" = ")[0] in TEMPLATE_TRAIN_KEYS:
            shown.update(tomllib.loads(line[2:].split("#")[0]))
    assert shown == {k: v for k, v in RECIPES[TEMPLATE_RECIPE].settings().items() if k in TEMPLATE_TRAIN_KEYS}
    assert shown["learning_rate"] == RECIPES[TEMPLATE_RECIPE].train["learning_rate"] != 1e-3


# ---- shared set-up: sample data, the tiny backbone and a model dir that was never trained


# ---- 2. nothing lost


def test_cv_refuses_a_folder_of_other_files(tiny_backbone, small_files, tmp_path):
    out = tmp_path / "work"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    one_line_error(run("cv", "--train", small_files.train, "--folds", 2, "--out", out, "--backbone", tiny_backbone,
                       "--max-steps", 1), "already holds files that kaggle-kit did not write")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


# ---- 3. one-line errors: an output location that cannot be written, checked before the work


def test_filesystem_errors_anywhere_become_one_line(tmp_path, monkeypatch):
    """The CLI's handler: an OSError about a path, raised deep inside a command, is one line (what, where, a hint)."""
    from kaggle_kit.cli.app import filesystem_error_line

    assert filesystem_error_line(ConnectionRefusedError(111, "Connection refused")) is None  # not about a path
    line = filesystem_error_line(IsADirectoryError(21, "Is a directory", "x/y"))
    assert line.startswith("cannot use x/y: Is a directory") and "give a file path" in line


def test_run_kernel_on_a_folder_that_is_not_a_build(tmp_path):
    (tmp_path / "notes").mkdir()
    one_line_error(run("run-kernel", tmp_path / "notes"), "is not a kernel build")


def test_kernel_failure_ends_in_one_clean_line(tmp_path):
    """The streamed log keeps the kernel's traceback; the command's last line says what failed."""
    build = tmp_path / "kb"
    build.mkdir()
    (build / "kernel-metadata.json").write_text(json.dumps({"id": "tester/x", "code_file": "k.py"}))
    (build / "k.py").write_text('raise RuntimeError("the model dir is missing:\\n  /kaggle/input/m\\n  (pulled?)")\n')
    result = run("run-kernel", build, "--working", tmp_path / "w")
    assert result.exit_code == 1 and "| Traceback" in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: kernel failed (exit 1): RuntimeError: the model dir is missing"), last
    assert "Traceback" in (tmp_path / "w" / "kernel.log").read_text()


def test_train_with_target_modules_that_match_nothing(tiny_backbone, small_files, tmp_path):
    line = one_line_error(run("train", "--train", small_files.train, "--backbone", tiny_backbone, "--out",
                              tmp_path / "m", "--target-modules", "no_such_proj", "--max-steps", 1),
                          "--target-modules no_such_proj: no such layer")
    assert "query_proj" in line or "query" in line


# ---- 4. more checks that said ok
def test_build_kernel_train_without_a_backbone_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text('username = "tester"\n')
    one_line_error(run("build-kernel", "train", "--out", tmp_path / "kb"), "needs a backbone", code=2)
    assert not (tmp_path / "kb").exists()


def test_training_rows_of_one_class_are_refused(tiny_backbone, small_files, tmp_path):
    import pandas as pd

    frame = pd.read_csv(small_files.train, dtype=str, keep_default_na=False)
    frame["winner_model_a"], frame["winner_model_b"], frame["winner_tie"] = "1", "0", "0"
    frame.to_csv(tmp_path / "one.csv", index=False)
    one_line_error(run("train", "--train", tmp_path / "one.csv", "--backbone", tiny_backbone, "--out",
                       tmp_path / "m", "--max-steps", 1), "is labelled winner_model_a: nothing to learn")
    assert not (tmp_path / "m" / "kaggle_kit_model.json").exists()


@pytest.mark.parametrize("command", [["push-kernel", "train", "--wait"], ["status", "tester/x", "--wait"],
                                     ["datasets", "status", "tester/xyzabc", "--wait"]])
@pytest.mark.parametrize("interval", ["-5", "0"])
def test_interval_must_be_positive(command, interval):
    result = run(*command, "--interval", interval)
    assert result.exit_code == 2 and "--interval" in result.output and "Traceback" not in result.output


def test_recipe_driven_flags_say_where_their_default_comes_from():
    text = run("train", "--help").output
    assert "--lr" in text and "from the backbone's recipe unless set" in text
    assert "[default: 0.001]" not in text


def test_submit_dry_run_uses_the_local_sample_submission_and_says_so(project, small_files):
    """No server answers in tests: a dry run that asked Kaggle for its sample_submission would fail."""
    (project / "data").mkdir()
    (project / "data" / "sample_submission.csv").write_bytes(small_files.sample_submission.read_bytes())
    result = run("submit", small_files.sample_submission, "-m", "try", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: nothing sent" in result.output and "valid against data/sample_submission.csv" in result.output


def test_recipe_sources_cite_public_sources():
    from kaggle_kit.config.recipes import RECIPES

    for recipe in RECIPES.values():
        assert "shared/docs" not in recipe.source
        assert recipe.name == "cpu-smoke" or "https://" in recipe.source, recipe.source
