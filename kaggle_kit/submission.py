"""The submission schema: validate any file against sample_submission/test ids, and the one writer every producer
uses."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kaggle_kit.atomic import atomic_path, refuse_overwrite
from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.data.reading import MAX_IDS_SHOWN, check_unique_ids, read_csv_checked
from kaggle_kit.errors import DataError

SUM_TOLERANCE = 1e-6
EPS = 1e-7
SUBMISSIONS_DIR = Path("submissions")


@dataclass
class ValidationReport:
    path: str
    rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return f"{self.path}: valid ({self.rows} rows)"
        return (f"{self.path}: INVALID, {len(self.problems)} problem(s):\n"
                + "\n".join(f"  - {p}" for p in self.problems))

    def to_dict(self) -> dict:
        return {"path": self.path, "rows": self.rows, "valid": self.ok, "problems": self.problems}


def _examples(values) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:MAX_IDS_SHOWN])
    return shown + (", ..." if len(values) > MAX_IDS_SHOWN else "")


def expected_ids(spec: CompetitionSpec, sample_submission: Path | None = None, test: Path | None = None) -> list[str]:
    """The ids a submission must cover, in order; a reference file that repeats an id is itself an error."""
    if sample_submission is not None:
        path, frame = sample_submission, read_csv_checked(sample_submission, spec.submission_columns)
    elif test is not None:
        path, frame = test, read_csv_checked(test, spec.test_columns, allow_extra=list(spec.test_extra_columns))
    else:
        raise DataError("no reference to validate against", hint="pass --sample-submission or --test")
    check_unique_ids(path, frame, spec.id_column)
    return frame[spec.id_column].astype(str).tolist()


def find_sample_submission(explicit: Path | None, *candidates: Path) -> Path | None:
    """--sample-submission if given (it must exist), else the first candidate that exists, else None (test order)."""
    if explicit is not None:
        if not explicit.is_file():
            raise DataError(f"--sample-submission {explicit}: file not found")
        return explicit
    return next((c for c in candidates if c.is_file()), None)


def _not_in(values, reference) -> list:
    """Entries of `values` absent from `reference`, in `values`' order: one set, linear in both (pandas' isin on
    Arrow-backed strings iterates in Python and was the slowest step at 25,000 rows)."""
    known = set(reference)
    return [v for v in values if v not in known]


def submission_order(spec: CompetitionSpec, test_ids: list[str], sample_submission: Path | None) -> list[str]:
    """The row order of the output: sample_submission's when there is one (its ids must be the test's), else test's."""
    if sample_submission is None:
        return list(test_ids)
    order = expected_ids(spec, sample_submission=sample_submission)
    missing, extra = _not_in(order, test_ids), _not_in(test_ids, order)
    if len(missing) or len(extra):
        raise DataError(f"{sample_submission} does not match the test file: {len(missing)} id(s) not in the test "
                        f"({_examples(missing)}), {len(extra)} test id(s) not in it ({_examples(extra)})",
                        hint=f"pass the {spec.sample_submission_file} that belongs to this {spec.test_file}")
    return order


def _id_problems(got: pd.Series, ids: list[str]) -> list[str]:
    problems = []
    present = list(dict.fromkeys(got.tolist()))  # unique, first-seen order
    if len(present) < len(got):
        counts = Counter(got.tolist())
        dup = [i for i in present if counts[i] > 1]
        problems.append(f"{len(dup)} duplicated id(s): {_examples(dup)}")
    missing = _not_in(ids, present)
    if len(missing):
        problems.append(f"{len(missing)} missing id(s): {_examples(missing)}")
    extra = _not_in(present, ids)
    if len(extra):
        problems.append(f"{len(extra)} unexpected id(s): {_examples(extra)}")
    return problems


def _probability_problems(frame: pd.DataFrame, got: pd.Series, columns: list[str]) -> list[str]:
    problems = []
    values = frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad_value = ~np.isfinite(values).all(axis=1)
    if bad_value.any():
        problems.append(f"{int(bad_value.sum())} row(s) with missing/non-numeric/infinite values: "
                        f"id(s) {_examples(got[bad_value])}")
    finite = np.where(np.isfinite(values), values, 0.5)
    out_of_range = ((finite < 0) | (finite > 1)).any(axis=1) & ~bad_value
    if out_of_range.any():
        problems.append(f"{int(out_of_range.sum())} row(s) with values outside [0, 1]: "
                        f"id(s) {_examples(got[out_of_range])}")
    bad_sum = (np.abs(finite.sum(axis=1) - 1.0) > SUM_TOLERANCE) & ~bad_value
    if bad_sum.any():
        problems.append(f"{int(bad_sum.sum())} row(s) not summing to 1 (+/- {SUM_TOLERANCE}): "
                        f"id(s) {_examples(got[bad_sum])}")
    return problems


def _label_problems(frame: pd.DataFrame, got: pd.Series, spec: CompetitionSpec) -> list[str]:
    column = str(spec.label_column)
    raw = frame[column]
    values = raw.astype(str).str.strip().where(raw.notna(), "")
    bad = ~values.isin(spec.label_values)
    if not bad.any():
        return []
    found = ", ".join(f"'{v}' x{n}" for v, n in values[bad].value_counts().head(MAX_IDS_SHOWN).items())
    return [f"{int(bad.sum())} row(s) with {column} not one of {', '.join(spec.label_values)} (found {found}): "
            f"id(s) {_examples(got[bad])}"]


