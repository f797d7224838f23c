"""Issue 30 (part a), a third newcomer pass: files lost, tracebacks, and "ok" said about wrong input. Each test is a
repro of the issue run as the newcomer ran it (real commands, real files, the real kaggle client against the fake
server of tests/fake_kaggle.py), failing on the code before the fix."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from conftest import one_line_error, quick_config
from conftest import run_cli as run
from kaggle_kit.competition.sample_data import write_sample_data
from kaggle_kit.competition.spec import LMSYS, get_spec, project_spec
from kaggle_kit.config import config_from_dict
from kaggle_kit.errors import DataError, KitError

WSDM = "wsdm-cup-multilingual-chatbot-arena"




# ---- files lost
@pytest.mark.parametrize("victim", ["test.csv", "sample_submission.csv"])
def test_predict_probabilities_never_replaces_an_input_and_is_checked_before_inference(tmp_path, monkeypatch, victim):
    """--probabilities FILE --overwrite, FILE the test file or the data folder's sample_submission: refused before any
    model is even looked at (the model dir given does not exist, so reaching inference would fail differently)."""
    monkeypatch.chdir(tmp_path)
    files = write_sample_data(tmp_path / "data", rows=12, test_rows=4)
    before = (tmp_path / "data" / victim).read_bytes()
    result = run("predict", "--test", files.test, "--model", "no-model-here", "--out", "sub.csv",
                 "--probabilities", tmp_path / "data" / victim, "--overwrite")
    one_line_error(result, f"--probabilities {tmp_path / 'data' / victim} is also an input", code=2)
    assert (tmp_path / "data" / victim).read_bytes() == before
    (tmp_path / "a-file").write_text("x")  # a path under a regular file cannot be created, even by root
    one_line_error(run("predict", "--test", files.test, "--model", "no-model-here", "--out", "sub.csv",
                       "--probabilities", tmp_path / "a-file" / "probs.csv"), "cannot create")
    one_line_error(run("predict", "--test", files.test, "--model", "no-model-here", "--out", "sub.csv",
                       "--probabilities", "sub.csv"), "--probabilities sub.csv is also --out", code=2)


@pytest.mark.parametrize("key, value", [("sample_submission_file", "../victim.csv"),
                                        ("submission_file", "out/submission.csv"), ("train_file", "../t.parquet"),
                                        ("test_file", "..")])
def test_every_spec_file_name_is_a_plain_name(key, value):
    table = {"slug": "my-arena", "based_on": WSDM, key: value}
    with pytest.raises(KitError, match=f"{key} '{value}' must be a plain file name"):
        project_spec(table)


@pytest.mark.parametrize("slug", ["My Arena/../x", "../x", "a/b", "UPPER", "x-"])
def test_a_competition_slug_is_a_kaggle_slug(slug):
    with pytest.raises(KitError, match="must be a Kaggle competition slug"):
        config_from_dict({"competition": {"slug": slug, "based_on": WSDM}})
    assert project_spec({"slug": "my-arena-2", "based_on": WSDM}).slug == "my-arena-2"


def test_sample_data_never_writes_outside_its_folder(tmp_path, monkeypatch):
    """The repro: sample_submission_file = "../victim.csv" and a DIR that does not exist yet replaced ./victim.csv."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "victim.csv").write_text("precious\n")
    (tmp_path / "kaggle-kit.toml").write_text('[competition]\nslug = "my-arena"\nbased_on = "lmsys-chatbot-arena"\n'
                                              'sample_submission_file = "../victim.csv"\n')
    one_line_error(run("sample-data", "new-dir", "--rows", 12), "sample_submission_file '../victim.csv' must be a "
                                                                "plain file name")
    assert (tmp_path / "victim.csv").read_text() == "precious\n" and not (tmp_path / "new-dir").exists()
    with pytest.raises(KitError, match="must be a plain file name"):  # a spec built in code is checked too
        write_sample_data(tmp_path / "other", rows=12, spec=replace(LMSYS, sample_submission_file="../victim.csv"))
    assert (tmp_path / "victim.csv").read_text() == "precious\n"


