"""Read competition files (CSV or parquet), check them against the spec, and repair turn cells into clean lists of
strings."""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.config import ColumnMap
from kaggle_kit.errors import DataError

log = logging.getLogger(__name__)

MAX_IDS_SHOWN = 5
_SURROGATE = re.compile("[\ud800-\udfff]")


def _some(ids) -> str:
    ids = list(ids)
    shown = ", ".join(str(i) for i in ids[:MAX_IDS_SHOWN])
    return shown + (f" (+{len(ids) - MAX_IDS_SHOWN} more)" if len(ids) > MAX_IDS_SHOWN else "")


@dataclass
class RepairCounts:
    """What was repaired while parsing turn cells; reported once per file."""

    counts: Counter = field(default_factory=Counter)

    def add(self, kind: str) -> None:
        self.counts[kind] += 1

    def summary(self) -> str:
        """e.g. '150 lone surrogates (replaced by U+FFFD), 3 null turns': each kind names what was found."""
        return ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items()))


def _clean_text(text: str, repairs: RepairCounts) -> str:
    if "\r" in text:
        repairs.add("CRLF line ends normalised to LF")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone UTF-16 surrogates (from escapes like "\ud83d") crash tokenizers: replace them with U+FFFD.
        repairs.add("lone surrogates (replaced by U+FFFD)")
        text = _SURROGATE.sub("\ufffd", text)
    return text


def parse_turns(cell: object, repairs: RepairCounts | None = None) -> list[str]:
    """A JSON list of turns -> list of clean strings. Never raises: odd cells are repaired and counted."""
    repairs = repairs if repairs is not None else RepairCounts()
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        repairs.add("empty cells")
        return []
    if not isinstance(cell, str):
        repairs.add("non-text cells")
        return [_clean_text(str(cell), repairs)]
    try:
        value = json.loads(cell)
    except (json.JSONDecodeError, RecursionError):
        repairs.add("non-JSON cells (kept as one turn)")
        return [_clean_text(cell, repairs)]
    if not isinstance(value, list):
        repairs.add("non-list JSON cells")
        value = [value]
    turns: list[str] = []
    for turn in value:
        if turn is None:
            repairs.add("null turns")
            turns.append("")
        elif isinstance(turn, str):
            turns.append(_clean_text(turn, repairs))
        else:
            repairs.add("non-string turns")
            turns.append(_clean_text(json.dumps(turn, ensure_ascii=False), repairs))
    return turns


def _read_any(path: Path) -> pd.DataFrame:
    """A CSV read as text (BOM tolerated), or a parquet file with every cell as text ('' for a missing value)."""
    if path.suffix.lower() != ".parquet":
        return pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False, na_values=[])
    frame = pd.read_parquet(path)
    listed = []
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object and values.map(lambda v: isinstance(v, (list, tuple, np.ndarray))).any():
            # a list per cell (turns): JSON text, parsed as turns below, never numpy's repr "['...']"
            listed.append(str(column))
            frame[column] = values.map(_json_turns)
            continue
        if pd.api.types.is_float_dtype(values) and values.dropna().mod(1).eq(0).all():
            values = values.astype("Int64")  # integers stored as floats because of a missing value
        frame[column] = values.astype(object).where(values.notna(), "").astype(str)
    frame.attrs[LIST_CELLS] = listed
    return frame


LIST_CELLS = "kaggle_kit_list_cells"  # frame.attrs key: the parquet columns whose cells were lists of turns


def _json_turns(value: object) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        return json.dumps([v if v is None or isinstance(v, str) else str(v) for v in list(value)], ensure_ascii=False)
    return json.dumps([] if value is None or (isinstance(value, float) and math.isnan(value)) else [str(value)],
                      ensure_ascii=False)


