"""Issue 30 (b): messages that pointed the wrong way, each repro run as the newcomer ran it (real commands, real
files, the real kaggle client against tests/fake_kaggle.py or a silent socket)."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import one_line_error
from conftest import run_cli as run
from kaggle_kit.competition.spec import LMSYS
from kaggle_kit.data.reading import read_test
from kaggle_kit.errors import DataError
from kaggle_kit.model.model_dir import CHECKPOINTS, MODEL_FILE

CUSTOM = '[competition]\nbased_on = "lmsys-chatbot-arena"\nslug = "my-arena"\n'




# ---- cv's hints name what cv has
def test_an_interrupted_cv_fold_is_resumed_with_train_not_a_cv_flag(tmp_path, small_files, tiny_backbone):
    """A fold folder holding checkpoints but no finished model is what a killed `cv` leaves (made by hand here)."""
    out = tmp_path / "cv"
    (out / "fold-0" / CHECKPOINTS / "checkpoint-2").mkdir(parents=True)
    line = one_line_error(run("cv", "--train", small_files.train, "--folds", 2, "--out", out, "--backbone",
                              tiny_backbone), "holds interrupted fold(s) 0")
    assert f"`train --fold 0/2 --resume --out {out / 'fold-0'}`" in line and "pass --resume" not in line
    assert not (out / "fold-1").exists()  # refused before any fold trained


def test_cv_help_offers_no_time_budget_that_promises_resume():
    text = run("cv", "--help").output
    assert "--time-budget" not in text and "--resume" not in text


def test_finished_folds_hint_names_cv_gather(tmp_path, small_files, tiny_backbone):
    """A MODEL_FILE in fold-0 stands in for a finished fold (the real gather is run in test_cv_blend)."""
    out = tmp_path / "cv"
    (out / "fold-0").mkdir(parents=True)
    (out / "fold-0" / MODEL_FILE).write_text("{}")
    line = one_line_error(run("cv", "--train", small_files.train, "--folds", 2, "--out", out, "--backbone",
                              tiny_backbone), "already holds fold(s) 0")
    assert "`cv --gather" in line and "`cv gather`" not in line


# ---- doctor honours KAGGLE_KIT_TIMEOUT
@pytest.fixture
def silent_server(monkeypatch):
    """A proxy that accepts connections and never answers: stands in for a hung Kaggle (the real client, its own
    HTTP stack, waits forever; only our timeout ends the call)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    for key, value in {"HTTP_PROXY": base, "http_proxy": base, "NO_PROXY": "", "no_proxy": ""}.items():
        monkeypatch.setenv(key, value)
    yield
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_doctor_uses_kaggle_kit_timeout(tmp_path, monkeypatch, silent_server):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KAGGLE_KIT_TIMEOUT", "0.5")
    start = time.monotonic()
    result = run("doctor", "--json")
    took = time.monotonic() - start
    checks = {c["name"]: c for c in json.loads(result.output)}
    assert not checks["competition rules"]["ok"] and "no answer within" in checks["competition rules"]["detail"]
    assert took < 10, took  # three tries of 0.5 s and their backoff, not three of a fixed 30 s


