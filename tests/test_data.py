import json

import numpy as np
import pandas as pd
import pytest

from kaggle_kit.competition.spec import LMSYS
from kaggle_kit.data.reading import RepairCounts, load_training_files, parse_turns, read_test, read_train
from kaggle_kit.errors import DataError


def write(path, frame, bom=False):
    path.write_text(("\ufeff" if bom else "") + frame.to_csv(index=False), encoding="utf-8")
    return path


def train_frame(n=4):
    return pd.DataFrame({
        "id": [str(i) for i in range(n)], "model_a": "m1", "model_b": "m2",
        "prompt": [json.dumps([f"question {i}"]) for i in range(n)],
        "response_a": [json.dumps([f"answer a {i}"]) for i in range(n)],
        "response_b": [json.dumps([f"answer b {i}"]) for i in range(n)],
        "winner_model_a": [1, 0, 0, 1][:n], "winner_model_b": [0, 1, 0, 0][:n], "winner_tie": [0, 0, 1, 0][:n],
    })


@pytest.mark.parametrize("cell, turns, kind", [
    ('["a", null, "b"]', ["a", "", "b"], "null turns"),
    ("[]", [], None),
    ('["smile \\ud83d"]', ["smile \ufffd"], "lone surrogates (replaced by U+FFFD)"),
    ("plain text, not JSON", ["plain text, not JSON"], "non-JSON cells (kept as one turn)"),
    ('["line1\\r\\nline2"]', ["line1\nline2"], "CRLF line ends normalised to LF"),
    ('"just a string"', ["just a string"], "non-list JSON cells"),
    ('[1, {"x": 2}]', ["1", '{"x": 2}'], "non-string turns"),
    (float("nan"), [], "empty cells"),
])
def test_parse_turns_repairs_every_odd_cell(cell, turns, kind):
    repairs = RepairCounts()
    assert parse_turns(cell, repairs) == turns
    assert (kind in repairs.counts) if kind else not repairs.counts
    for t in turns:
        t.encode("utf-8")  # nothing left that a tokenizer would choke on


def test_long_turn_is_kept_whole():
    text = "word " * 50_000
    assert parse_turns(json.dumps([text])) == [text]


def test_read_train_with_bom_and_labels(tmp_path, spec):
    pairs = read_train(write(tmp_path / "train.csv", train_frame(), bom=True), spec)
    assert pairs.ids == ["0", "1", "2", "3"]
    assert pairs.labels.tolist() == [0, 1, 2, 0]
    assert pairs.texts["prompt"][2] == ["question 2"]


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.drop(columns=["response_b"]), "missing column(s) response_b"),
    (lambda f: f.assign(extra=1), "unexpected column(s) extra"),
    (lambda f: f.assign(id=["1", "1", "2", "3"]), "duplicate id(s) 1"),
    (lambda f: f.assign(winner_tie=["0", "x", "1", "0"]), "column winner_tie is not numeric for id(s) 1"),
    (lambda f: f.assign(winner_tie=[1, 0, 1, 0]), "1 row(s) are neither one-hot nor probabilities summing to 1"),
    (lambda f: f.iloc[0:0], "no rows"),
])
def test_schema_errors_name_file_column_and_ids(tmp_path, spec, mutate, message):
    path = write(tmp_path / "train.csv", mutate(train_frame()))
    with pytest.raises(DataError) as err:
        read_train(path, spec)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_not_one_hot_names_the_ids(tmp_path, spec):
    frame = train_frame().assign(winner_model_a=[1, 1, 0, 1])
    with pytest.raises(DataError, match=r"id\(s\) 1"):
        read_train(write(tmp_path / "t.csv", frame), spec)


def test_empty_and_unreadable_files(tmp_path, spec):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="file is empty"):
        read_test(tmp_path / "empty.csv", spec)
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81garbage\x00")
    with pytest.raises(DataError, match="bin.csv"):
        read_test(tmp_path / "bin.csv", spec)
    with pytest.raises(DataError, match="file not found"):
        read_test(tmp_path / "nope.csv", spec)


