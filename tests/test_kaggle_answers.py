"""Real Kaggle's answers (issue 27): the REAL kaggle client against the fake server's defaults, which answer as the
client's own source says Kaggle does (tests/fake_kaggle.py docstring; shared/docs/kaggle-real-answers.md). Each test
names the behaviour it stands in for; a switch turns single behaviours off where a test focuses on another."""

from __future__ import annotations

import json
import time

from click.testing import CliRunner

from kaggle_kit.cli import main
from kaggle_kit.competition.spec import LMSYS

KERNEL = "tester/lmsys-train"


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, env=env)


def saved(project, kernel=KERNEL) -> list[dict]:
    return json.loads((project / ".kaggle-kit" / "kernels.json").read_text())[kernel]["versions"]


def labels(fake, method="GetKernelSessionStatus") -> list[str | None]:
    return [c["body"].get("versionLabel") for c in fake.calls(method)]


# ---- kernels: new kernel, version pinning, one push


def test_new_kernel_then_second_push_waits_for_its_own_version_and_pulls_it(project, fake):
    """Kaggle: 403 for a kernel never pushed; an unpinned status describes the previous version for a while after a
    push; the 2nd accepted push of the fake is answered 500 (default)."""
    first = run("push-kernel", "train")
    assert first.exit_code == 0, first.output
    assert [v["version"] for v in saved(project)] == [1]
    assert run("status", KERNEL, "--wait", "--interval", "0.01", "--quiet").exit_code == 0
    second = run("push-kernel", "train", "--wait", "--interval", "0.01", "--quiet")
    assert second.exit_code == 0, second.output
    assert "pushed as version 2 (Kaggle answered 500 after accepting it)" in second.stderr
    assert len(fake.calls("SaveKernel")) == 2 and fake.kernels[KERNEL]["versions"] == 2  # never a second push
    states = [line for line in second.stderr.splitlines() if line.startswith(f"{KERNEL}/2:")]
    assert [s.split(": ")[1].split(" ")[0] for s in states] == ["RUNNING", "RUNNING", "COMPLETE"]
    assert labels(fake)[-3:] == ["v2", "v2", "v2"]  # pinned: never the stale unpinned answer
    assert [(v["version"], v["status"]) for v in saved(project)] == [(1, "COMPLETE"), (2, "COMPLETE")]
    status = run("status", KERNEL)
    assert status.exit_code == 0 and f"{KERNEL} version 2: COMPLETE" in status.stdout
    pulled = run("pull", KERNEL, "--json")
    assert pulled.exit_code == 0, pulled.output
    folder = project / json.loads(pulled.stdout)["folder"]
    assert (folder / "run.txt").read_text() == "outputs of version 2\n"
    assert labels(fake, "ListKernelSessionOutput") == ["v2"]


def test_push_accepted_then_500_or_dropped_is_one_version_and_one_line(project, fake):
    """Kaggle answers a push it accepted with a 5xx, or drops the connection (unsloth launch.py): no second push."""
    fake.accept_then_fail = {"SaveKernel": (1, 500)}
    result = run("push-kernel", "train")
    assert result.exit_code == 0, result.output
    assert "warning: pushed as version 1 (Kaggle answered 500 after accepting it)" in result.stderr
    assert len(fake.calls("SaveKernel")) == 1 and fake.kernels[KERNEL]["versions"] == 1
    assert [v["version"] for v in saved(project)] == [1]
    fake.kernel_status[KERNEL] = [("COMPLETE", "")]
    fake.accept_then_fail = {"SaveKernel": (2, 0)}  # the next accepted push: connection dropped, no answer
    dropped = run("push-kernel", "train")
    assert dropped.exit_code == 0, dropped.output
    assert "pushed as version 2 (Kaggle dropped the connection after accepting it)" in dropped.stderr
    assert len(fake.calls("SaveKernel")) == 2 and fake.kernels[KERNEL]["versions"] == 2


