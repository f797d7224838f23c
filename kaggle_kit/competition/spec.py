"""Everything competition-specific lives in one spec, read from data: the shipped competitions.toml, or a project's
kaggle-kit.toml [competition] table. A second arena-shaped competition is a new table, not a fork."""

from __future__ import annotations

import re
import sys
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 inside older Kaggle images
    import tomli as tomllib

from kaggle_kit.errors import KitError

SPECS_FILE = Path(__file__).with_name("competitions.toml")
FORMATS = ("csv", "parquet")
CELLS = ("json_list", "text")  # a JSON list of turns per cell, or one plain-text turn
ID_TYPES = ("int", "str")
LABELS = ("one_hot", "column")  # one 0/1 (or probability) column per class, or one column holding a class value
METRICS = ("log_loss", "accuracy")
SUBMISSIONS = ("probabilities", "labels")


@dataclass(frozen=True)
class CompetitionSpec:
    slug: str
    text_columns: tuple[str, ...]  # in template order; the prompt first
    swap_pairs: tuple[tuple[str, str], ...]  # columns exchanged by A/B swapping; the first pair is the responses
    classes: tuple[str, ...]  # class names in probability-column order
    label_swap: tuple[int, ...]  # class index -> class index after an A/B swap (its own inverse)
    labels: str = "one_hot"
    one_hot_columns: tuple[str, ...] = ()  # labels = one_hot: a column per class
    label_column: str | None = None  # labels = column: the column holding the class value ...
    label_values: tuple[str, ...] = ()  # ... and the value naming each class
    title: str = ""
    format: str = "csv"
    train_file: str = "train.csv"
    test_file: str = "test.csv"
    sample_submission_file: str = "sample_submission.csv"
    cells: str = "json_list"
    id_column: str = "id"
    train_ids: str = "int"
    test_ids: str = "int"
    train_extra_columns: tuple[str, ...] = ()  # present in train only, not used as features
    test_extra_columns: tuple[str, ...] = ()  # allowed in test, not required, not used
    metric: str = "log_loss"
    submission: str = "probabilities"
    submission_file: str = "submission.csv"
    time_limit_s: int | None = None  # the scoring notebook's runtime limit
    hidden_test_rows: int | None = None  # rows of the hidden test the scoring rerun predicts (about)

    @property
    def label_columns(self) -> tuple[str, ...]:
        """The probability columns (oof files, teacher files, probability submissions): one per class."""
        if self.labels == "one_hot":
            return self.one_hot_columns
        return tuple(f"{self.label_column}_{v}" for v in self.label_values)

    @property
    def target_columns(self) -> list[str]:
        """The label columns of a train file."""
        return list(self.one_hot_columns) if self.labels == "one_hot" else [str(self.label_column)]

    @property
    def train_columns(self) -> list[str]:
        return [self.id_column, *self.train_extra_columns, *self.text_columns, *self.target_columns]

    @property
    def test_columns(self) -> list[str]:
        return [self.id_column, *self.text_columns]

    @property
    def submission_columns(self) -> list[str]:
        if self.submission == "labels":
            return [self.id_column, str(self.label_column)]
        return [self.id_column, *self.label_columns]

    @property
    def num_labels(self) -> int:
        return len(self.classes)

    @property
    def soft_labels(self) -> bool:
        """Whether the train file's labels can hold probabilities (one-hot columns can, a class value cannot)."""
        return self.labels == "one_hot"

    @property
    def metric_name(self) -> str:
        return {"log_loss": "log loss", "accuracy": "accuracy"}[self.metric]

    @property
    def tie_class(self) -> int | None:
        """The class an A/B swap keeps in place (a tie), if the competition has one."""
        fixed = [k for k, j in enumerate(self.label_swap) if k == j]
        return fixed[0] if fixed else None

    @property
    def rules_rewarded(self) -> bool:
        """The post-processing rules set fixed probability rows: log loss rewards them, accuracy does not."""
        return self.metric == "log_loss" and self.tie_class is not None

    def metric_note(self) -> str | None:
        """What a non-log-loss metric changes (said once by train and predict, never silent)."""
        if self.metric == "log_loss":
            return None
        return (f"{self.slug} scores {self.metric_name}: training and early stopping still minimise log loss (a "
                f"smoother signal for the same argmax) and the temperature / side head are still fitted, for "
                f"calibrated --probabilities and blends; the submission holds each row's most probable label")

    def pseudo_label_note(self) -> str | None:
        """What pseudo-labels are for a competition whose train file holds a class value (said, never silent)."""
        if self.soft_labels:
            return None
        return (f"{self.slug}'s train file holds one {self.label_column} value per row, so pseudo-label writes hard "
                f"labels (each row's most probable class), not probabilities; --min-confidence keeps the surer rows")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(label_columns=list(self.label_columns), submission_columns=self.submission_columns)
        return data