def test_push_kernel_pushes_the_tested_build_or_names_what_differs(project, fake):
    """build -> run -> push: what was built (and run) is what is pushed; a build the config no longer makes is refused
    with what differs, and replaced only with --rebuild."""
    fake.session_polls = 0  # each pushed version ends at once: this test is about which bytes go out, not waiting
    build = project / "kernels" / "build" / "lmsys-train"
    assert run("build-kernel", "train").exit_code == 0
    built = (build / "lmsys-train.py").read_text()
    pushed = run("push-kernel", "train")
    assert pushed.exit_code == 0, pushed.output
    assert fake.kernels["tester/lmsys-train"]["last"]["text"] == built  # the tested bytes went to Kaggle

    (build / "lmsys-train.py").write_text(built + "# tried a fix here\n")
    line = one_line_error(run("push-kernel", "train"), "lmsys-train.py differs outside its embedded parts")
    assert "--rebuild" in line and (build / "lmsys-train.py").read_text().endswith("# tried a fix here\n")

    assert run("build-kernel", "train", "--overwrite").exit_code == 0
    meta = json.loads((build / "kernel-metadata.json").read_text())
    (build / "kernel-metadata.json").write_text(json.dumps({**meta, "is_private": False}))
    one_line_error(run("push-kernel", "train", "--dry-run"), "kernel-metadata.json is_private is False, the config "
                                                             "gives True")

    assert run("build-kernel", "train", "--overwrite").exit_code == 0
    toml = (project / "kaggle-kit.toml").read_text()
    (project / "kaggle-kit.toml").write_text(toml.replace("max_steps = 4", "max_steps = 5"))
    one_line_error(run("push-kernel", "train"), "the embedded config differs in train.max_steps")
    assert len(fake.calls("SaveKernel")) == 1
    rebuilt = run("push-kernel", "train", "--rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output
    (build / "kernel-metadata.json").write_text("{")  # a corrupt build: one line, replaced only with --rebuild
    one_line_error(run("push-kernel", "train"), "kernel-metadata.json is not valid JSON")
    assert run("push-kernel", "train", "--rebuild").exit_code == 0
    assert '"max_steps": 5' in fake.kernels["tester/lmsys-train"]["last"]["text"]


# ---- tracebacks
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
        one_line_error(run("predict", "--test", files.test, "--blend", path, "--out", tmp_path / "s.csv"), message)
        assert not (tmp_path / "s.csv").exists()


def test_run_kernel_with_a_corrupt_metadata_file_is_one_line(tmp_path):
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "kernel-metadata.json").write_text('{"code_file": "k.py", ')
    one_line_error(run("run-kernel", tmp_path / "build"), "kernel-metadata.json is not valid JSON")
    (tmp_path / "build" / "kernel-metadata.json").write_text('["k.py"]')
    one_line_error(run("run-kernel", tmp_path / "build"), "is not a kernel-metadata object")


def _simulated_kaggle(project, competition, backbone, monkeypatch):
    """/kaggle as a kernel sees it (today's layout) under project/kaggle, for the kernel's entry point in-process."""
    from kaggle_kit.kernel.inputs import competition_source, parse_source

    root = project / "kaggle"
    for source, folder in {competition_source("lmsys-chatbot-arena"): competition,
                           parse_source("tester/tiny-deberta-v3"): backbone}.items():
        where = source.layouts(root)["today"]
        where.parent.mkdir(parents=True, exist_ok=True)
        where.symlink_to(folder, target_is_directory=True)
    monkeypatch.setenv("KAGGLE_KIT_ROOT", str(root))
    monkeypatch.setenv("KAGGLE_KIT_ACCEPT_OTHER_ACCELERATOR", "1")  # a CPU here, a GPU on Kaggle
    return root


def _run_kernel_entry(cfg, capsys) -> str:
    """kernel/main.py main, as the built script calls it; returns the line it exits with."""
    from kaggle_kit.kernel.build import kernel_config
    from kaggle_kit.kernel.main import main as kernel_main
    from kaggle_kit.kernel.wheels import load_lock

    with pytest.raises(SystemExit) as stopped:
        kernel_main("train", kernel_config(cfg), {"task": "train", "lock": load_lock().to_dict()})
    assert "Traceback" not in capsys.readouterr().err
    return str(stopped.value.code)