def test_push_refused_with_500_is_not_pushed_and_a_hung_push_is_unknown(project, fake, monkeypatch):
    """A 5xx before Kaggle accepted it: "not pushed"; no answer within our socket timeout: "unknown", and the push
    is never sent again, not even later from a thread left running."""
    fake.fail_next["SaveKernel"] = (500, {"code": 500, "message": "Internal error"})
    refused = run("push-kernel", "train")
    assert refused.exit_code == 1 and len(refused.output.strip().splitlines()) == 1
    assert "not pushed (Kaggle answered 500; Kaggle lists no new version)" in refused.output
    monkeypatch.setenv("KAGGLE_KIT_TIMEOUT", "1")
    fake.hang, fake.hang_s = {"SaveKernel"}, 2.0
    hung = run("push-kernel", "train")
    assert hung.exit_code == 1, hung.output
    assert "unknown whether it was pushed (no answer within 1s)" in hung.output
    assert f"see `kaggle-kit status {KERNEL}` before pushing again" in hung.output
    time.sleep(2.5)
    assert len(fake.calls("SaveKernel")) == 2 and KERNEL not in fake.kernels


def test_status_new_script_is_waited_on(project, fake):
    """NEW_SCRIPT (KernelWorkerStatus 6) is neither running nor finished: shown as it is and waited on."""
    fake.kernel_status[KERNEL] = [("NEW_SCRIPT", ""), ("COMPLETE", "")]
    waited = run("status", KERNEL, "--wait", "--interval", "0.01", "--quiet")
    assert waited.exit_code == 0, waited.output
    assert f"{KERNEL}: NEW_SCRIPT" in waited.stderr and f"{KERNEL}: COMPLETE" in waited.stderr
    assert "newest version (none pushed from here): COMPLETE" in waited.stdout


def test_status_of_a_cancelled_kernel_exits_1(project, fake):
    """issue 30: CANCEL_ACKNOWLEDGED is an end that is not COMPLETE; `status` exits non-zero like `push-kernel
    --wait`."""
    fake.kernel_status[KERNEL] = [("CANCEL_ACKNOWLEDGED", "")]
    cancelled = run("status", KERNEL)
    assert cancelled.exit_code == 1 and "ended CANCEL_ACKNOWLEDGED" in cancelled.output


def test_403_after_a_push_is_a_permission_problem(project, fake):
    """Before the first push 403 means "new kernel"; after kaggle-kit pushed it, the same 403 is access denied."""
    assert run("push-kernel", "train").exit_code == 0
    fake.kernels.clear()  # Kaggle no longer shows it to this account
    result = run("status", KERNEL)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "permission denied (403) for a kernel kaggle-kit pushed" in result.output
    assert "private kernel of another account, or the wrong username" in result.output
    assert "benchmark_task_slug" not in result.output


# ---- logs


def test_log_stream_reconnects_follows_the_version_and_pull_writes_readable_text(project, fake):
    """While running: SSE that the load balancer drops (the fake drops each version's first connection after one
    event); once finished: the stored JSON array. The output listing's `log` is that array as text."""
    fake.kernel_logs[KERNEL] = ["loading backbone", ("stderr", "warning: slow tokenizer"), "step 1 loss 1.09"]
    result = run("push-kernel", "train", "--wait", "--interval", "0.05")
    assert result.exit_code == 0, result.output
    shown = [line for line in result.stderr.splitlines() if line.startswith("| ")]
    assert shown == ["| loading backbone", "| warning: slow tokenizer", "| step 1 loss 1.09"]
    streams = [c["query"] for c in fake.calls("GET") if "/logs/stream/" in c["path"]]
    assert len(streams) >= 2 and set(streams) == {"versionLabel=v1"}  # reconnected after the drop, same version
    pulled = json.loads(run("pull", KERNEL, "--json").stdout)
    folder = project / pulled["folder"]
    assert (folder / "lmsys-train.log").read_text() == (
        "loading backbone\n[stderr] warning: slow tokenizer\nstep 1 loss 1.09\n")
    raw = json.loads((folder / "lmsys-train.log.json").read_text())
    assert raw[1] == {"stream_name": "stderr", "time": 1.0, "data": "warning: slow tokenizer\n"}
    assert "lmsys-train.log.json" in pulled["files"]