def test_dedup_across_files_in_either_order_and_test_leaks(tmp_path, spec):
    first = train_frame()
    second = train_frame().iloc[[0, 1]].copy()
    second["id"] = ["100", "101"]
    # row 101 is row 1 with A and B swapped (labels swapped too): still the same pair
    second.loc[second.index[1], ["response_a", "response_b"]] = [first.loc[1, "response_b"], first.loc[1, "response_a"]]
    second.loc[second.index[1], ["winner_model_a", "winner_model_b"]] = [1, 0]
    test = first.iloc[[3]][spec.test_columns]
    result = load_training_files([write(tmp_path / "a.csv", first), write(tmp_path / "b.csv", second)], spec,
                                 exclude_test=write(tmp_path / "test.csv", test))
    assert result.duplicates_dropped == 2
    assert result.test_leaks_dropped == 1
    assert len(result.pairs) == 3
    assert sorted(result.pairs.labels.tolist()) == [0, 1, 2]


def test_mapped_extra_file(tmp_path, spec):
    from kaggle_kit.config import ColumnMap

    extra = pd.DataFrame({"row_id": ["x1", "x2"], "question": ["What is 2+2?", "Hi"], "answer_a": ["4", "hello"],
                          "answer_b": ["5", "hey"], "a_wins": [1, 0], "b_wins": [0, 0], "tie": [0, 1]})
    mapping = ColumnMap(match="extra*.csv",
                        columns={"id": "row_id", "prompt": "question", "response_a": "answer_a",
                                 "response_b": "answer_b", "winner_model_a": "a_wins", "winner_model_b": "b_wins",
                                 "winner_tie": "tie"},
                        plain_text=["prompt", "response_a", "response_b"])
    files = [write(tmp_path / "train.csv", train_frame()), write(tmp_path / "extra-33k.csv", extra)]
    result = load_training_files(files, spec, {"extra": mapping})
    assert len(result.pairs) == 6
    assert result.pairs.texts["prompt"][4] == ["What is 2+2?"]
    assert result.pairs.labels[-2:].tolist() == [0, 2]
    broken = ColumnMap(match="extra*.csv", columns={"prompt": "nope"})
    with pytest.raises(DataError, match="missing column"):
        load_training_files([tmp_path / "extra-33k.csv"], spec, {"x": broken})


def test_sample_data_is_competition_shaped_and_learnable(sample_files, spec):
    train = pd.read_csv(sample_files.train)
    assert list(train.columns) == spec.train_columns
    assert list(pd.read_csv(sample_files.test).columns) == spec.test_columns
    sample = pd.read_csv(sample_files.sample_submission)
    assert list(sample.columns) == spec.submission_columns
    pairs = read_train(sample_files.train, spec)
    assert pairs.repairs.counts["null turns"] > 0 and pairs.repairs.counts["lone surrogates (replaced by U+FFFD)"] > 0
    words = np.array([sum(len(t.split()) for f in pairs.texts for t in pairs.texts[f][i]) for i in range(len(pairs))])
    assert np.median(words) < 400 and words.max() > 1500  # mostly short, with a long tail
    assert 0.2 < np.mean(pairs.labels == 2) < 0.5


def test_progress_in_logs_is_plain_lines(capsys):
    from kaggle_kit.progress import PlainProgress, progress_bar

    bar = progress_bar(10, "predict", "row")  # pytest's stderr is no terminal
    assert isinstance(bar, PlainProgress)
    bar = PlainProgress(10, "predict", "row", every_s=0)
    with bar:
        for _ in range(10):
            bar.update(1)
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b[" not in err
    assert "predict: 10/10 rows (100%)" in err.splitlines()[-1]


@pytest.mark.parametrize("cell, shown", [("", "''"), ("nan", "'nan'")])
def test_a_blank_or_nan_test_id_names_its_row(tmp_path, small_files, cell, shown):
    test = pd.read_csv(small_files.test, dtype=str, keep_default_na=False)
    test.loc[3, "id"] = cell
    test.to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(DataError) as caught:
        read_test(tmp_path / "test.csv", LMSYS)
    assert "1 do not, at row(s) 5 (" in caught.value.message and shown in caught.value.message