# ---- files that other tools write
def test_a_toml_with_a_utf8_bom_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_bytes(b"\xef\xbb\xbf" + b'username = "tester"\n[train]\nmax_len = 128\n')
    result = run("config", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["train"]["max_len"] == 128


@pytest.mark.parametrize("cell, shown", [("", "''"), ("nan", "'nan'")])
def test_a_blank_or_nan_test_id_names_its_row(tmp_path, small_files, cell, shown):
    test = pd.read_csv(small_files.test, dtype=str, keep_default_na=False)
    test.loc[3, "id"] = cell
    test.to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(DataError) as caught:
        read_test(tmp_path / "test.csv", LMSYS)
    assert "1 do not, at row(s) 5 (" in caught.value.message and shown in caught.value.message


# ---- the project's own [competition] table is a competition like the shipped ones
def test_download_and_sample_data_accept_the_projects_own_competition(tmp_path, monkeypatch, fake):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text(CUSTOM)
    made = run("sample-data", "d", "--competition", "my-arena", "--rows", 20)
    assert made.exit_code == 0 and (tmp_path / "d" / "train.csv").is_file(), made.output
    fake.competitions["my-arena"] = {"files": {"train.csv": b"x"}}
    listed = run("download", "--competition", "my-arena", "--dry-run", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)["to"] == str(Path("data") / "my-arena")


def test_download_to_a_file_is_refused_before_any_request(tmp_path, monkeypatch, fake):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here.csv").write_text("x\n")
    one_line_error(run("download", "--to", "here.csv"), "here.csv is a file")
    assert fake.requests == []


# ---- remote commands check what they can before asking Kaggle
def test_datasets_status_checks_owner_slug_locally(fake):
    one_line_error(run("datasets", "status", "nope"), "'nope' must be owner/slug", code=2)
    assert fake.requests == []


def test_upload_says_a_new_version_in_words(tmp_path, fake):
    """The second upload of a dataset is a new version (where the fake keeps datasets between calls). A folder with
    two small files stands in for a trained model dir: upload stages and sends the files there, whatever they hold."""
    model = tmp_path / "model"
    model.mkdir()
    (model / MODEL_FILE).write_text("{}")
    (model / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    said = []
    for _ in range(2):
        result = run("upload", "model", model, "--dataset", "tester/model-words")
        assert result.exit_code == 0, result.output
        said.append(result.output.strip().splitlines()[-1])
    assert said[0].startswith("created tester/model-words: "), said
    assert said[1].startswith(("new version of tester/model-words: ", "created ")) and "versiond" not in said[1]
    if fake.calls("CreateDatasetVersion"):
        assert said[1].startswith("new version of tester/model-words: "), said


def test_submit_dry_run_after_the_deadline_says_the_real_one_would_be_refused(project, fake, small_files):
    fake.competitions["lmsys-chatbot-arena"] = {"deadline": "2026-01-01T00:00:00Z"}
    result = run("submit", small_files.sample_submission, "-m", "late", "--dry-run", "--sample-submission",
                 small_files.sample_submission)
    assert result.exit_code == 1, result.output
    assert "nothing sent" in result.output and "the real submit would be refused: the competition closed" in \
        result.output
    assert fake.calls("CreateSubmission") == [] and fake.calls("StartSubmissionUpload") == []


# ---- kernels
def test_a_kaggle_model_without_version_is_refused_where_it_is_given(tmp_path, monkeypatch):
    line = one_line_error(run("blend", "--oof", tmp_path / "missing.csv", "--out", tmp_path / "b.json",
                              "--backbone-source", "bb=google/gemma-2/transformers/gemma-2-2b-it"), "has no version",
                          code=2)
    assert "--backbone-source" in line  # before the OOF file is even read
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text('[datasets]\nbackbone = "google/gemma-2/transformers/gemma-2-2b-it"\n')
    one_line_error(run("config"), "a Kaggle Model without its version")


def test_run_kernel_refuses_a_twice_given_input_and_a_run_that_did_nothing(project, small_files):
    assert run("build-kernel", "train", "--out", "kb/train").exit_code == 0
    comp = small_files.train.parent
    twice = run("run-kernel", "kb/train", "--input", f"lmsys-chatbot-arena={comp}", "--input",
                f"lmsys-chatbot-arena={project}")
    one_line_error(twice, "lmsys-chatbot-arena is given twice", code=2)
    nothing = run("run-kernel", "kb/train", "--python", "/bin/true", "--working", "w")
    line = one_line_error(nothing, "the kernel produced nothing")
    assert "without running kaggle-kit" in line


def test_init_writes_the_chosen_competitions_slugs(tmp_path):
    assert run("init", tmp_path / "p", "--competition", "wsdm-cup-multilingual-chatbot-arena").exit_code == 0
    text = (tmp_path / "p" / "kaggle-kit.toml").read_text()
    assert 'train_slug = "wsdm-train"' in text and 'infer_slug = "wsdm-infer"' in text
    assert "lmsys-train" not in text and "lmsys-model" not in text and "(LMSYS: " not in text
    assert "/kaggle/input/datasets/<owner>/<slug>" in text  # today's mount path first, the legacy one as the older