# ---- errors in every shape


def test_every_error_shape_is_one_line(project, fake):
    """Error bodies: top-level, nested `error`, `errors` list, HTML pages for 429/503 (also behind a JSON content
    type, where kagglesdk raises JSONDecodeError); a 429 whose Retry-After is neither seconds nor a date (issue 30)."""
    fake.kernel_status[KERNEL] = [("COMPLETE", "")]
    cases = [((400, fake.error_body("nested", 400, "Bad kernel slug")), "Kaggle answered 400 (Bad kernel slug)"),
             ((400, fake.error_body("list", 400, "Kernel is archived")), "Kaggle answered 400 (Kernel is archived)"),
             ((409, fake.error_body("top", 409, "Conflict here")), "Kaggle answered 409 (Conflict here)")]
    for failure, line in cases:
        fake.fail_next["GetKernelSessionStatus"] = failure
        result = run("status", KERNEL)
        assert result.exit_code == 1 and line in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    fake.fail_next["GetKernelSessionStatus"] = [(503, None)] * 4  # an HTML 503 on every try: one line at the end
    busy = run("status", KERNEL)
    assert busy.exit_code == 1 and "Kaggle answered 503 with an HTML page" in busy.output, busy.output
    assert len(busy.output.strip().splitlines()) == 1
    fake.fail_next["GetKernelSessionStatus"] = (503, None)
    assert run("status", KERNEL).exit_code == 0  # one HTML 503, then retried
    fake.fail_next["GetKernelSessionStatus"] = (200, fake.html_page(503), {"Content-Type": "application/json"})
    html = run("status", KERNEL)
    assert html.exit_code == 1 and "Kaggle answered 200 with an HTML page" in html.output
    assert "JSONDecodeError" not in html.output and "Expecting value" not in html.output


def test_429_whose_retry_after_is_neither_seconds_nor_a_date(project, fake):
    """issue 30: `email.utils.parsedate_to_datetime("soon")` raises ValueError; that is a backoff, not a traceback."""
    fake.kernel_status[KERNEL] = [("COMPLETE", "")]
    fake.fail_next["GetKernelSessionStatus"] = (429, {"code": 429, "message": "slow down"}, {"Retry-After": "soon"})
    result = run("status", KERNEL)
    assert result.exit_code == 0, result.output
    assert len(fake.calls("GetKernelSessionStatus")) == 2


def test_credential_problems_say_what_doctor_says(project, fake, tmp_path, monkeypatch):
    """issue 30: a 401 without the client's leaderboard advice ("benchmark_task_slug"); a truncated kaggle.json or one
    without a key says what `doctor` says, not "no Kaggle credentials found"."""
    fake.kernel_status[KERNEL] = [("COMPLETE", "")]
    fake.fail_next["GetKernelSessionStatus"] = (401, {"code": 401, "message": "Unauthenticated"})
    rejected = run("status", KERNEL)
    assert rejected.exit_code == 1 and "Kaggle rejected the credentials (401)" in rejected.output
    assert "benchmark_task_slug" not in rejected.output and "0123456789abcdef" not in rejected.output
    config = tmp_path / "kaggle-config"
    config.mkdir()
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config))
    (config / "kaggle.json").write_text('{"username": "tester", "ke')
    truncated = run("status", KERNEL)
    assert truncated.exit_code == 1 and "is not valid JSON (truncated?)" in truncated.output
    assert "no Kaggle credentials found" not in truncated.output
    (config / "kaggle.json").write_text('{"username": "tester"}')
    assert "lacks a username or a key" in run("status", KERNEL).output


# ---- submissions


