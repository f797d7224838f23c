"""Benchmark, not a test: the submission writer and validator at hidden-test size (every check is linear)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from kaggle_kit.competition.spec import CompetitionSpec, get_spec, shipped_specs
from kaggle_kit.submission import expected_ids, validate_file, write_submission


def _best_of(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_one(spec: CompetitionSpec, rows: int, repeat: int, folder: Path) -> dict:
    rng = np.random.default_rng(0)
    ids = [str(i) for i in rng.choice(10 * rows, size=rows, replace=False)]
    order = list(rng.permutation(ids))  # the sample_submission order differs from the prediction order
    probs = rng.dirichlet(np.ones(spec.num_labels), size=rows)
    sample = folder / f"{spec.slug}-sample.csv"
    frame = pd.DataFrame({spec.id_column: order})
    for column in spec.submission_columns[1:]:
        frame[column] = spec.label_values[0] if spec.submission == "labels" else 1 / spec.num_labels
    frame.to_csv(sample, index=False)
    out = folder / f"{spec.slug}-submission.csv"
    write_s = _best_of(repeat, lambda: write_submission(ids, probs, order, spec, out, overwrite=True))
    reference = expected_ids(spec, sample_submission=sample)
    validate_s = _best_of(repeat, lambda: validate_file(out, expected_ids(spec, sample_submission=sample), spec))
    report = validate_file(out, reference, spec)
    if not report.ok:  # pragma: no cover - the writer validates what it writes
        raise AssertionError(report.summary())
    return {"competition": spec.slug, "rows": rows, "submission": spec.submission,
            "write_s": round(write_s, 4), "validate_s": round(validate_s, 4)}


def bench_validate(rows: int = 25_000, repeat: int = 3, slugs: list[str] | None = None) -> list[dict]:
    """Seconds (best of `repeat`) to order + check + write a submission, and to read + check it against the ids of a
    sample_submission.csv (validate), per competition shape."""
    specs = [get_spec(s) for s in slugs] if slugs else list(shipped_specs().values())
    with tempfile.TemporaryDirectory(prefix="kk-bench-validate-") as tmp:
        return [bench_one(spec, rows, repeat, Path(tmp)) for spec in specs]
