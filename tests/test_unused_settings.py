"""A setting the run would ignore is never ignored without a word: given as a flag it is refused in one line before
any work (--shard-rows under a time budget, where predict writes no shards; --time-budget for pseudo-label, which has
none); set in kaggle-kit.toml, which other runs share, a note says it is not used."""

from __future__ import annotations

import pytest

from conftest import one_line_error, run_cli


def _predict(tmp_path, *extra):
    return run_cli("predict", "--test", tmp_path / "test.csv", "--model", tmp_path / "no-model", "--out",
                   tmp_path / "sub.csv", *extra)


def _pseudo_label(tmp_path, *extra):
    return run_cli("pseudo-label", "--input", tmp_path / "test.csv", "--model", tmp_path / "no-model", "--out",
                   tmp_path / "pl.csv", *extra)


@pytest.mark.parametrize("budget", ["90s", "1h", "3600"])
def test_shard_rows_flag_with_a_time_budget_flag_is_refused(tmp_path, budget):
    line = one_line_error(_predict(tmp_path, "--time-budget", budget, "--shard-rows", "5"), "--shard-rows", code=2)
    assert "time budget" in line and not (tmp_path / "sub.csv.parts").exists()


def test_shard_rows_flag_with_a_budget_from_the_config_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text('[predict]\ntime_budget = "2h"\n')
    one_line_error(_predict(tmp_path, "--shard-rows", "50"), "--shard-rows", code=2)


def test_shard_rows_from_the_config_under_a_budget_is_a_note(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text("[predict]\nshard_rows = 50\n")
    result = _predict(tmp_path, "--time-budget", "1h")
    assert "note: [predict] shard_rows is not used here" in result.output
    without_budget = _predict(tmp_path)
    assert "is not used here" not in without_budget.output


def test_time_budget_flag_for_pseudo_label_is_refused(tmp_path):
    for budget in ("90s", "8h"):
        one_line_error(_pseudo_label(tmp_path, "--time-budget", budget), "--time-budget", code=2)


def test_time_budget_from_the_config_for_pseudo_label_is_a_note(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text('[predict]\ntime_budget = "1h"\n')
    assert "note: [predict] time_budget is not used here" in _pseudo_label(tmp_path).output