def test_submission_accepted_then_500_is_one_submission_and_one_line(project, fake, small_files, monkeypatch):
    """CreateSubmission is not retried by the client; the new submission is also missing for a moment (each
    listing is one moment in the fake, so the wait between listings is shortened)."""
    monkeypatch.setattr("kaggle_kit.remote.submit.SETTLE_DELAY_S", 0.01)
    fake.competitions["lmsys-chatbot-arena"] = {"deadline": "2099-12-31T23:59:00Z"}
    fake.accept_then_fail = {"CreateSubmission": (1, 500)}
    result = run("submit", small_files.sample_submission, "-m", "once", "--sample-submission",
                 small_files.sample_submission, "--json")
    assert result.exit_code == 0, result.output
    assert len(fake.calls("CreateSubmission")) == 1 and len(fake.submissions) == 1
    ref = fake.submissions[0]["ref"]
    assert f"warning: submitted as ref {ref} (Kaggle answered 500 after accepting it)" in result.stderr
    assert json.loads(result.stdout)["ref"] == ref
    fake.fail_next["CreateSubmission"] = (502, None)  # refused with an HTML page before accepting
    refused = run("submit", small_files.sample_submission, "-m", "twice", "--sample-submission",
                  small_files.sample_submission)
    assert refused.exit_code == 1 and "not submitted (Kaggle answered 502; no new submission is listed)" in (
        refused.output)
    assert len(fake.calls("CreateSubmission")) == 2 and len(fake.submissions) == 1
    fake.accept_then_fail = {"CreateCodeSubmission": (1, 0)}  # a code submission accepted, then no answer
    code = run("submit", "--kernel", "tester/lmsys-infer", "--version", "3", "-m", "code once")
    assert code.exit_code == 0, code.output
    assert len(fake.calls("CreateCodeSubmission")) == 1 and len(fake.submissions) == 2
    assert f"submitted as ref {fake.submissions[0]['ref']} (Kaggle dropped the connection after accepting it)" in (
        code.stderr)


def test_submissions_pages_limit_and_score_wait_through_get_submission(project, fake, small_files):
    """ListSubmissions answers 20 a page; `get_submission(ref)` answers 404 for a moment after the submit."""
    from kaggle_kit.remote.submit import wait_for_score

    fake.submissions = [{"ref": 100 + i, "date": "2026-11-20T00:00:00Z", "description": f"old {i}", "fileName": "s",
                         "status": "COMPLETE", "publicScore": "1.0", "privateScore": ""} for i in range(45)]
    listing = run("submissions", "--json")
    assert listing.exit_code == 0 and len(json.loads(listing.stdout)) == 45
    assert len(fake.calls("ListSubmissions")) == 3
    limited = run("submissions", "--limit", "5", "--json")
    assert [s["ref"] for s in json.loads(limited.stdout)] == [100, 101, 102, 103, 104]
    assert len(fake.calls("ListSubmissions")) == 4
    fake.competitions["lmsys-chatbot-arena"] = {"deadline": "2099-12-31T23:59:00Z"}
    submitted = run("submit", small_files.sample_submission, "-m", "new", "--sample-submission",
                    small_files.sample_submission, "--json")
    ref = json.loads(submitted.stdout)["ref"]
    fake.finish_submission(ref, "COMPLETE", score="0.98")
    fake._hidden[ref] = 1  # still missing for one more moment
    seen: list[str] = []
    sub = wait_for_score(LMSYS, ref, interval=0.01, echo=seen.append, sleep=lambda s: None)
    assert sub["public_score"] == "0.98" and [s.split(": ")[1].split(" ")[0] for s in seen] == ["PENDING", "COMPLETE"]
    assert len(fake.calls("GetSubmission")) == 2


# ---- quota and the GPU-hours estimate


