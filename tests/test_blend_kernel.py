"""Fitted blends under a time budget: predict --blend blend.json --time-budget, and the infer kernel with both,
each member's backbone mounted and resolved on its own; impossible combinations refused at build time."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import one_line_error, quick_config, run_cli
from kaggle_kit.cli import main
from kaggle_kit.competition.sample_data import write_sample_data
from kaggle_kit.competition.spec import LMSYS
from kaggle_kit.data.reading import read_test
from kaggle_kit.inference.blend_run import blend_run
from kaggle_kit.inference.blending import read_blend
from kaggle_kit.submission import validate_file
from kaggle_kit.training.cv import OOF_FILE, run_cv

LABELS = ["winner_model_a", "winner_model_b", "winner_tie"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def blend_dataset(tmp_path_factory, small_files, tiny_backbone):
    """The folder an infer kernel mounts as [datasets] model: two cv runs (2 folds each) and their blend.json."""
    folder = tmp_path_factory.mktemp("ds") / "lmsys-blend"
    for name, seed in (("cvA", 1), ("cvB", 2)):
        run_cv([small_files.train], folder / name, 2, quick_config(tiny_backbone, max_steps=3, seed=seed,
                                                                  learning_rate=5e-3), LMSYS, echo=lambda m: None)
    result = run("blend", "--oof", folder / "cvA" / OOF_FILE, "--oof", folder / "cvB" / OOF_FILE, "--train",
                 small_files.train, "--backbone-source", "tiny-deberta-v3=tester/tiny-deberta-v3", "--out",
                 folder / "blend.json", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads((folder / "blend.json").read_text())
    if sum(m["weight"] > 0 for m in data["members"]) < 2:  # keep both members in play for the budget
        for m in data["members"]:
            m["weight"] = 0.5
        (folder / "blend.json").write_text(json.dumps(data))
    return folder


def test_blend_json_records_backbones_and_lays_members_out_by_value(blend_dataset):
    data = json.loads((blend_dataset / "blend.json").read_text())
    assert {m["backbone"] for m in data["members"]} == {"tiny-deberta-v3"}
    assert {m["backbone_source"] for m in data["members"]} == {"tester/tiny-deberta-v3"}
    assert "cv_blend_log_loss" in data["report"]
    blend = read_blend(blend_dataset / "blend.json")
    blend.members[0].weight, blend.members[1].weight = 0.2, 0.8
    laid = blend_run(blend, lambda m: None)
    assert laid.names == [blend.members[1].name, blend.members[0].name]  # the heavier member first
    assert laid.member_of == [0, 0, 1, 1] and laid.values[1] < laid.values[0]  # a second fold is worth less
    assert laid.values[2] < laid.values[0]


def test_predict_blend_json_under_a_time_budget(blend_dataset, small_files, tmp_path):
    out = tmp_path / "sub.csv"
    result = run("predict", "--test", small_files.test, "--blend", blend_dataset / "blend.json", "--time-budget",
                 "1h", "--rules", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["prior_rows"] == 0 and report["model_rows"] == [report["rows"]] * 4  # every fold of both
    assert len(report["blend_members"]) == 2 and [s["stage"] for s in report["stages"]].count("load") == 4
    assert validate_file(out, read_test(small_files.test, LMSYS).ids, LMSYS).ok
    plain = tmp_path / "plain.csv"
    assert run("predict", "--test", small_files.test, "--blend", blend_dataset / "blend.json", "--rules",
               "--out", plain).exit_code == 0
    assert np.allclose(pd.read_csv(out)[LABELS], pd.read_csv(plain)[LABELS], atol=1e-6)  # same blend, fold by fold


def test_infer_kernel_with_blend_rules_and_time_budget(project, blend_dataset, small_files, tiny_backbone):
    with open(project / "kaggle-kit.toml", "a") as fh:
        fh.write('[predict]\nblend = "blend.json"\nrules = true\ntime_budget = "2m"\n')
    toml = (project / "kaggle-kit.toml").read_text()
    (project / "kaggle-kit.toml").write_text(toml.replace('[datasets]\n', '[datasets]\nmodel = "tester/lmsys-blend"\n'))
    refused = run("build-kernel", "infer", "--out", "kb/infer")  # the blend.json is not here yet
    assert refused.exit_code != 0 and "blend.json: not found here" in refused.output
    (project / "lmsys-blend").symlink_to(blend_dataset, target_is_directory=True)
    built = run("build-kernel", "infer", "--out", "kb/infer", "--json")
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout)["metadata"]["dataset_sources"][:2] == ["tester/lmsys-blend",
                                                                          "tester/tiny-deberta-v3"]
    result = run("run-kernel", "kb/infer", "--input", f"lmsys-chatbot-arena={small_files.train.parent}", "--input",
                 f"tester/tiny-deberta-v3={tiny_backbone}", "--input", f"tester/lmsys-blend={blend_dataset}",
                 "--working", "work-infer")
    assert result.exit_code == 0, result.output
    report = json.loads((project / "work-infer" / "kaggle_kit_run.json").read_text())
    assert report["budget_s"] == 120 and report["prior_rows"] == 0 and len(report["blend_members"]) == 2
    assert "rules" in report
    assert run("validate", "work-infer/submission.csv", "--test", small_files.test).exit_code == 0


def test_blend_without_a_backbone_source_is_refused_at_build_time(project, blend_dataset, tmp_path):
    copy = project / "lmsys-blend"
    shutil.copytree(blend_dataset, copy, symlinks=True)
    data = json.loads((copy / "blend.json").read_text())
    for m in data["members"]:
        m["backbone_source"] = None
    (copy / "blend.json").write_text(json.dumps(data))
    toml = (project / "kaggle-kit.toml").read_text().replace('backbone = "tester/tiny-deberta-v3"\n',
                                                             'model = "tester/lmsys-blend"\n')
    (project / "kaggle-kit.toml").write_text(toml + '[predict]\nblend = "blend.json"\n')
    refused = run("build-kernel", "infer", "--out", "kb/x")
    assert refused.exit_code != 0 and "has no backbone source and no merged/ model" in refused.output
    assert "Traceback" not in refused.output and not (project / "kb" / "x").exists()


def test_blend_json_members_without_model_dirs_and_non_finite_numbers_are_one_line(tmp_path):
    """A hand-edited blend.json: each value checked when read, before any model dir is looked at."""
    files = write_sample_data(tmp_path / "data", rows=12, test_rows=4)
    good = {"format": 1, "kind": "kaggle-kit blend", "temperature": 1.0, "rules": [],
            "members": [{"name": "a", "weight": 1.0, "model_dirs": ["fold-0"]}]}
    cases = {"member a: model_dirs is empty": {"members": [{"name": "a", "weight": 1.0, "model_dirs": []}]},
             "weight inf must be a finite": {"members": [{"name": "a", "weight": float("inf"), "model_dirs": ["f"]}]},
             "weight nan must be a finite": {"members": [{"name": "a", "weight": 0.5, "model_dirs": ["f"]},
                                                         {"name": "b", "weight": float("nan"), "model_dirs": ["f"]}]},
             "temperature inf must be a finite": {"temperature": float("inf")},
             "'1' is not a number": {"temperature": "1"}}
    for message, change in cases.items():
        path = tmp_path / "blend.json"
        path.write_text(json.dumps({**good, **change}))  # Python's json writes and reads Infinity / NaN
        one_line_error(run_cli("predict", "--test", files.test, "--blend", path, "--out", tmp_path / "s.csv"), message)
        assert not (tmp_path / "s.csv").exists()


def test_build_kernel_refuses_a_blend_json_predict_would_refuse(project):
    """build-kernel infer reads the blend.json to mount each member's backbone: a weight of Infinity or a used member
    without model dirs is refused there, at build time, not first inside the kernel."""
    toml = (project / "kaggle-kit.toml").read_text().replace("[datasets]\n", '[datasets]\nmodel = "tester/blend"\n')
    (project / "kaggle-kit.toml").write_text(toml + '[predict]\nblend = "blend.json"\n')
    member = {"name": "a", "weight": float("inf"), "model_dirs": ["fold-0"], "backbone": "tiny-deberta-v3"}
    for change, message in (({}, "member a: weight inf must be a finite number >= 0"),
                            ({"weight": 1.0, "model_dirs": []}, "member a: model_dirs is empty")):
        (project / "blend.json").write_text(json.dumps({"format": 1, "kind": "kaggle-kit blend", "temperature": 1.0,
                                                        "members": [{**member, **change}]}))
        one_line_error(run_cli("build-kernel", "infer"), message)
    assert not (project / "kernels").exists()