def test_kernel_data_errors_are_one_kaggle_kit_line(project, small_files, tiny_backbone, monkeypatch, capsys):
    """Inside a kernel: a duplicate id in train.csv, and resuming an earlier session whose kaggle_kit_model.json is
    corrupt, each end the kernel with one `kaggle-kit:` line (SystemExit: no traceback), as mount errors do."""
    from kaggle_kit.config import load_config
    from kaggle_kit.kernel.inputs import parse_source

    comp = project / "comp"
    comp.mkdir()
    frame = pd.read_csv(small_files.train, dtype=str)
    frame.loc[1, "id"] = frame.loc[0, "id"]
    frame.to_csv(comp / "train.csv", index=False)
    root = _simulated_kaggle(project, comp, tiny_backbone, monkeypatch)
    line = _run_kernel_entry(load_config(), capsys)
    assert line.startswith("kaggle-kit: ") and "duplicate id(s)" in line, line

    earlier = parse_source("kernel:tester/lmsys-train").layouts(root)["today"] / "model"
    (earlier / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (earlier / "kaggle_kit_model.json").write_text('{"num_labels": 3, ')
    assert not (root / "working" / "model").exists()  # the refused run left no model dir behind to resume into
    cfg = load_config()
    cfg.kernel.resume_from = "tester/lmsys-train"
    line = _run_kernel_entry(cfg, capsys)
    assert line.startswith("kaggle-kit: ") and "kaggle_kit_model.json is corrupt" in line, line


# ---- said ok, but wrong
def test_blend_refuses_oof_labels_outside_the_classes(tmp_path):
    from kaggle_kit.inference.blending import read_oof

    rows = 12
    oof = pd.DataFrame({"id": [str(i) for i in range(rows)], "label": [0, 1, 2] * 3 + [5, 2, 1]})
    for column in LMSYS.label_columns:
        oof[column] = 1 / 3
    oof.to_csv(tmp_path / "oof.csv", index=False)
    with pytest.raises(DataError, match=r"1 row\(s\) with a label outside 0..2 .*e.g. 5 at id 9"):
        read_oof(tmp_path / "oof.csv", LMSYS)
    oof["label"] = 0
    oof.loc[2, LMSYS.label_columns[0]] = 1.5
    oof.to_csv(tmp_path / "oof.csv", index=False)
    with pytest.raises(DataError, match=r"probabilities are not in \[0, 1\] summing to 1 .*first id 2"):
        read_oof(tmp_path / "oof.csv", LMSYS)


@pytest.mark.parametrize("accelerator, enable_gpu, message", [
    ("None", True, 'accelerator "None" is the CPU but enable_gpu = true'),
    ("TpuV5E8", True, "accelerator TpuV5E8 is a TPU"),
    ("TpuV6E8", False, "accelerator TpuV6E8 is a TPU"),
    ("NvidiaTeslaT4", False, "enable_gpu = false with the GPU accelerator NvidiaTeslaT4"),
])
def test_build_kernel_refuses_an_accelerator_no_kaggle_kit_kernel_can_use(project, accelerator, enable_gpu, message):
    toml = (project / "kaggle-kit.toml").read_text()
    (project / "kaggle-kit.toml").write_text(toml.replace(
        "[kernel]\n", f'[kernel]\naccelerator = "{accelerator}"\nenable_gpu = {str(enable_gpu).lower()}\n'))
    one_line_error(run("build-kernel", "train"), message, code=2)
    assert not (project / "kernels").exists()


def test_a_cpu_kernel_still_builds(project):
    toml = (project / "kaggle-kit.toml").read_text()
    (project / "kaggle-kit.toml").write_text(toml.replace("[kernel]\n", '[kernel]\naccelerator = "None"\n'
                                                                        'enable_gpu = false\n'))
    built = run("build-kernel", "train", "--json")
    assert built.exit_code == 0, built.output
    assert json.loads(built.output)["metadata"]["machine_shape"] == "None"


def test_upload_model_of_an_empty_folder_creates_nothing(project, fake):
    (project / "empty").mkdir()
    one_line_error(run("upload", "model", "empty", "--dataset", "tester/my-model"), "empty: nothing to upload")
    one_line_error(run("upload", "model", "empty", "--dataset", "tester/my-model", "--dry-run"), "nothing to upload")
    (project / "only-checkpoints" / "checkpoints").mkdir(parents=True)
    (project / "only-checkpoints" / "checkpoints" / "x.bin").write_bytes(b"1")
    one_line_error(run("upload", "model", "only-checkpoints", "--dataset", "tester/my-model"),
                   "checkpoints are left out without --with-checkpoints")
    assert fake.calls("CreateDataset") == [] and fake.calls("CreateDatasetVersion") == []


@pytest.fixture(scope="module")
def wsdm_lists(tmp_path_factory):
    """WSDM sample data whose train parquet holds each prompt as a list of turns (as some exports do), with 30 rows
    repeated: 10 as they are, 10 with A and B exchanged, 10 in a second train file."""
    folder = tmp_path_factory.mktemp("wsdm-lists")
    files = write_sample_data(folder, rows=80, test_rows=10, seed=11, spec=get_spec(WSDM))
    train = pd.read_parquet(files.train)
    train["prompt"] = [np.array([p, f"and a follow-up on {k}"], dtype=object) for k, p in enumerate(train["prompt"])]
    same = train.iloc[:10].copy()
    same["id"] = same["id"] + "-again"
    swapped = train.iloc[10:20].copy()
    swapped["id"] = swapped["id"] + "-swapped"
    swapped[["response_a", "response_b"]] = swapped[["response_b", "response_a"]].to_numpy()
    swapped["winner"] = swapped["winner"].map({"model_a": "model_b", "model_b": "model_a"})
    pd.concat([train, same, swapped], ignore_index=True).to_parquet(files.train, index=False)
    second = train.iloc[20:30].copy()
    second["id"] = second["id"] + "-second"
    second.to_parquet(folder / "second.parquet", index=False)
    return files, folder / "second.parquet"


def test_list_prompt_cells_are_read_as_turns_with_a_note(wsdm_lists, caplog):
    from kaggle_kit.data.reading import read_train

    files, _ = wsdm_lists
    with caplog.at_level(logging.WARNING):
        pairs = read_train(files.train, get_spec(WSDM))
    assert pairs.texts["prompt"][0] == [pd.read_parquet(files.train)["prompt"][0][0], "and a follow-up on 0"]
    assert not any("['" in turn for turns in pairs.texts["prompt"] for turn in turns)  # never numpy's repr
    notes = [r.getMessage() for r in caplog.records if "hold lists" in r.getMessage()]
    assert len(notes) == 1 and "column(s) prompt hold lists, not text: each list is read as turns" in notes[0]


def test_duplicates_are_said_once_and_pseudo_labels_say_they_are_hard(wsdm_lists, tiny_backbone, tmp_path,
                                                                       monkeypatch, caplog):
    """train over both files: 30 duplicate rows dropped (10 within the file in the same order, 10 with A/B exchanged,
    10 across files) and said in one line; then pseudo-label for WSDM (a label column) says its labels are hard."""
    from kaggle_kit.training.train import train

    files, second = wsdm_lists
    with caplog.at_level(logging.WARNING):
        train([files.train, second], tmp_path / "model", quick_config(tiny_backbone, max_steps=2, eval_steps=2),
              get_spec(WSDM))
    said = [r.getMessage() for r in caplog.records if "duplicate rows" in r.getMessage()]
    assert said == ["note: dropped 30 duplicate rows (the same prompt and responses, in either A/B order, within or "
                    "across the train files): 30 of 110 rows"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text(f'competition = "{WSDM}"\n')
    result = run("pseudo-label", "--model", tmp_path / "model", "--input", files.test, "--out", "pl.csv")
    assert result.exit_code == 0, result.output
    assert "pseudo-label writes hard labels (each row's most probable class), not probabilities" in result.output
    assert set(pd.read_csv(tmp_path / "pl.csv")["winner"]) <= {"model_a", "model_b"}


def test_numbers_and_json_of_other_files_are_checked_in_one_line(tmp_path):
    """The same kind elsewhere: a model dir's temperature of Infinity, a corrupt cv.json behind an oof.csv, a corrupt
    notebook build given to run-kernel."""
    files = write_sample_data(tmp_path / "data", rows=12, test_rows=4)
    model = tmp_path / "model"
    model.mkdir()
    info = {"backbone": "bb", "model_type": "deberta-v2", "num_labels": 3, "encoding": {}, "temperature": float("inf")}
    (model / "kaggle_kit_model.json").write_text(json.dumps(info))
    one_line_error(run("predict", "--test", files.test, "--model", model, "--out", tmp_path / "s.csv"),
                   "temperature inf must be a finite number > 0")
    (model / "kaggle_kit_model.json").write_text(json.dumps({**info, "temperature": 1.0, "num_labels": 7}))
    one_line_error(run("predict", "--test", files.test, "--model", model, "--out", tmp_path / "s.csv"),
                   "num_labels 7 must be 2 or 3")

    (tmp_path / "cv").mkdir()
    (tmp_path / "cv" / "oof.csv").write_text("id,label\n1,0\n")
    (tmp_path / "cv" / "cv.json").write_text('{"per_fold": [')
    one_line_error(run("blend", "--oof", tmp_path / "cv" / "oof.csv", "--out", tmp_path / "b.json"),
                   "cv.json is corrupt")

    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "kernel-metadata.json").write_text('{"code_file": "k.ipynb"}')
    (tmp_path / "nb" / "k.ipynb").write_text('{"cells": [')
    one_line_error(run("run-kernel", tmp_path / "nb", "--working", tmp_path / "w"),
                   "k.ipynb is not a readable notebook")


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
        one_line_error(run("build-kernel", "infer"), message)
    assert not (project / "kernels").exists()
