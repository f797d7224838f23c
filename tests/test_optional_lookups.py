"""A look-up a command can do without (a dry run's deadline and daily limit, doctor's rules check) says what it waits
for and waits briefly, not the full KAGGLE_KIT_TIMEOUT (two minutes by default), when Kaggle accepts the connection
and never answers. Bounded by pytest-timeout: today's two silent minutes fail the test."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

OPTIONAL_TIMEOUT_S = 15  # what an optional look-up may wait (kaggle_kit.remote.client.OPTIONAL_TIMEOUT_S)


@pytest.mark.timeout(90)
def test_submit_dry_run_says_what_it_waits_for_and_goes_on(tmp_path, monkeypatch, small_files, silent_server):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KAGGLE_KIT_TIMEOUT", raising=False)  # the default: 120 s per call
    result = run_cli("submit", small_files.sample_submission, "-m", "try", "--sample-submission",
                     small_files.sample_submission, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "checking the deadline and today's submission limit on Kaggle" in result.stderr
    assert f"up to {OPTIONAL_TIMEOUT_S:.0f}s" in result.stderr
    assert f"no answer within {OPTIONAL_TIMEOUT_S:.0f}s" in result.stderr
    assert "dry run: nothing sent" in result.stdout


@pytest.mark.timeout(90)
def test_doctor_rules_check_is_an_optional_look_up(tmp_path, monkeypatch, silent_server):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KAGGLE_KIT_TIMEOUT", raising=False)
    checks = {c["name"]: c for c in json.loads(run_cli("doctor", "--json").stdout)}
    assert f"no answer within {OPTIONAL_TIMEOUT_S:.0f}s" in checks["competition rules"]["detail"]


def test_a_lower_kaggle_kit_timeout_still_wins(monkeypatch):
    from kaggle_kit.remote.client import OPTIONAL_TIMEOUT_S, optional_timeout

    monkeypatch.setenv("KAGGLE_KIT_TIMEOUT", "3")
    assert optional_timeout() == 3
    monkeypatch.setenv("KAGGLE_KIT_TIMEOUT", "600")
    assert optional_timeout() == OPTIONAL_TIMEOUT_S