def read_csv_checked(path: Path, required: list[str], allow_extra: bool | list[str] = False) -> pd.DataFrame:
    """Read a CSV (or .parquet) as text and check its columns; every failure is one DataError.

    allow_extra: True allows any other column, a list only those."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    kind = "parquet" if path.suffix.lower() == ".parquet" else "CSV"
    try:
        frame = _read_any(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None
    except ImportError as exc:
        raise DataError(f"{path}: reading parquet needs pyarrow ({exc})", hint="pip install pyarrow") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read as {kind} ({str(exc).splitlines()[0] if str(exc) else exc})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}", hint=f"expected {', '.join(required)}")
    allowed = allow_extra if isinstance(allow_extra, list) else []
    extra = [c for c in frame.columns if c not in required and c not in allowed]
    if extra and allow_extra is not True:
        raise DataError(f"{path}: unexpected column(s) {', '.join(extra)}", hint=f"expected {', '.join(required)}")
    if frame.empty:
        raise DataError(f"{path}: no rows")
    return frame


def check_id_type(path: Path, frame: pd.DataFrame, id_column: str, id_type: str) -> None:
    """The competition's ids are integers in this file: a non-integer id is named, not silently kept."""
    if id_type != "int":
        return
    ids = frame[id_column].astype(str).str.strip()
    bad = ~ids.str.fullmatch(r"-?\d+")
    if bad.any():
        raise DataError(f"{path}: column {id_column} must hold integers for this competition; "
                        f"{int(bad.sum())} do not, at row(s) {_some(np.flatnonzero(bad.to_numpy()) + 2)} "
                        f"({_some(map(repr, ids[bad]))})")


def check_unique_ids(path: Path, frame: pd.DataFrame, id_column: str) -> None:
    blank = frame[id_column].astype(str).str.strip() == ""
    if blank.any():
        raise DataError(f"{path}: column {id_column} has {int(blank.sum())} empty id(s) "
                        f"at row(s) {_some(np.flatnonzero(blank) + 2)}")
    dup = frame[id_column][frame[id_column].duplicated()]
    if len(dup):
        raise DataError(f"{path}: column {id_column} has duplicate id(s) {_some(dup.unique())}")


SOFT_TOLERANCE = 1e-3  # |row sum - 1| accepted for probability rows (CSV rounding)


def targets_from_labels(path: Path, frame: pd.DataFrame, spec: CompetitionSpec) -> np.ndarray:
    """A label column (e.g. winner = model_a / model_b) -> one-hot target rows; a value outside the spec's is named."""
    column = str(spec.label_column)
    values = frame[column].astype(str).str.strip()
    index = pd.Index(spec.label_values).get_indexer(values)
    bad = index < 0
    if bad.any():
        found = ", ".join(f"'{v}' x{n}" for v, n in values[bad].value_counts().head(MAX_IDS_SHOWN).items())
        raise DataError(f"{path}: {int(bad.sum())} row(s) with {column} not one of {', '.join(spec.label_values)} "
                        f"(found {found}): id(s) {_some(frame.loc[bad, spec.id_column])}")
    return np.eye(spec.num_labels)[index]


def targets_from_columns(path: Path, frame: pd.DataFrame, spec: CompetitionSpec) -> np.ndarray:
    """Winner columns -> target rows: one-hot (hard) or probabilities (soft, summing to 1); bad rows name their ids."""
    values = {}
    for column in spec.label_columns:
        numeric = pd.to_numeric(frame[column], errors="coerce")
        bad = numeric.isna() | ~np.isfinite(numeric.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            raise DataError(f"{path}: column {column} is not numeric for id(s) {_some(frame.loc[bad, spec.id_column])}")
        values[column] = numeric.to_numpy(dtype=float)
    targets = np.stack([values[c] for c in spec.label_columns], axis=1)
    valid = ((targets >= 0) & (targets <= 1)).all(axis=1) & (np.abs(targets.sum(axis=1) - 1) <= SOFT_TOLERANCE)
    if not valid.all():
        bad_ids = frame.loc[~valid, spec.id_column]
        raise DataError(
            f"{path}: {int((~valid).sum())} row(s) are neither one-hot nor probabilities summing to 1 over "
            f"{', '.join(spec.label_columns)}: id(s) {_some(bad_ids)}")
    return targets / targets.sum(axis=1, keepdims=True)


def is_soft(targets: np.ndarray) -> np.ndarray:
    """Rows that are probabilities rather than one-hot."""
    return ~np.isin(targets, (0.0, 1.0)).all(axis=1)


@dataclass
class Pairs:
    """Parsed rows: ids, turn lists per text column, and labels (None for test data)."""

    ids: list[str]
    texts: dict[str, list[list[str]]]
    labels: np.ndarray | None = None
    repairs: RepairCounts = field(default_factory=RepairCounts)
    targets: np.ndarray | None = None  # probability rows (one-hot for hard labels); None: one-hot of labels

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index) -> Pairs:
        index = list(index)
        return Pairs(
            ids=[self.ids[i] for i in index],
            texts={k: [v[i] for i in index] for k, v in self.texts.items()},
            labels=None if self.labels is None else self.labels[index],
            repairs=self.repairs,
            targets=None if self.targets is None else self.targets[index],
        )

    def target_rows(self, num_labels: int) -> np.ndarray:
        """Targets as probability rows: the soft ones as given, hard labels one-hot."""
        if self.targets is not None:
            return self.targets
        return np.eye(num_labels)[self.labels]

    def swapped(self, spec: CompetitionSpec) -> Pairs:
        """The A/B-swapped copy: response columns exchanged, labels mapped (ties stay ties)."""
        texts = dict(self.texts)
        for a, b in spec.swap_pairs:
            if a in texts and b in texts:
                texts[a], texts[b] = self.texts[b], self.texts[a]
        labels = None if self.labels is None else np.asarray(spec.label_swap)[self.labels]
        # label_swap is its own inverse (A<->B, tie stays), so it maps target columns too
        targets = None if self.targets is None else self.targets[:, list(spec.label_swap)]
        return Pairs(ids=list(self.ids), texts=texts, labels=labels, repairs=self.repairs, targets=targets)

    @staticmethod
    def concat(parts: list[Pairs]) -> Pairs:
        has_labels = all(p.labels is not None for p in parts)
        has_targets = has_labels and any(p.targets is not None for p in parts)
        num_labels = max((p.targets.shape[1] for p in parts if p.targets is not None), default=0)
        return Pairs(
            ids=[i for p in parts for i in p.ids],
            texts={k: [t for p in parts for t in p.texts[k]] for k in parts[0].texts},
            labels=np.concatenate([p.labels for p in parts]) if has_labels else None,
            repairs=RepairCounts(sum((p.repairs.counts for p in parts), Counter())),
            targets=np.concatenate([p.target_rows(num_labels) for p in parts]) if has_targets else None,
        )