def validate_frame(frame: pd.DataFrame, ids: list[str], spec: CompetitionSpec, name: str,
                   probabilities: bool | None = None) -> ValidationReport:
    """Every kind of problem is reported with a count and examples, not just the first. Linear in the rows: every
    check is one vectorised pass or one hash join (25,000 rows: `kaggle-kit bench validate`).

    probabilities: check a probability file (id + one column per class) whatever the spec submits."""
    as_probabilities = spec.submission == "probabilities" if probabilities is None else probabilities
    wanted = [spec.id_column, *spec.label_columns] if as_probabilities else spec.submission_columns
    report = ValidationReport(path=name, rows=len(frame))
    columns = [str(c) for c in frame.columns]
    if columns != wanted:
        report.problems.append(f"header is {columns}, expected exactly {wanted}")
        if any(c not in columns for c in wanted):
            return report
    got = frame[spec.id_column].astype(str)
    report.problems.extend(_id_problems(got, ids))
    if as_probabilities:
        report.problems.extend(_probability_problems(frame, got, list(spec.label_columns)))
    else:
        report.problems.extend(_label_problems(frame, got, spec))
    return report


def validate_file(path: Path, ids: list[str], spec: CompetitionSpec,
                  probabilities: bool | None = None) -> ValidationReport:
    try:
        frame = pd.read_csv(path, encoding="utf-8-sig", dtype={spec.id_column: str})
    except FileNotFoundError:
        return ValidationReport(str(path), problems=["file not found"])
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        return ValidationReport(str(path), problems=[f"cannot read as CSV: {str(exc).splitlines()[0]}"])
    return validate_frame(frame, ids, spec, str(path), probabilities)


def normalise(probs: np.ndarray) -> np.ndarray:
    """Clip to [EPS, 1-EPS] and renormalise rows, so no row can cost infinite log loss."""
    probs = np.clip(np.asarray(probs, dtype=np.float64), EPS, 1 - EPS)
    return probs / probs.sum(axis=1, keepdims=True)


def probability_frame(ids: list[str], probs: np.ndarray, order: list[str], spec: CompetitionSpec) -> pd.DataFrame:
    """id + one normalised probability column per class, rows in `order` (sample_submission's ids)."""
    if len(ids) != len(probs):
        raise DataError(f"{len(ids)} ids but {len(probs)} prediction rows")
    if np.ndim(probs) != 2 or np.shape(probs)[1] != spec.num_labels:
        raise DataError(f"predictions have shape {np.shape(probs)}, expected one column per class of {spec.slug} "
                        f"({', '.join(spec.classes)})")
    frame = pd.DataFrame(normalise(probs), columns=list(spec.label_columns))
    frame.insert(0, spec.id_column, [str(i) for i in ids])
    frame = frame.drop_duplicates(spec.id_column).set_index(spec.id_column)
    missing = _not_in(order, frame.index.tolist())
    if len(missing):
        raise DataError(f"no prediction for {len(missing)} id(s): {_examples(missing)}")
    return frame.reindex(pd.Index(order, dtype=object)).rename_axis(spec.id_column).reset_index()


def submission_frame(ids: list[str], probs: np.ndarray, order: list[str], spec: CompetitionSpec) -> pd.DataFrame:
    """What the competition scores: the probabilities, or (accuracy) the label of each row's most probable class."""
    frame = probability_frame(ids, probs, order, spec)
    if spec.submission == "probabilities":
        return frame
    best = frame[list(spec.label_columns)].to_numpy().argmax(axis=1)
    return pd.DataFrame({spec.id_column: frame[spec.id_column],
                         str(spec.label_column): np.asarray(spec.label_values, dtype=object)[best]})


def _write_checked(frame: pd.DataFrame, order: list[str], spec: CompetitionSpec, path: Path,
                   probabilities: bool) -> ValidationReport:
    report = validate_frame(frame, order, spec, str(path), probabilities)
    if not report.ok:
        raise DataError(report.summary())
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8f")
    return report


def write_submission(
    ids: list[str],
    probs: np.ndarray,
    order: list[str],
    spec: CompetitionSpec,
    path: Path,
    overwrite: bool = False,
) -> ValidationReport:
    """Order, normalise, validate, then write atomically; an invalid frame is never written."""
    refuse_overwrite(path, overwrite)
    frame = submission_frame(ids, probs, order, spec)
    return _write_checked(frame, order, spec, path, spec.submission == "probabilities")


def write_probabilities(ids: list[str], probs: np.ndarray, order: list[str], spec: CompetitionSpec, path: Path,
                        overwrite: bool = False) -> ValidationReport:
    """The class probabilities behind a submission (id + one column per class), e.g. to blend label submissions."""
    refuse_overwrite(path, overwrite)
    return _write_checked(probability_frame(ids, probs, order, spec), order, spec, path, True)


def submission_path(name: str, directory: Path = SUBMISSIONS_DIR) -> Path:
    name = name if name.endswith(".csv") else f"{name}.csv"
    if Path(name).name != name:
        raise DataError(f"submission name '{name}' must be a plain file name (it is written under {directory}/)")
    return directory / name