def rules_url(slug: str) -> str:
    """Where a competition's rules are accepted (a 403 from Kaggle usually means they were not)."""
    return f"https://www.kaggle.com/competitions/{slug}/rules"


# ---- reading a spec table: typed, range-checked, one line per problem
_STR, _STRS = "a string", "a list of strings"
KEYS: dict[str, tuple[str, tuple | None]] = {  # key -> (expected, choices)
    "title": (_STR, None), "format": (_STR, FORMATS), "train_file": (_STR, None), "test_file": (_STR, None),
    "sample_submission_file": (_STR, None), "submission_file": (_STR, None), "cells": (_STR, CELLS),
    "id_column": (_STR, None), "train_ids": (_STR, ID_TYPES), "test_ids": (_STR, ID_TYPES),
    "text_columns": (_STRS, None), "swap_columns": ("a list of column pairs", None),
    "train_extra_columns": (_STRS, None), "test_extra_columns": (_STRS, None), "classes": (_STRS, None),
    "class_swap": ("a table of class = class", None), "labels": (_STR, LABELS), "label_columns": (_STRS, None),
    "label_column": (_STR, None), "label_values": (_STRS, None), "metric": (_STR, METRICS),
    "submission": (_STR, SUBMISSIONS), "time_limit_s": ("an integer", None), "hidden_test_rows": ("an integer", None),
    "based_on": (_STR, None), "slug": (_STR, None),
}
REQUIRED = ("text_columns", "classes", "labels", "metric", "submission")


FILE_KEYS = ("train_file", "test_file", "sample_submission_file", "submission_file")
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")  # Kaggle's competition slugs (the URL's last part)


def plain_name_problem(name: str) -> str | None:
    """A file name a spec or config gives is joined to a folder: it must stay inside it (no folder part, no '..')."""
    if name in ("", ".", "..") or Path(name).name != name or "\\" in name or "\x00" in name:
        return "must be a plain file name (no folder part, no '..')"
    return None


def slug_problem(slug: str) -> str | None:
    """A competition slug becomes a URL part, a metadata source and a folder name: Kaggle's form only."""
    return None if SLUG_RE.match(slug) else "must be a Kaggle competition slug (a-z, 0-9 and '-', e.g. my-arena)"


def _typed(key: str, value: Any) -> bool:
    expected = KEYS[key][0]
    if expected == _STR:
        return isinstance(value, str) and value.strip() != ""
    if expected == _STRS:
        return isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    if expected == "an integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if key == "swap_columns":
        return isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 and all(isinstance(c, str)
                                                                                          for c in p) for p in value)
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _check(where: str, ok: bool, message: str) -> None:
    if not ok:
        raise KitError(f"{where} {message}")


