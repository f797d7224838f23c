"""The runs ledger: train -> predict -> submit -> score linked in `runs`, two commands at once, a ledger that is
not ours or is newer, `runs --plot`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import one_line_error, run_cli
from kaggle_kit import ledger
from kaggle_kit.competition.spec import LMSYS
from kaggle_kit.errors import KitError


@pytest.fixture(autouse=True)
def project_ledger(monkeypatch):
    """These tests use the project's own ledger (.kaggle-kit/runs.sqlite), not the test session's."""
    monkeypatch.delenv(ledger.LEDGER_ENV, raising=False)


def _rows(*args) -> list[dict]:
    result = run_cli("runs", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_train_predict_submit_links_run_output_submission_and_score(fake, project, tiny_backbone, small_files):
    fake.scorer = lambda data: "1.0712"  # Kaggle's scorer, answering once the submission is listed
    trained = run_cli("train", "--train", small_files.train, "--out", "model", "--backbone", tiny_backbone)
    assert trained.exit_code == 0, trained.output
    holdout = json.loads(Path("model/metrics.json").read_text())["holdout"]["log_loss_calibrated"]
    predicted = run_cli("predict", "--test", small_files.test, "--model", "model", "--out", "sub.csv")
    assert predicted.exit_code == 0, predicted.output
    submitted = run_cli("submit", "sub.csv", "-m", "first try", "--sample-submission", small_files.sample_submission,
                        "--wait", "--interval", "0.05", "--json")
    assert submitted.exit_code == 0, submitted.output
    ref = json.loads(submitted.stdout)["ref"]
    assert json.loads(submitted.stdout)["scored"]["public_score"] == "1.0712"

    [row] = _rows("--offline")  # the score came with submit --wait: nothing left to ask Kaggle
    run, sub = row["run"], row["submission"]
    assert run["kind"] == "train" and run["model_dir"] == str(Path("model").resolve())
    assert run["score"] == holdout and run["score_kind"] == "holdout" and run["metric"] == "log_loss"
    assert run["model_digest"] and run["config_digest"] and run["data_digest"] and run["git_commit"] is None
    assert sub["ref"] == ref and sub["status"] == "COMPLETE" and sub["public_score"] == "1.0712"
    assert sub["file"] == str(Path("sub.csv").resolve()) and sub["file_sha256"] == ledger.file_sha256(Path("sub.csv"))
    table = run_cli("runs", "--offline")
    assert f"#{run['id']} train model" in table.output and f"ref {ref} COMPLETE" in table.output
    assert "1.0712" in table.output


def test_runs_refreshes_pending_scores_unless_offline(fake, project, small_files):
    fake.scorer = lambda data: "0.9876"
    submitted = run_cli("submit", small_files.sample_submission, "-m", "uniform", "--sample-submission",
                        small_files.sample_submission, "--json")
    assert submitted.exit_code == 0, submitted.output
    ref = json.loads(submitted.stdout)["ref"]
    listed = len(fake.calls("ListSubmissions"))
    [row] = _rows("--offline")
    assert row["run"] is None and row["submission"]["status"] == "PENDING"
    assert len(fake.calls("ListSubmissions")) == listed  # --offline asks Kaggle nothing

    sub = {}
    for _ in range(4):  # listed after a moment, scored a moment later (the fake's scorer)
        [row] = _rows()
        sub = row["submission"]
        if sub["status"] == "COMPLETE":
            break
    assert sub["ref"] == ref and sub["public_score"] == "0.9876"
    calls = len(fake.calls("ListSubmissions"))
    _rows()
    assert len(fake.calls("ListSubmissions")) == calls  # nothing pending: nothing asked


def test_two_trains_at_once_both_recorded(project, tiny_backbone, small_files):
    """Two `kaggle-kit train` processes finishing together: WAL plus the busy timeout keep both runs."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get(
        "PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-m", "kaggle_kit.cli", "train", "--train", str(small_files.train),
                               "--out", f"model-{i}", "--backbone", str(tiny_backbone), "--max-steps", "2",
                               "--eval-steps", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in (1, 2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert "not recorded" not in err
    rows = _rows("--offline")
    assert sorted(Path(r["run"]["model_dir"]).name for r in rows) == ["model-1", "model-2"]


def test_many_records_from_two_processes_lose_nothing(project, tmp_path):
    """The same path train records through (`note_run`), 40 times from each of two processes at once."""
    (tmp_path / "m").mkdir()
    script = ("import sys\nfrom pathlib import Path\nfrom kaggle_kit.cli.runs import note_run\n"
              "from kaggle_kit.competition.spec import LMSYS\n"
              "for i in range(40):\n"
              "    note_run('train', Path('m'), LMSYS, 'holdout_log_loss', 'holdout',"
              " {'holdout_log_loss': 1.0 + i / 100}, {'who': sys.argv[1], 'i': i}, [])\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    procs = [subprocess.Popen([sys.executable, "-c", script, name], env=env, stderr=subprocess.PIPE, text=True)
             for name in ("a", "b")]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and "not recorded" not in err, err
    rows = _rows("--offline")
    assert len(rows) == 80 and len({r["run"]["config_digest"] for r in rows}) == 80


def test_no_ledger_reads_as_empty_and_creates_nothing(project):
    result = run_cli("runs")
    assert result.exit_code == 0 and "no runs recorded yet" in result.output
    assert not ledger.LEDGER_FILE.exists()


def test_corrupt_ledger_is_one_line_and_kept_and_recording_only_warns(fake, project, small_files):
    ledger.LEDGER_FILE.parent.mkdir()
    ledger.LEDGER_FILE.write_bytes(b"this is not a database, just bytes " * 100)
    before = ledger.LEDGER_FILE.read_bytes()
    one_line_error(run_cli("runs"), "is not a readable kaggle-kit runs ledger")
    submitted = run_cli("submit", small_files.sample_submission, "-m", "x", "--sample-submission",
                        small_files.sample_submission)
    assert submitted.exit_code == 0, submitted.output  # the submission went through; only the record failed
    assert "warning: submission" in submitted.stderr and "not recorded in the runs ledger" in submitted.stderr
    assert ledger.LEDGER_FILE.read_bytes() == before


def test_newer_schema_is_one_line(project):
    ledger.LEDGER_FILE.parent.mkdir()
    with sqlite3.connect(ledger.LEDGER_FILE) as db:
        db.execute(f"PRAGMA application_id = {ledger.APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {ledger.SCHEMA_VERSION + 1}")
        db.execute("CREATE TABLE future (x)")
    one_line_error(run_cli("runs"), f"written by a newer kaggle-kit (ledger schema {ledger.SCHEMA_VERSION + 1}")
    with sqlite3.connect(ledger.LEDGER_FILE) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == ledger.SCHEMA_VERSION + 1


def test_foreign_database_is_one_line_and_untouched(project):
    ledger.LEDGER_FILE.parent.mkdir()
    with sqlite3.connect(ledger.LEDGER_FILE) as db:
        db.execute("CREATE TABLE photos (name TEXT)")
    one_line_error(run_cli("runs"), "an SQLite database that kaggle-kit did not write")
    with sqlite3.connect(ledger.LEDGER_FILE) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["photos"]


def _scored_runs(folder: Path, pairs: list[tuple[float, str]]) -> None:
    """One run per (CV figure, public score), each predicted into its own file and submitted."""
    for i, (cv, public) in enumerate(pairs):
        model = folder / f"m{i}"
        model.mkdir()
        (model / "metrics.json").write_text(json.dumps({"holdout": {"log_loss": cv}}))
        ledger.record_run("train", model, competition=LMSYS.slug, metric="log_loss", score=cv, score_kind="holdout")
        out = folder / f"sub{i}.csv"
        out.write_text(f"id,winner_model_a\n{i},0.5\n")
        ledger.record_output(out, [model])
        ledger.record_submission(LMSYS.slug, 100 + i, f"run {i}", file=out)
        ledger.record_scores(LMSYS.slug, [{"ref": 100 + i, "status": "COMPLETE", "public_score": public}])


def test_runs_plot_draws_cv_against_public_with_spearman(project):
    _scored_runs(project, [(1.02, "1.010"), (0.99, "0.985"), (1.05, "1.030"), (0.97, "0.990")])
    result = run_cli("runs", "--offline", "--plot", "cv.png", "--json")
    assert result.exit_code == 0, result.output
    drawn = json.loads(result.stdout)
    assert drawn["points"] == 4 and drawn["spearman"] == pytest.approx(0.8)  # one swapped pair among four
    assert Path("cv.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    one_line_error(run_cli("runs", "--offline", "--plot", "cv.png"), "cv.png")  # never silently replaced


def test_runs_plot_needs_two_scored_runs(project):
    _scored_runs(project, [(1.02, "1.010")])
    one_line_error(run_cli("runs", "--offline", "--plot", "cv.png"), "needs 2 or more submissions")
    assert not Path("cv.png").exists()


def test_blend_output_links_the_blend_run_not_its_members(project):
    members = []
    for name in ("a", "b"):
        (project / name).mkdir()
        (project / name / "metrics.json").write_text(json.dumps({"name": name}))
        ledger.record_run("train", project / name, score=1.0, score_kind="holdout")
        members.append(project / name)
    blend = project / "blend.json"
    blend.write_text("{}")
    blend_id = ledger.record_run("blend", blend, score=0.95, score_kind="oof blend")
    out = project / "sub.csv"
    out.write_text("id\n1\n")
    ledger.record_output(out, [blend], members=members)
    ledger.record_submission(LMSYS.slug, 7, "blend", file=out)
    linked = [r for r in ledger.runs_table() if r["submission"]]
    assert [r["run"]["id"] for r in linked] == [blend_id]


def test_kernel_submission_links_through_pushed_mounts_to_the_uploaded_run(project):
    (project / "model").mkdir()
    (project / "model" / "metrics.json").write_text("{}")
    run_id = ledger.record_run("train", project / "model", score=1.01, score_kind="holdout")
    ledger.record_upload(project / "model", "tester/lmsys-model")
    ledger.record_push("tester/lmsys-infer", 3, ["tester/lmsys-model", "tester/tiny-deberta-v3",
                                                 "lmsys-chatbot-arena"])
    ledger.record_submission(LMSYS.slug, 9, "kernel", kernel="tester/lmsys-infer", kernel_version=3)
    [row] = [r for r in ledger.runs_table() if r["submission"]]
    assert row["run"]["id"] == run_id and row["submission"]["kernel_version"] == 3


def test_push_kernel_and_kernel_submit_are_recorded_and_lead_back_to_the_uploaded_run(project, fake):
    config = Path("kaggle-kit.toml")
    config.write_text(config.read_text().replace("[datasets]\n", '[datasets]\nmodel = "tester/lmsys-model"\n'))
    pushed = run_cli("push-kernel", "infer", "--json")
    assert pushed.exit_code == 0, pushed.output
    version = json.loads(pushed.stdout)["version"]
    submitted = run_cli("submit", "--kernel", "tester/lmsys-infer", "--version", version, "-m", "kernel sub")
    assert submitted.exit_code == 0, submitted.output
    (project / "model").mkdir()
    (project / "model" / "metrics.json").write_text("{}")
    run_id = ledger.record_run("train", project / "model", score=1.01, score_kind="holdout")
    ledger.record_upload(project / "model", "tester/lmsys-model")  # what `upload model model --dataset ...` notes
    with sqlite3.connect(ledger.LEDGER_FILE) as db:
        [(kernel, pushed_version, mounts)] = db.execute("SELECT kernel, version, mounts FROM pushes").fetchall()
    assert (kernel, pushed_version) == ("tester/lmsys-infer", version)
    assert {"tester/lmsys-model", "tester/tiny-deberta-v3", "lmsys-chatbot-arena"} <= set(json.loads(mounts))
    [row] = [r for r in ledger.runs_table() if r["submission"]]
    assert row["run"]["id"] == run_id
    assert (row["submission"]["kernel"], row["submission"]["kernel_version"]) == ("tester/lmsys-infer", version)


def test_a_ledger_locked_past_the_busy_timeout_is_one_line(project, monkeypatch):
    ledger.record_run("train", project)
    monkeypatch.setattr(ledger, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(ledger.LEDGER_FILE, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another command in the middle of a write
    try:
        with pytest.raises(KitError, match="stayed locked by another command"):
            ledger.record_run("train", project)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    ledger.record_run("train", project)
    assert len(ledger.runs_table()) == 2


def test_kaggle_kit_ledger_keeps_the_ledger_elsewhere(project, tmp_path, monkeypatch):
    elsewhere = tmp_path / "shared" / "runs.sqlite"
    monkeypatch.setenv(ledger.LEDGER_ENV, str(elsewhere))
    ledger.record_run("train", project)
    assert elsewhere.exists() and not Path(".kaggle-kit").exists()
    assert len(_rows("--offline")) == 1
