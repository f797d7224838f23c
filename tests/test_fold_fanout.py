"""Today's Kaggle against the fake server: the 2-GPU-session cap, `push-kernel train --folds K`, logs while waiting."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kaggle_kit.cli import main

CAP_LINE = "Maximum batch GPU session count of 2 reached."
FOLDS = [f"tester/lmsys-train-fold-{i}" for i in range(3)]


@pytest.fixture(autouse=True)
def enough_gpu_hours(fake):
    """An account with a full week of GPU hours left (the default fake has 20 h left of 30)."""
    fake.quota.update(used_s=0, total_s=1000 * 3600)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def accepted(fake) -> list[str]:
    return [slug for slug, kernel in fake.kernels.items() for _ in range(kernel["versions"])]


def test_push_refused_for_the_session_cap_is_one_line_exit_1(project, fake):
    fake.gpu_session_cap = 2
    fake.start_sessions(2, polls=100)  # two GPU kernels already run on this account
    result = run("push-kernel", "train")
    assert result.exit_code == 1, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert CAP_LINE in result.output and "kaggle-kit status" in result.output
    assert len(fake.calls("SaveKernel")) == 1 and fake.kernels == {}
    assert not (project / ".kaggle-kit" / "kernels.json").exists()  # nothing recorded for a refused push


def test_three_folds_within_two_sessions(project, fake):
    fake.gpu_session_cap, fake.session_polls = 2, 2
    result = run("push-kernel", "train", "--folds", "3", "--interval", "0.01")
    assert result.exit_code == 0, result.output
    assert sorted(accepted(fake)) == FOLDS and fake.most_sessions == 2
    assert all(fake.calls("SaveKernel")[i]["body"]["slug"] == FOLDS[i] for i in range(3))  # never refused
    assert "waiting for a GPU slot: 2 of 2 running" in result.output
    for kernel in FOLDS:
        assert f"{kernel} 1" in " ".join(result.stdout.split())  # the table: kernel, version
        assert f"kaggle-kit pull {kernel} --to outputs" in result.stdout
    assert ("kaggle-kit cv --gather outputs/lmsys-train-fold-0 --gather outputs/lmsys-train-fold-1 "
            "--gather outputs/lmsys-train-fold-2 --out cv") in result.stdout
    saved = json.loads((project / ".kaggle-kit" / "kernels.json").read_text())
    assert {k: [v["version"] for v in saved[k]["versions"]] for k in FOLDS} == {k: [1] for k in FOLDS}
    # each fold kernel is exactly what `build-kernel train --fold i/3` builds
    assert run("build-kernel", "train", "--fold", "1/3", "--out", "single").exit_code == 0
    fanned = project / "kernels" / "build" / "lmsys-train-fold-1" / "lmsys-train-fold-1.py"
    assert fanned.read_bytes() == (project / "single" / "lmsys-train-fold-1.py").read_bytes()


def test_refused_fold_is_pushed_again_when_a_slot_frees_and_a_rerun_skips_complete(project, fake):
    fake.gpu_session_cap, fake.session_polls = 2, 3
    fake.start_sessions(1, polls=1)  # a GPU kernel started elsewhere holds one of the two slots (until one poll)
    result = run("push-kernel", "train", "--folds", "3", "--interval", "0.01", "--wait", "--json")
    assert result.exit_code == 0, result.output
    assert len(fake.calls("SaveKernel")) == 4 and sorted(accepted(fake)) == FOLDS  # one refused, then accepted
    assert "refused: " + CAP_LINE in result.stderr and "pushing again when a session ends" in result.stderr
    report = json.loads(result.stdout)
    assert [(f["fold"], f["version"], f["state"]) for f in report["folds"]] == [(i, 1, "COMPLETE") for i in range(3)]
    assert fake.most_sessions == 2
    again = run("push-kernel", "train", "--folds", "3", "--interval", "0.01")
    assert again.exit_code == 0, again.output
    assert len(fake.calls("SaveKernel")) == 4 and again.stderr.count("COMPLETE (skipped)") == 3


def test_folds_dry_run_sends_and_writes_nothing_and_bad_interval(project, fake):
    result = run("push-kernel", "train", "--folds", "3", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert [f["id"] for f in plan["folds"]] == FOLDS and plan["max_gpu_sessions"] == 2
    assert fake.requests == [] and not (project / "kernels").exists() and not (project / ".kaggle-kit").exists()
    bad = run("push-kernel", "train", "--folds", "3", "--interval", "0")
    assert bad.exit_code == 2 and "Invalid value for '--interval'" in bad.output and fake.requests == []
    assert run("push-kernel", "infer", "--folds", "3").exit_code == 2


def test_status_wait_shows_new_log_lines_once_or_stays_quiet(project, fake):
    fake.kernel_logs["tester/lmsys-train"] = ["loading backbone", "step 1 loss 1.09"]
    fake.kernel_status["tester/lmsys-train"] = [("RUNNING", ""), ("RUNNING", ""), ("COMPLETE", "")]
    result = run("status", "tester/lmsys-train", "--wait", "--interval", "0.05")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("| loading backbone") == 1 and result.stderr.count("| step 1 loss 1.09") == 1
    assert result.stderr.index("| loading backbone") < result.stderr.index("COMPLETE")
    fake.kernel_status["tester/lmsys-train"] = [("RUNNING", ""), ("COMPLETE", "")]
    quiet = run("status", "tester/lmsys-train", "--wait", "--interval", "0.05", "--quiet")
    assert quiet.exit_code == 0 and "| " not in quiet.stderr and "COMPLETE" in quiet.stderr


def test_no_log_stream_keeps_state_lines(project, fake):
    fake.kernel_status["tester/lmsys-train"] = [("RUNNING", ""), ("COMPLETE", "")]  # the fake has no log: 404
    result = run("status", "tester/lmsys-train", "--wait", "--interval", "0.05")
    assert result.exit_code == 0, result.output
    assert "tester/lmsys-train: RUNNING" in result.stderr and "tester/lmsys-train: COMPLETE" in result.stderr


def test_kaggle_model_backbone_reaches_kaggle_as_a_model_source(project, fake):
    handle = "google/gemma-2/transformers/gemma-2-2b-it/2"
    (project / "kaggle-kit.toml").write_text((project / "kaggle-kit.toml").read_text().replace(
        'backbone = "tester/tiny-deberta-v3"', f'backbone = "{handle}"'))
    result = run("push-kernel", "train")
    assert result.exit_code == 0, result.output
    body = fake.calls("SaveKernel")[0]["body"]
    assert body["modelDataSources"] == [handle] and not body.get("datasetDataSources")  # empty lists are omitted
    assert fake.kernels["tester/lmsys-train"]["model_sources"] == [handle]


def test_folds_wait_shows_each_folds_log_lines(project, fake):
    fake.gpu_session_cap, fake.session_polls = 2, 3
    fake.kernel_logs.update({"tester/lmsys-train-fold-0": ["fold zero training"],
                             "tester/lmsys-train-fold-1": ["fold one training"]})
    result = run("push-kernel", "train", "--folds", "2", "--interval", "0.01", "--wait")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("| fold 0: fold zero training") == 1
    assert result.stderr.count("| fold 1: fold one training") == 1
    streams = {c["path"].rsplit("/", 1)[-1]: c["query"] for c in fake.calls("GET") if "/logs/stream/" in c["path"]}
    assert streams == {"lmsys-train-fold-0": "versionLabel=v1", "lmsys-train-fold-1": "versionLabel=v1"}
    quiet = run("push-kernel", "train", "--folds", "2", "--interval", "0.01", "--wait", "--quiet", "--force")
    assert quiet.exit_code == 0 and "| fold" not in quiet.stderr


def test_folds_wait_exits_1_naming_a_failed_fold(project, fake):
    fake.kernel_status["tester/lmsys-train-fold-1"] = [("ERROR", "CUDA out of memory")]
    result = run("push-kernel", "train", "--folds", "2", "--interval", "0.01", "--wait", "--quiet")
    assert result.exit_code == 1, result.output
    assert "fold(s) 1 ended ERROR" in result.stderr and "COMPLETE folds are skipped" in result.stderr
    assert "tester/lmsys-train-fold-1 1        ERROR" in result.stdout  # the table still comes first