def spec_from_table(slug: str, table: dict[str, Any], where: str = "[competition]") -> CompetitionSpec:
    """A spec from a competitions.toml / kaggle-kit.toml table; the first problem is one KitError line."""
    if not isinstance(table, dict):
        raise KitError(f"{where} must be a table")
    unknown = sorted(set(table) - set(KEYS))
    _check(where, not unknown, f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(KEYS))})")
    for key, value in table.items():
        expected, choices = KEYS[key]
        _check(where, _typed(key, value), f"{key} must be {expected}, got {value!r}")
        _check(where, not choices or value in choices,
               f"{key} must be one of {', '.join(choices or ())}, got {value!r}")
    if "based_on" in table:
        base = shipped_tables().get(table["based_on"])
        _check(where, base is not None, f"based_on '{table['based_on']}' is not a shipped competition "
                                        f"(known: {', '.join(sorted(shipped_tables()))})")
        table = {**base, **{k: v for k, v in table.items() if k != "based_on"}}
    missing = [k for k in REQUIRED if k not in table]
    _check(where, not missing, f"missing key(s) {', '.join(missing)}")
    t = dict(table)
    fmt = t.get("format", "csv")
    t.setdefault("train_file", f"train.{fmt}")
    t.setdefault("test_file", f"test.{fmt}")
    for key in ("train_file", "test_file"):
        _check(where, t[key].endswith(f".{fmt}"),
               f"{key} '{t[key]}' must be a plain file name ending in .{fmt} (format = \"{fmt}\")")
    for key in FILE_KEYS:
        _check(where, key not in t or plain_name_problem(t[key]) is None,
               f"{key} '{t.get(key)}' {plain_name_problem(str(t.get(key)))}")
    for key in ("time_limit_s", "hidden_test_rows"):
        _check(where, t.get(key) is None or t[key] >= 1, f"{key} must be >= 1, got {t.get(key)!r}")

    classes = tuple(t["classes"])
    _check(where, 2 <= len(classes) <= 3 and len(set(classes)) == len(classes),
           f"classes must be 2 or 3 distinct names, got {list(classes)}")
    swap = dict(t.get("class_swap", {}))
    _check(where, all(k in classes and v in classes for k, v in swap.items()),
           f"class_swap {swap} names a class not in classes {list(classes)}")
    for k, v in list(swap.items()):  # a pair given one way holds both ways
        swap.setdefault(v, k)
    label_swap = tuple(classes.index(swap.get(c, c)) for c in classes)
    _check(where, all(label_swap[j] == k for k, j in enumerate(label_swap)) and len(set(label_swap)) == len(classes),
           f"class_swap {swap} must exchange classes in pairs (A <-> B), each class at most once")
    _check(where, label_swap != tuple(range(len(classes))), "class_swap must exchange at least one pair of classes")

    text = tuple(t["text_columns"])
    _check(where, len(text) >= 3, f"text_columns must name the prompt and the two responses, got {list(text)}")
    pairs = tuple(tuple(p) for p in t.get("swap_columns", [[text[1], text[2]]]))
    _check(where, bool(pairs) and all(c in text for c in pairs[0]),
           f"swap_columns' first pair must be two of text_columns {list(text)}, got {list(pairs[0]) if pairs else []}")
    _check(where, text[0] not in pairs[0], f"text_columns' first entry ({text[0]}) must be the prompt, not a response")

    labels = t["labels"]
    if labels == "one_hot":
        one_hot = tuple(t.get("label_columns", ()))
        _check(where, len(one_hot) == len(classes), f"labels = \"one_hot\" needs label_columns, one per class "
                                                    f"{list(classes)}, got {list(one_hot)}")
        label_column, values = None, ()
    else:
        label_column, values = t.get("label_column"), tuple(t.get("label_values", classes))
        _check(where, label_column is not None, "labels = \"column\" needs label_column (e.g. \"winner\")")
        _check(where, len(values) == len(classes) and len(set(values)) == len(values),
               f"label_values must name each class once {list(classes)}, got {list(values)}")
        one_hot = ()
    _check(where, not (t["submission"] == "labels" and labels != "column"),
           "submission = \"labels\" needs labels = \"column\" (the column the submission holds)")
    columns = [t.get("id_column", "id"), *text, *t.get("train_extra_columns", []), *one_hot,
               *([label_column] if label_column else [])]
    dup = sorted({c for c in columns if columns.count(c) > 1})
    _check(where, not dup, f"column(s) named twice: {', '.join(map(str, dup))}")

    return CompetitionSpec(
        slug=slug, title=t.get("title", slug), format=fmt, train_file=t["train_file"], test_file=t["test_file"],
        sample_submission_file=t.get("sample_submission_file", "sample_submission.csv"),
        submission_file=t.get("submission_file", "submission.csv"), cells=t.get("cells", "json_list"),
        id_column=t.get("id_column", "id"), train_ids=t.get("train_ids", "int"), test_ids=t.get("test_ids", "int"),
        text_columns=text, swap_pairs=pairs, train_extra_columns=tuple(t.get("train_extra_columns", ())),
        test_extra_columns=tuple(t.get("test_extra_columns", ())), classes=classes, label_swap=label_swap,
        labels=labels, one_hot_columns=one_hot, label_column=label_column, label_values=values, metric=t["metric"],
        submission=t["submission"], time_limit_s=t.get("time_limit_s"), hidden_test_rows=t.get("hidden_test_rows"))


@lru_cache(maxsize=1)
def shipped_tables() -> dict[str, dict[str, Any]]:
    return tomllib.loads(SPECS_FILE.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def shipped_specs() -> dict[str, CompetitionSpec]:
    return {slug: spec_from_table(slug, table, f"{SPECS_FILE.name} [{slug}]")
            for slug, table in shipped_tables().items()}


def project_spec(table: dict[str, Any], where: str = "kaggle-kit.toml [competition]") -> CompetitionSpec:
    """The spec a project's [competition] table describes: `slug` names it (default: based_on's slug)."""
    if not isinstance(table, dict):
        raise KitError(f"{where} must be a table")
    slug = table.get("slug", table.get("based_on"))
    if not isinstance(slug, str) or not slug:
        raise KitError(f"{where} needs slug = \"<competition slug>\" (or based_on = \"<shipped slug>\")")
    if slug_problem(slug):
        raise KitError(f"{where} slug '{slug}' {slug_problem(slug)}")
    return spec_from_table(slug, {k: v for k, v in table.items() if k != "slug"}, where)


def get_spec(slug: str) -> CompetitionSpec:
    from kaggle_kit.errors import UsageProblem

    specs = shipped_specs()
    if slug not in specs:
        raise UsageProblem(f"unknown competition '{slug}'", hint=f"known: {', '.join(sorted(specs))}; describe "
                           "another in kaggle-kit.toml's [competition] table (docs/competitions.md)")
    return specs[slug]


LMSYS = get_spec("lmsys-chatbot-arena")
SPECS = shipped_specs()