def _text_turn(cell: object, repairs: RepairCounts) -> list[str]:
    """A plain-text cell is one turn; a missing one is no turn."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)) or cell == "":
        repairs.add("empty cells")
        return []
    return [_clean_text(str(cell), repairs)]


def _parse_frame(path: Path, frame: pd.DataFrame, spec: CompetitionSpec, plain_text: list[str] | None = None) -> Pairs:
    repairs = RepairCounts()
    texts = {}
    listed = [c for c in frame.attrs.get(LIST_CELLS, []) if c in spec.text_columns]
    if listed and spec.cells == "text":  # said once: the spec expects one text per cell
        log.warning("note: %s: column(s) %s hold lists, not text: each list is read as turns", path, ", ".join(listed))
    for column in spec.text_columns:
        if column in listed:
            texts[column] = [parse_turns(cell, repairs) for cell in frame[column]]
        elif spec.cells == "text" and not plain_text:
            texts[column] = [_text_turn(cell, repairs) for cell in frame[column]]
        elif plain_text and column in plain_text:
            texts[column] = [[_clean_text(str(cell), repairs)] for cell in frame[column]]
        else:
            texts[column] = [parse_turns(cell, repairs) for cell in frame[column]]
    if repairs.counts:
        log.warning("%s: repaired %s", path, repairs.summary())
    return Pairs(ids=frame[spec.id_column].astype(str).tolist(), texts=texts, repairs=repairs)


def read_train(path: Path, spec: CompetitionSpec, column_map: ColumnMap | None = None) -> Pairs:
    if column_map is not None:
        frame = _read_mapped(path, spec, column_map)
    else:
        frame = read_csv_checked(path, spec.train_columns)
        check_id_type(path, frame, spec.id_column, spec.train_ids)
    check_unique_ids(path, frame, spec.id_column)
    pairs = _parse_frame(path, frame, spec, column_map.plain_text if column_map else None)
    targets = (targets_from_labels if spec.labels == "column" else targets_from_columns)(path, frame, spec)
    pairs.labels = targets.argmax(axis=1)
    pairs.targets = targets if is_soft(targets).any() else None  # hard files keep the class-index path
    return pairs


def read_test(path: Path, spec: CompetitionSpec) -> Pairs:
    frame = read_csv_checked(path, spec.test_columns, allow_extra=list(spec.test_extra_columns))
    check_id_type(path, frame, spec.id_column, spec.test_ids)
    check_unique_ids(path, frame, spec.id_column)
    return _parse_frame(path, frame, spec)


def _read_mapped(path: Path, spec: CompetitionSpec, column_map: ColumnMap) -> pd.DataFrame:
    """Rename an extra file's columns onto the competition's; columns the spec does not need are dropped."""
    needed = [spec.id_column, *spec.text_columns, *spec.target_columns]
    source_of = {c: column_map.columns.get(c, c) for c in needed}
    frame = read_csv_checked(path, list(dict.fromkeys(source_of.values())), allow_extra=True)
    return pd.DataFrame({c: frame[src] for c, src in source_of.items()})


def find_column_map(path: Path, maps: dict[str, ColumnMap]) -> ColumnMap | None:
    for column_map in maps.values():
        if fnmatch.fnmatch(path.name, column_map.match):
            return column_map
    return None


def _pair_keys(pairs: Pairs, spec: CompetitionSpec) -> tuple[list[str], list[str]]:
    """A key per row and the key of its A/B-swapped twin, so duplicates are found in either order."""
    prompt, a, b = (spec.text_columns[0], *spec.swap_pairs[0])
    dump = lambda turns: json.dumps(turns, ensure_ascii=False)  # noqa: E731
    keys, swapped = [], []
    for p, ra, rb in zip(pairs.texts[prompt], pairs.texts[a], pairs.texts[b]):
        keys.append("\x1f".join((dump(p), dump(ra), dump(rb))))
        swapped.append("\x1f".join((dump(p), dump(rb), dump(ra))))
    return keys, swapped


@dataclass
class TrainSet:
    pairs: Pairs
    duplicates_dropped: int = 0
    test_leaks_dropped: int = 0
    per_file_rows: dict[str, int] = field(default_factory=dict)
    dropped_ids: list[str] = field(default_factory=list)  # duplicates and test leaks, removed after reading


def load_training_files(
    paths: list[Path],
    spec: CompetitionSpec,
    column_maps: dict[str, ColumnMap] | None = None,
    exclude_test: Path | None = None,
) -> TrainSet:
    """Read, check and concatenate train files; drop rows repeated across files (either A/B order) and test leaks."""
    parts: list[Pairs] = []
    per_file: dict[str, int] = {}
    for index, path in enumerate(paths):
        pairs = read_train(path, spec, find_column_map(path, column_maps or {}))
        if len(paths) > 1:  # ids of different sources may collide; prefix them to keep them unique
            pairs.ids = [f"{index}:{i}" if index else i for i in pairs.ids]
        per_file[str(path)] = len(pairs)
        parts.append(pairs)
    merged = Pairs.concat(parts) if len(parts) > 1 else parts[0]

    keys, swapped = _pair_keys(merged, spec)
    seen: set[str] = set()
    keep: list[int] = []
    duplicates = 0
    for i, (key, twin) in enumerate(zip(keys, swapped)):
        if key in seen or twin in seen:
            duplicates += 1
            continue
        seen.add(key)
        keep.append(i)

    leaks = 0
    if exclude_test is not None:
        test_keys, test_swapped = _pair_keys(read_test(exclude_test, spec), spec)
        test_set = set(test_keys) | set(test_swapped)
        before = len(keep)
        keep = [i for i in keep if keys[i] not in test_set]
        leaks = before - len(keep)
    result = merged.subset(keep) if len(keep) != len(merged) else merged
    kept = set(keep)
    dropped = [merged.ids[i] for i in range(len(merged)) if i not in kept]
    return TrainSet(result, duplicates_dropped=duplicates, test_leaks_dropped=leaks, per_file_rows=per_file,
                    dropped_ids=dropped)


_SAID: set[tuple] = set()


def say_dropped(train_set: TrainSet) -> str | None:
    """One line for the rows load_training_files dropped (said once per process for the same files, so cv's folds do
    not repeat it); None when nothing was dropped."""
    parts = []
    if train_set.duplicates_dropped:
        parts.append(f"{train_set.duplicates_dropped} duplicate rows (the same prompt and responses, in either A/B "
                     f"order, within or across the train files)")
    if train_set.test_leaks_dropped:
        parts.append(f"{train_set.test_leaks_dropped} rows also in the test file")
    if not parts:
        return None
    total = sum(train_set.per_file_rows.values())
    line = f"note: dropped {' and '.join(parts)}: {total - len(train_set.pairs)} of {total} rows"
    key = (tuple(train_set.per_file_rows.items()), line)
    if key not in _SAID:
        _SAID.add(key)
        log.warning("%s", line)
    return line


def class_prior(labels: np.ndarray, num_labels: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=num_labels).astype(float)
    return counts / counts.sum()