def test_quota_and_folds_refused_when_the_week_cannot_cover_them(project, fake):
    """quota_view (GetAcceleratorQuotaStatistics): the default fake account used 10 h of 30."""
    quota = run("quota", "--json")
    assert quota.exit_code == 0, quota.output
    assert json.loads(quota.stdout) | {"refresh": None} == {
        "gpu_hours_used": 10.0, "gpu_hours_reserved": 0.0, "gpu_hours_total": 30.0, "gpu_hours_left": 20.0,
        "refresh": None}
    assert "GPU: 10.0 h used of 30.0 h this week; 20.0 h left" in run("quota").stdout
    refused = run("push-kernel", "train", "--folds", "3", "--interval", "0.01")
    assert refused.exit_code == 1 and len(refused.output.strip().splitlines()) == 1
    assert ("3 fold kernels may spend 36.0 GPU h (12.0 h each, from Kaggle's 12 h session limit) but 20.0 h are "
            "left this week") in refused.output
    assert fake.calls("SaveKernel") == []
    (project / "kaggle-kit.toml").write_text((project / "kaggle-kit.toml").read_text().replace(
        "[train]\n", '[train]\ntime_budget = "2h"\n'))
    fits = run("push-kernel", "train", "--folds", "3", "--interval", "0.01")
    assert fits.exit_code == 0, fits.output
    assert "3 fold kernel(s) may spend 6.0 GPU h; 20.0 h left this week" in fits.stderr


def test_folds_of_another_split_are_not_taken_for_done(project, fake):
    """issue 30: fold 0 trained as 0/2 is not fold 0 of 3 (the fold count is recorded with each push). Only that
    behaviour is under test: new kernels answer 404 and pushes are answered at once."""
    fake.quota.update(used_s=0, total_s=1000 * 3600)
    fake.unknown_kernel_status, fake.accept_then_fail, fake.stale_polls = 404, {}, 0
    assert run("push-kernel", "train", "--folds", "2", "--interval", "0.01", "--wait", "--quiet").exit_code == 0
    again = run("push-kernel", "train", "--folds", "3", "--interval", "0.01", "--quiet")
    assert again.exit_code == 0, again.output
    assert "already COMPLETE" not in again.stderr
    assert saved(project, "tester/lmsys-train-fold-0")[-2]["fold"] == "0/2"
    assert [c["body"]["slug"] for c in fake.calls("SaveKernel")].count("tester/lmsys-train-fold-0") == 2
    assert saved(project, "tester/lmsys-train-fold-0")[-1]["fold"] == "0/3"


# ---- accelerators and Kaggle Models


def test_accelerator_ids_follow_the_clients_list():
    """kaggle 2.2.5 `_RETIRED_ACCELERATORS` and kaggle-cli docs/kernels.md (Sep 2026)."""
    from kaggle.api.kaggle_api_extended import _RETIRED_ACCELERATORS

    from kaggle_kit.config.project import ACCELERATORS, RETIRED_ACCELERATORS, accelerator_problem

    assert {k.lower() for k in RETIRED_ACCELERATORS} == set(_RETIRED_ACCELERATORS)
    for shape in ("NvidiaTeslaT4Highmem", "NvidiaL4X1", "NvidiaL4", "NvidiaTeslaT4"):
        assert shape in ACCELERATORS and accelerator_problem(shape) is None
    assert "retired" in accelerator_problem("TpuV2256")


def test_model_backbone_with_capital_framework_is_sent_and_found_as_kaggle_writes_it(project, fake, tmp_path):
    """Kaggle mounts `OWNER/MODEL/Transformers/VAR/1` at input/models/owner/model/transformers/var/1."""
    from kaggle_kit.kernel.inputs import InputNotFound, find_source

    handle = "google/gemma-2/Transformers/gemma-2-2b-it/1"
    (project / "kaggle-kit.toml").write_text((project / "kaggle-kit.toml").read_text().replace(
        'backbone = "tester/tiny-deberta-v3"', f'backbone = "{handle}"'))
    assert run("push-kernel", "train").exit_code == 0
    assert fake.calls("SaveKernel")[0]["body"]["modelDataSources"] == [handle.replace("Transformers", "transformers")]
    root = tmp_path / "kaggle"
    try:
        find_source(handle, root)
    except InputNotFound as exc:
        assert "gemma-2/transformers/gemma-2-2b-it/1" in str(exc) and "gemma-2/Transformers/gemma-2-2b-it/1" in str(exc)
    else:
        raise AssertionError("nothing is mounted yet")
    mounted = root / "input" / "models" / "google" / "gemma-2" / "transformers" / "gemma-2-2b-it" / "1"
    mounted.mkdir(parents=True)
    assert find_source(handle, root) == mounted
