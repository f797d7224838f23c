"""Typed, range-checked settings: each is declared once with `setting(...)` (default, help, range, choices) and every
value, from kaggle-kit.toml, a flag or code, is checked against that declaration."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable
from dataclasses import field, fields
from typing import Any

from kaggle_kit.errors import KitError


def setting(default: Any, help: str, *, min: float | None = None, max: float | None = None,
            choices: tuple | None = None, flag: str | None = None, cli: bool = True,
            check: Callable[[Any], str | None] | None = None, group: str | None = None) -> Any:
    """A config field: default, help text (shown by --help), range or choices, whether it becomes a CLI flag, and
    the concern it belongs to (`group`: how --help and `kaggle-kit config` list it).

    `check` returns an error message for a value that passes the type and range tests but is still wrong."""
    meta = {"help": help, "min": min, "max": max, "choices": choices, "flag": flag, "cli": cli, "check": check,
            "group": group}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)

def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _matches(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(tp)
        return isinstance(value, dict) and all(_matches(k, key) and _matches(v, item) for k, v in value.items())
    return isinstance(value, tp)


def _expected(tp: Any) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_expected(a) for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) is list:
        return f"a list of {_expected(typing.get_args(tp)[0])}"
    if typing.get_origin(tp) is dict:
        return "a table"
    return {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}.get(
        _type_name(tp), _type_name(tp))


def value_problem(f: dataclasses.Field, tp: Any, value: Any) -> str | None:
    """Why `value` is not acceptable for field `f` of type `tp`, or None."""
    if not _matches(value, tp):
        return f"must be {_expected(tp)}, got {value!r}"
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):  # NaN passes every range test; inf passes a min
        return f"must be a finite number, got {value!r}"
    meta = f.metadata
    if meta.get("choices") and value not in meta["choices"]:
        return f"must be one of {', '.join(map(str, meta['choices']))}, got {value!r}"
    if meta.get("min") is not None and value < meta["min"]:
        return f"must be >= {meta['min']}, got {value!r}"
    if meta.get("max") is not None and value > meta["max"]:
        return f"must be <= {meta['max']}, got {value!r}"
    if meta.get("check"):
        problem = meta["check"](value)
        if problem:
            return f"{problem}, got {value!r}"
    return None


Label = Callable[[str], "tuple[str, type[KitError]]"]  # field name -> (how an error names it, the error's class)
UNCHECKED = ("source", "sources", "recipe_note")  # ProjectConfig's record of where it came from, not settings


def check_section(section: Any, where: str | Label) -> Any:
    """Type- and range-check every field of a config dataclass; the first problem is one KitError line, naming the
    field as `where` says (a prefix, or a Label naming the layer each key came from)."""
    types_of = field_types(type(section))
    for f in fields(section):
        if f.name in UNCHECKED or dataclasses.is_dataclass(types_of[f.name]):
            continue
        problem = value_problem(f, types_of[f.name], getattr(section, f.name))
        if problem:
            name, error = where(f.name) if callable(where) else (f"{where} {f.name}".strip(), KitError)
            raise error(f"{name} {problem}")
    return section


def check_keys(where: str, cls: type, data: dict[str, Any], error: type[KitError] = KitError) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise error(f"{where}: unknown key(s) {', '.join(unknown)}", hint=known_hint(unknown[0], known))


def known_hint(name: str, known: set[str] | list[str], otherwise: str | None = None) -> str:
    """'did you mean X?' when a known name is close, else `otherwise` (default: the known names)."""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"did you mean {close[0]}?" if close else otherwise or f"known: {', '.join(sorted(known))}"


def build_section(where: str, cls: type, data: Any, label: Label | None = None):
    """A config dataclass from its table: unknown keys refused, then every value checked."""
    if not isinstance(data, dict):
        raise KitError(f"{where} must be a table")
    check_keys(where, cls, data)
    return check_section(cls(**data), label or where)
