"""Datasets, submissions and competition download: the REAL kaggle client against the fake server."""

import io
import json
import re
import tempfile
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import one_line_error, run_cli
from kaggle_kit.cli import main
from kaggle_kit.competition.spec import LMSYS
from kaggle_kit.errors import KitError
from kaggle_kit.model.model_dir import MODEL_FILE
from kaggle_kit.remote.submit import submit_file, submit_kernel

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_upload_model_creates_then_versions_and_excludes(project, fake, trained):
    model = project / "model"
    import shutil

    shutil.copytree(trained.out_dir, model)
    (model / ".env").write_text("WANDB_API_KEY=SECRET")
    (model / "kaggle.json").write_text('{"key": "SECRET"}')
    first = run("upload", "model", model, "--dataset", "tester/lmsys-model", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["action"] == "create"
    created = fake.calls("CreateDataset")[0]["body"]
    assert created["slug"] == "lmsys-model"
    sent = b"".join(fake.blobs.values())
    assert b"SECRET" not in sent
    names = [c["body"]["name"] for c in fake.calls("StartBlobUpload")]
    assert "adapter.zip" in names
    assert "checkpoints.zip" not in names and ".env" not in names and "kaggle.json" not in names
    assert not (model / "dataset-metadata.json").exists()  # the user's folder is never written
    second = run("upload", "model", model, "--dataset", "tester/lmsys-model", "-m", "v2", "--json")
    assert json.loads(second.stdout)["action"] == "version"
    assert fake.calls("CreateDatasetVersion")[0]["body"]["body"]["versionNotes"] == "v2"


def test_upload_dry_run_sends_nothing(project, fake, trained):
    result = run("upload", "model", trained.out_dir, "--dataset", "tester/lmsys-model", "--dry-run")
    assert result.exit_code == 0 and fake.requests == []


def test_upload_resumes_after_failed_put(project, fake, tmp_path):
    folder = tmp_path / "stuff"
    folder.mkdir()
    (folder / "data.bin").write_bytes(b"x" * 1000)
    fake.fail_next_put = 500
    assert run("upload", "model", folder, "--dataset", "tester/stuff-data").exit_code == 1
    assert run("upload", "model", folder, "--dataset", "tester/stuff-data").exit_code == 0
    assert "tester/stuff-data" in fake.datasets
    probes = [r for r in fake.calls("PUT") if r["headers"].get("Content-Range", "").startswith("bytes */")]
    assert probes, "the second run should resume the stored upload session"


def test_invalid_submission_refused_before_any_request(project, fake, small_files):
    bad = pd.read_csv(small_files.sample_submission).iloc[1:]
    bad.to_csv(project / "bad.csv", index=False)
    with pytest.raises(KitError, match="invalid"):
        submit_file(project / "bad.csv", "x", LMSYS, small_files.sample_submission, NOW)
    assert fake.requests == []


def test_file_and_code_submission_with_limits(project, fake, small_files):
    fake.hide_new_submission = 0  # absent-for-a-moment has its own test
    fake.competitions["lmsys-chatbot-arena"] = {"deadline": "2026-12-31T23:59:00Z"}
    result = submit_file(small_files.sample_submission, "first", LMSYS, small_files.sample_submission, NOW)
    assert result["remaining_today"] == 4 and len(fake.blobs) == 1
    code = submit_kernel("tester/lmsys-infer", 3, "code", LMSYS, NOW)
    body = fake.calls("CreateCodeSubmission")[0]["body"]
    assert body["kernelSlug"] == "lmsys-infer" and body["kernelVersion"] == 3 and code["remaining_today"] == 3
    listing = run("submissions", "--json")
    assert [s["description"] for s in json.loads(listing.stdout)] == ["code", "first"]
    fake.limits["numAllowedNow"] = 0
    with pytest.raises(KitError, match="no submissions left today"):
        submit_kernel("tester/lmsys-infer", 3, "again", LMSYS, NOW)


def test_deadline_refusal_and_warning(project, fake, small_files):
    fake.competitions["lmsys-chatbot-arena"] = {"deadline": "2026-11-25T20:00:00Z"}
    with pytest.raises(KitError, match="--force"):
        submit_kernel("tester/lmsys-infer", 1, "late", LMSYS, NOW)
    late = submit_kernel("tester/lmsys-infer", 1, "late", LMSYS, NOW, force=True)
    assert late["warning"].startswith("the deadline is in 8.0 h")
    with pytest.raises(KitError, match="closed"):
        submit_kernel("tester/lmsys-infer", 1, "too late", LMSYS, NOW + timedelta(days=1), force=True)


def test_submit_403_message(project, fake, small_files):
    """Rules not accepted: Kaggle's limits are all zero (not on a team), so the refusal comes before any upload; a
    403 from StartSubmissionUpload itself still names the rules page."""
    fake.competitions["lmsys-chatbot-arena"] = {"deadline": "2026-12-31T23:59:00Z", "forbidden": True}
    with pytest.raises(KitError, match=r"join the competition \(accept its rules\) first"):
        submit_file(small_files.sample_submission, "x", LMSYS, small_files.sample_submission, NOW)
    assert fake.calls("StartSubmissionUpload") == []
    fake.competitions["lmsys-chatbot-arena"]["forbidden"] = False
    fake.fail_next["StartSubmissionUpload"] = (403, {"code": 403, "message": "You must accept the rules"})
    with pytest.raises(KitError, match="accept the competition rules"):
        submit_file(small_files.sample_submission, "x", LMSYS, small_files.sample_submission, NOW)


def _zip(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in files:
            zf.write(path, path.name)
    return buffer.getvalue()


def test_download_verify_skip_corrupt_403_404(project, fake, small_files):
    files = [small_files.train, small_files.test, small_files.sample_submission]
    payload = _zip(files)
    fake.competitions["lmsys-chatbot-arena"] = {"files": {p.name: p.read_bytes() for p in files}, "zip": payload}
    first = run("download", "--to", "data", "--json")
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["train_rows"] == 120 and summary["test_rows"] == 24 and not summary["skipped"]
    assert json.loads(run("download", "--to", "data", "--json").stdout)["skipped"] is True
    (project / "data" / "test.csv").write_text("id,prompt\n")  # damage: the next run re-fetches
    fake.competitions["lmsys-chatbot-arena"]["zip"] = payload[: len(payload) // 2]
    corrupt = run("download", "--to", "data")
    assert corrupt.exit_code == 1 and "corrupt" in corrupt.output
    assert (project / "data" / "train.csv").read_bytes() == small_files.train.read_bytes()  # old files kept
    fake.competitions["lmsys-chatbot-arena"]["forbidden"] = True
    forbidden = run("download", "--to", "other")
    assert forbidden.exit_code == 1
    assert "accept the competition rules at" in forbidden.output and "/rules" in forbidden.output
    missing = run("download", "--competition", "lmsys-chatbot-arena", "--to", "x", "--dry-run")
    assert missing.exit_code == 1
    del fake.competitions["lmsys-chatbot-arena"]
    not_found = run("download", "--to", "y")
    assert not_found.exit_code == 1 and "not found (404" in not_found.output


def test_dataset_429_retried_and_status_wait(project, fake, tmp_path):
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    fake.fail_next["GetDatasetStatus"] = (429, {"code": 429, "message": "slow"}, {"Retry-After": "0"})
    result = run("upload", "model", folder, "--dataset", "tester/some-data", "--json")
    assert result.exit_code == 0, result.output
    # ours: 429 then 404 (retried, then "free"); the client's own check inside dataset_create_new; our READY wait
    assert len(fake.calls("GetDatasetStatus")) == 4 and json.loads(result.stdout)["action"] == "create"
    fake.datasets["tester/some-data"]["status"] = "READY"
    status = run("datasets", "status", "tester/some-data", "--wait", "--interval", "0.01")
    assert status.exit_code == 0 and "tester/some-data: ready" in status.output.lower()


def test_submit_fetches_sample_submission_when_none_is_local(project, fake, small_files):
    sample = small_files.sample_submission.read_bytes()
    fake.competitions["lmsys-chatbot-arena"] = {"deadline": "2026-12-31T23:59:00Z",
                                                "files": {"sample_submission.csv": sample}}
    good = submit_file(small_files.sample_submission, "ok", LMSYS, project / "missing.csv", NOW)
    assert good["ref"] and len(fake.calls("DownloadDataFile")) == 1
    bad = pd.read_csv(small_files.sample_submission).iloc[2:]
    bad.to_csv(project / "bad.csv", index=False)
    result = run("submit", project / "bad.csv", "-m", "x")
    assert result.exit_code == 1 and "2 missing id(s)" in result.output
    assert len(fake.calls("CreateSubmission")) == 1  # the invalid file never reached CreateSubmission


# ---- Kaggle's known traps and leftovers (issue 16)


def test_upload_checks_the_remote_file_list(project, fake, tmp_path):
    folder = tmp_path / "model"
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "weights.bin").write_bytes(b"w" * 300)
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        (folder / name).write_text(name * 10)
    ok = run("upload", "model", folder, "--dataset", "tester/verify-data", "--json")
    assert ok.exit_code == 0, ok.output
    assert len(fake.calls("ListDatasetFiles")) == 3  # five files at two per page: the pages were followed
    fake.drop_dataset_files = {"adapter/weights.bin"}
    dropped = run("upload", "model", folder, "--dataset", "tester/verify-data")
    assert dropped.exit_code == 1 and "missing adapter/weights.bin" in dropped.output
    fake.drop_dataset_files, fake.shrink_dataset_files = set(), {"b.txt"}
    shrunk = run("upload", "model", folder, "--dataset", "tester/verify-data")
    assert shrunk.exit_code == 1 and "size differs: b.txt (49 bytes, sent 50)" in shrunk.output


def test_upload_leaves_no_staged_copy(project, fake, tmp_path):
    folder = tmp_path / "stuff"
    folder.mkdir()
    (folder / "data.bin").write_bytes(b"x" * 100)
    staging_root = Path(tempfile.gettempdir())
    dry = run("upload", "model", folder, "--dataset", "tester/stuff-data", "--dry-run")
    assert dry.exit_code == 0 and "data.bin (100 bytes)" in dry.output and fake.requests == []
    assert list(staging_root.iterdir()) == []
    assert run("upload", "model", folder, "--dataset", "tester/stuff-data").exit_code == 0
    assert not (staging_root / "kaggle-kit-staging" / "stuff-data").exists()


def test_submission_error_prints_kaggles_description(project, fake, small_files):
    fake.hide_new_submission = 0  # scored at once: the 404-as-pending wait has its own test
    fake.competitions["lmsys-chatbot-arena"] = {"deadline": "2099-12-31T23:59:00Z"}
    ref = submit_file(small_files.sample_submission, "x", LMSYS, small_files.sample_submission, NOW)["ref"]
    fake.finish_submission(ref, "ERROR", error="Submission CSV has 3 columns, expected 4")
    waited = run("submissions", "--wait", ref)
    assert waited.exit_code == 1 and "Submission CSV has 3 columns, expected 4" in waited.output
    listing = run("submissions")
    assert "ERROR" in listing.output and "Submission CSV has 3 columns" in listing.output


def test_deadline_prints_no_microseconds(project, fake):
    fake.competitions["lmsys-chatbot-arena"] = {"deadline": "2099-12-31T23:59:00Z"}
    result = run("deadline")
    assert result.exit_code == 0, result.output
    assert "2099-12-31 23:59 UTC (" in result.output and "m left)" in result.output
    assert not re.search(r"\d\.\d{6}|\+00:00", result.output)


def test_submit_kernel_uses_the_last_completed_version(project, fake):
    fake.competitions["lmsys-chatbot-arena"] = {"deadline": "2099-12-31T23:59:00Z"}
    refused = run("submit", "--kernel", "tester/lmsys-infer", "-m", "x")
    assert refused.exit_code == 1 and "no completed version of tester/lmsys-infer" in refused.output
    assert fake.calls("CreateCodeSubmission") == []
    fake.fail_next["GetKernelSessionStatus"] = (404, {"code": 404, "message": "Not found"})  # a new kernel
    assert run("push-kernel", "infer").exit_code == 0  # version 1
    fake.kernel_status["tester/lmsys-infer"] = [("COMPLETE", "")]
    assert run("status", "tester/lmsys-infer").exit_code == 0  # version 1 COMPLETE, recorded
    assert run("push-kernel", "infer").exit_code == 0  # version 2, not finished
    fake.kernel_status["tester/lmsys-infer"] = [("RUNNING", "")]
    assert run("status", "tester/lmsys-infer").exit_code == 0
    saved = json.loads((project / ".kaggle-kit" / "kernels.json").read_text())["tester/lmsys-infer"]["versions"]
    assert [(v["version"], v["status"]) for v in saved] == [(1, "COMPLETE"), (2, "RUNNING")]
    assert all(v["pushed_at"] for v in saved)
    result = run("submit", "--kernel", "tester/lmsys-infer", "-m", "x", "--json")
    assert result.exit_code == 0, result.output
    assert fake.calls("CreateCodeSubmission")[0]["body"]["kernelVersion"] == 1


def test_a_test_run_leaves_no_temp_folders(tmp_path):
    """Run one small test in a child pytest with its own TMPDIR: only pytest's tmp_path tree may remain there."""
    import os
    import subprocess
    import sys

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    test = f"{Path(__file__).parent / 'test_kernels.py'}::test_bundle_never_contains_the_remote_package"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert [p.name for p in tmp.iterdir() if not p.name.startswith("pytest-of-")] == []


def test_commands_that_change_things_offer_a_dry_run():
    """Checked: push-kernel, upload and submit change Kaggle; download writes files. The rest only read."""
    for name in ("push-kernel", "upload", "submit", "download"):
        assert "dry_run" in [p.name for p in main.commands[name].params], name


@pytest.mark.parametrize("command", [["push-kernel", "train", "--wait"], ["status", "tester/x", "--wait"],
                                     ["datasets", "status", "tester/xyzabc", "--wait"]])
@pytest.mark.parametrize("interval", ["-5", "0"])
def test_interval_must_be_positive(command, interval):
    result = run_cli(*command, "--interval", interval)
    assert result.exit_code == 2 and "--interval" in result.output and "Traceback" not in result.output


def test_submit_dry_run_uses_the_local_sample_submission_and_says_so(project, small_files):
    """No server answers in tests: a dry run that asked Kaggle for its sample_submission would fail."""
    (project / "data").mkdir()
    (project / "data" / "sample_submission.csv").write_bytes(small_files.sample_submission.read_bytes())
    result = run_cli("submit", small_files.sample_submission, "-m", "try", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: nothing sent" in result.output and "valid against data/sample_submission.csv" in result.output


def test_upload_model_of_an_empty_folder_creates_nothing(project, fake):
    (project / "empty").mkdir()
    one_line_error(run_cli("upload", "model", "empty", "--dataset", "tester/my-model"), "empty: nothing to upload")
    one_line_error(run_cli("upload", "model", "empty", "--dataset", "tester/my-model", "--dry-run"),
                   "nothing to upload")
    (project / "only-checkpoints" / "checkpoints").mkdir(parents=True)
    (project / "only-checkpoints" / "checkpoints" / "x.bin").write_bytes(b"1")
    one_line_error(run_cli("upload", "model", "only-checkpoints", "--dataset", "tester/my-model"),
                   "checkpoints are left out without --with-checkpoints")
    assert fake.calls("CreateDataset") == [] and fake.calls("CreateDatasetVersion") == []


def test_download_to_a_file_is_refused_before_any_request(tmp_path, monkeypatch, fake):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here.csv").write_text("x\n")
    one_line_error(run_cli("download", "--to", "here.csv"), "here.csv is a file")
    assert fake.requests == []


def test_datasets_status_checks_owner_slug_locally(fake):
    one_line_error(run_cli("datasets", "status", "nope"), "'nope' must be owner/slug", code=2)
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
        result = run_cli("upload", "model", model, "--dataset", "tester/model-words")
        assert result.exit_code == 0, result.output
        said.append(result.output.strip().splitlines()[-1])
    assert said[0].startswith("created tester/model-words: "), said
    assert said[1].startswith(("new version of tester/model-words: ", "created ")) and "versiond" not in said[1]
    if fake.calls("CreateDatasetVersion"):
        assert said[1].startswith("new version of tester/model-words: "), said


def test_submit_dry_run_after_the_deadline_says_the_real_one_would_be_refused(project, fake, small_files):
    fake.competitions["lmsys-chatbot-arena"] = {"deadline": "2026-01-01T00:00:00Z"}
    result = run_cli("submit", small_files.sample_submission, "-m", "late", "--dry-run", "--sample-submission",
                 small_files.sample_submission)
    assert result.exit_code == 1, result.output
    assert "nothing sent" in result.output and "the real submit would be refused: the competition closed" in \
        result.output
    assert fake.calls("CreateSubmission") == [] and fake.calls("StartSubmissionUpload") == []
