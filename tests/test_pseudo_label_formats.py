"""pseudo-label writes the format its --out names, in a file train reads back: .csv as CSV, .parquet as a real
parquet file; any other extension (or a parquet without pyarrow) is one line before any work, nothing written."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from conftest import one_line_error, quick_config, run_cli
from kaggle_kit.data.reading import read_train


@pytest.fixture(scope="module")
def model(tmp_path_factory, small_files, tiny_backbone, spec):
    from kaggle_kit.training.train import train

    out = tmp_path_factory.mktemp("pl") / "model"
    train([small_files.train], out, quick_config(tiny_backbone, max_steps=2, eval_steps=2), spec)
    return out


@pytest.mark.parametrize("name", ["pl.json", "pl.txt", "pl.xlsx", "pl", "pl.feather", "pl.csv.bak", "pl.parq"])
def test_other_extensions_are_refused_before_any_work(tmp_path, small_files, name):
    out = tmp_path / name
    result = run_cli("pseudo-label", "--input", small_files.test, "--model", tmp_path / "no-model-here", "--out", out)
    line = one_line_error(result, "--out", code=2)
    assert ".csv or .parquet" in line and not out.exists()


def test_parquet_without_pyarrow_is_one_line(tmp_path, small_files, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    out = tmp_path / "pl.parquet"
    result = run_cli("pseudo-label", "--input", small_files.test, "--model", tmp_path / "no-model-here", "--out", out)
    assert "pip install pyarrow" in one_line_error(result, "needs pyarrow", code=2) and not out.exists()


@pytest.mark.parametrize("name", ["pl.parquet", "PL.PARQUET"])
def test_parquet_out_is_parquet_that_train_reads_as_the_csv(tmp_path, small_files, model, spec, name):
    csv = tmp_path / "pl.csv"
    parquet = tmp_path / name
    for out in (csv, parquet):
        result = run_cli("pseudo-label", "--input", small_files.test, "--model", model, "--out", out)
        assert result.exit_code == 0, result.output
    assert parquet.read_bytes()[:4] == b"PAR1" and csv.read_bytes()[:4] != b"PAR1"
    frame = pd.read_parquet(parquet)
    assert list(frame.columns) == list(spec.train_columns) and len(frame) == len(pd.read_csv(small_files.test))
    from_csv, from_parquet = read_train(csv, spec), read_train(parquet, spec)
    assert from_parquet.ids == from_csv.ids and from_parquet.texts == from_csv.texts
    assert np.abs(from_parquet.targets - from_csv.targets).max() < 1e-5
