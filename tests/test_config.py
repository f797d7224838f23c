"""Config values are typed and range-checked when kaggle-kit.toml is read, and the same rules apply to flags."""

import json
import re

import pytest
from click.testing import CliRunner

from conftest import run_cli
from kaggle_kit.cli import main
from kaggle_kit.config import TrainConfig, config_from_dict, with_overrides
from kaggle_kit.errors import KitError


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("toml, message", [
    ('[train]\nmax_len = "512"\n', "max_len must be an integer, got '512'"),
    ("[train]\nbatch_size = -3\n", "batch_size must be >= 1, got -3"),
    ("[train]\nmax_len = 1\n", "max_len must be >= 16, got 1"),
    ("[train]\nepochs = 0\n", "epochs must be >= 0.01"),
    ("[train]\nlearning_rate = 0\n", "learning_rate must be >= 1e-08"),
    ("[train]\nmax_steps = 0\n", "max_steps must be -1 (use --epochs) or at least 1"),
    ('[train]\nfold = "3"\n', "fold must be of the form i/k"),
    ("[column_maps]\nx = 3\n", "[column_maps.x] must be a table"),
    ('[kernel]\nenable_gpu = "no"\n', "enable_gpu must be true or false, got 'no'"),
    ('[kernel]\naccelerator = "NvidiaTeslaK80"\n', "accelerator is not a Kaggle accelerator (known: NvidiaTeslaT4"),
    ('[datasets]\nmodel = "just-a-slug"\n', "model must be a dataset owner/slug or a Kaggle Model"),
    ('[datasets]\nbackbone = "google/gemma-2/transformers/2b/v1"\n', "backbone must be a dataset owner/slug or a"),
    ('[kernel]\naccelerator = "NvidiaTeslaP100"\n', "use NvidiaTeslaT4 (T4 x2) or NvidiaL4"),
    ('[kernel]\ninfer_internet = true\n', "infer_internet must be false"),
    ('[kernel]\nimage_pinning = "newest"\n', "image_pinning must be one of original, latest"),
    ('[kernel]\nmax_gpu_sessions = 0\n', "max_gpu_sessions must be >= 1"),
    ('username = "your-kaggle-username"\n', "placeholder"),
    ('[predict]\ntta = "flip"\n', "tta must be one of none, swap"),
])
def test_bad_toml_values_are_one_line_errors(tmp_path, toml, message):
    path = tmp_path / "kaggle-kit.toml"
    path.write_text(toml)
    result = run("config", "--config", path)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("flag, value, message", [
    ("--lora-dropout", "2", "must be <= 0.9"),
    ("--lr", "-1", "must be >= 1e-08"),
    ("--max-len", "1000000000", "must be <= 131072"),
    ("--epochs", "0", "must be >= 0.01"),
    ("--epochs", "-1", "must be >= 0.01"),
    ("--batch-size", "x", "'x' is not an integer"),
    ("--fold", "5/5", "needs k >= 2 and 0 <= i < k"),
])
def test_bad_train_flags_are_usage_errors_before_any_work(tmp_path, flag, value, message):
    result = run("train", "--train", tmp_path / "none.csv", "--out", tmp_path / "m", flag, value)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "m").exists()


def test_flags_come_from_the_config_fields_with_help_and_defaults():
    result = run("train", "--help")
    text = " ".join(result.output.split())  # click wraps help lines wherever the width falls
    # recipe-driven settings say what runs when unset (issue 24: --lr showed 0.001 but small backbones train at 3e-4)
    for flag, default in (("--max-len", "1024, or the recipe's"), ("--lr", "0.001, or the recipe's"),
                          ("--max-steps", "-1")):
        assert flag in result.output
        assert re.search(rf"{flag} [A-Z]+ [^\[]*\[default: {re.escape(default)}\]", text), flag
    names = {p.name for p in main.commands["train"].params}
    visible = {f for f, meta in TrainConfig.__dataclass_fields__.items() if meta.metadata.get("cli")}
    assert visible <= names  # every setting with a flag keeps it (shown, or a hidden alias)
    assert all(p.help for p in main.commands["train"].params if p.name not in ("help",))
    assert all(p.help for p in main.commands["predict"].params if p.name not in ("help",))


def test_overrides_are_checked_and_unknown_settings_refused():
    cfg = config_from_dict({"train": {"max_len": 512}}).train
    assert with_overrides(cfg, max_len=256, lora_r=None).max_len == 256
    with pytest.raises(KitError, match="max_len must be >= 16"):
        with_overrides(cfg, max_len=3)
    with pytest.raises(KitError, match="unknown setting"):
        with_overrides(cfg, max_lenn=3)


def test_config_json_is_the_resolved_typed_config(tmp_path):
    path = tmp_path / "kaggle-kit.toml"
    path.write_text('[kernel]\nenable_gpu = false\n[train]\nepochs = 1\n')
    data = json.loads(run("config", "--config", path, "--json").stdout)
    assert data["kernel"]["enable_gpu"] is False and data["train"]["epochs"] == 1
    assert data["sources"]["train.epochs"] == str(path) and data["sources"]["train.seed"] == "default"


def test_a_toml_with_a_utf8_bom_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_bytes(b"\xef\xbb\xbf" + b'username = "tester"\n[train]\nmax_len = 128\n')
    result = run_cli("config", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["train"]["max_len"] == 128
