import numpy as np
import pandas as pd
import pytest

from kaggle_kit.errors import DataError, KitError
from kaggle_kit.submission import validate_file, write_submission

IDS = ["10", "11", "12", "13"]


def frame(ids=IDS, probs=None):
    probs = np.full((len(ids), 3), 1 / 3) if probs is None else probs
    return pd.DataFrame({"id": ids, "winner_model_a": probs[:, 0], "winner_model_b": probs[:, 1],
                         "winner_tie": probs[:, 2]})


def check(tmp_path, spec, df):
    path = tmp_path / "s.csv"
    df.to_csv(path, index=False)
    return validate_file(path, IDS, spec)


def test_valid_file(tmp_path, spec):
    report = check(tmp_path, spec, frame())
    assert report.ok and report.rows == 4


def test_every_kind_of_problem_is_reported(tmp_path, spec):
    probs = np.array([[0.5, 0.5, 0.5], [np.nan, 0.5, 0.5], [1.5, -0.5, 0.0], [0.2, 0.3, 0.5], [0.3, 0.3, 0.4]])
    report = check(tmp_path, spec, frame(["10", "11", "12", "12", "99"], probs))
    text = "\n".join(report.problems)
    assert not report.ok
    assert "1 duplicated id(s): 12" in text
    assert "1 missing id(s): 13" in text
    assert "1 unexpected id(s): 99" in text
    assert "1 row(s) with missing/non-numeric/infinite values: id(s) 11" in text
    assert "1 row(s) with values outside [0, 1]: id(s) 12" in text
    assert "row(s) not summing to 1" in text and "10" in text


def test_wrong_header_order(tmp_path, spec):
    report = check(tmp_path, spec, frame()[["id", "winner_model_b", "winner_model_a", "winner_tie"]])
    assert "expected exactly" in report.problems[0]


def test_writer_orders_normalises_and_refuses_overwrite(tmp_path, spec):
    path = tmp_path / "out.csv"
    probs = np.array([[2.0, 1.0, 1.0], [0.0, 1.0, 0.0], [1, 1, 1], [0.1, 0.1, 0.8]])
    write_submission(["13", "12", "11", "10"], probs, IDS, spec, path)
    out = pd.read_csv(path, dtype={"id": str})
    assert out["id"].tolist() == IDS
    assert np.allclose(out.iloc[:, 1:].sum(axis=1), 1, atol=1e-6)
    assert out.iloc[0, 1:].tolist() == pytest.approx([0.1, 0.1, 0.8], abs=1e-6)  # id 10 was last in the input
    assert (out.iloc[:, 1:] > 0).all().all()  # clipped away from 0
    with pytest.raises(KitError, match="already exists"):
        write_submission(IDS, probs, IDS, spec, path)
    write_submission(IDS, probs, IDS, spec, path, overwrite=True)


def test_writer_crash_mid_write_keeps_old_file(tmp_path, spec, monkeypatch):
    path = tmp_path / "out.csv"
    write_submission(IDS, np.full((4, 3), 1 / 3), IDS, spec, path)
    before = path.read_bytes()

    def boom(self, *a, **k):
        with open(a[0], "w") as fh:
            fh.write("id,winner_model_a\n10,0.")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(KeyboardInterrupt):
        write_submission(IDS, np.full((4, 3), 0.2), IDS, spec, path, overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temp file left behind


def test_writer_refuses_missing_predictions(tmp_path, spec):
    with pytest.raises(DataError, match="no prediction for 1 id"):
        write_submission(IDS[:3], np.full((3, 3), 1 / 3), IDS, spec, tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_atomic_writes_keep_the_existing_mode_else_the_umask_default(tmp_path):
    import os
    import stat

    from kaggle_kit.atomic import write_text_atomic

    old = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.csv"
        write_text_atomic(fresh, "a\n")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
        shared = tmp_path / "shared.toml"
        shared.write_text("x")
        shared.chmod(0o664)
        write_text_atomic(shared, "y")
        assert stat.S_IMODE(shared.stat().st_mode) == 0o664 and shared.read_text() == "y"
    finally:
        os.umask(old)
