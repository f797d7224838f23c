"""One configuration from layers of plain data: defaults < recipe < kaggle-kit.toml < --set < flags. The layers are
merged as dicts first, then typed and checked once (config/checks.py); each key remembers the layer it came from."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 inside older Kaggle images
    import tomli as tomllib

from kaggle_kit.config.checks import check_keys, field_types, known_hint, value_problem
from kaggle_kit.config.project import (
    CONFIG_FILE,
    SECTIONS,
    TOP_KEYS,
    ProjectConfig,
    config_from_dict,
    key_label,
)
from kaggle_kit.errors import KitError, UsageProblem

DEFAULT, SET, FLAG = "default", "--set", "flag"
SET_FORM = "SECTION.KEY=VALUE, e.g. --set train.learning_rate=2e-4"


@dataclass(frozen=True)
class Layer:
    """One source of settings: its name ("kaggle-kit.toml", "--set", "flag", "recipe NAME") and its tables."""

    source: str
    data: dict[str, Any]


def parse_set(text: str) -> tuple[str, Any]:
    """`SECTION.KEY=VALUE` (or `KEY=VALUE` for a top-level key) as ("section.key", value). VALUE is read as a TOML
    value (2e-4, true, [\"q_proj\", \"v_proj\"], \"text\"); anything else is taken as a string (a bare word, a path).
    The key is checked here; the value with every other when the layers are built."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageProblem(f"--set {text}: expected {SET_FORM}")
    section, _, name = key.rpartition(".")
    if section:
        if section not in SECTIONS:
            raise UsageProblem(f"--set {text}: no section [{section}]",
                               hint=f"sections: {', '.join(SECTIONS)}; top-level keys: {', '.join(TOP_KEYS)}")
        fields = {f.name: f for f in dataclasses.fields(SECTIONS[section])}
        if name not in fields:
            raise UsageProblem(f"--set {text}: [{section}] has no key {name}",
                               hint=known_hint(name, set(fields), f"`kaggle-kit config` lists the keys of [{section}]"))
        return key, _typed(raw.strip(), fields[name], field_types(SECTIONS[section])[name])
    if key not in TOP_KEYS:
        raise UsageProblem(f"--set {text}: expected {SET_FORM}", hint=f"top-level keys: {', '.join(TOP_KEYS)}")
    return key, raw.strip()


def _typed(raw: str, f: dataclasses.Field, tp: Any) -> Any:
    """A TOML value; when the field would refuse it but takes text, the text itself (so `fold=0/5` and a folder
    named 123 stay strings), and a comma-separated list for a list field."""
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if value_problem(f, tp, value) and not value_problem(f, tp, raw):
        return raw
    if isinstance(value, str) and "list" in str(tp) and not value_problem(f, tp, [value]):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def set_layer(entries: Sequence[str | tuple[str, Any]]) -> Layer:
    """The --set layer: raw `SECTION.KEY=VALUE` texts and (key, value) pairs a hidden alias flag gave; later wins."""
    data: dict[str, Any] = {}
    for entry in entries:
        key, value = parse_set(entry) if isinstance(entry, str) else entry
        section, _, name = key.rpartition(".")
        (data.setdefault(section, {}) if section else data)[name] = value
    return Layer(SET, data)


def merge(layers: Sequence[Layer]) -> tuple[dict[str, Any], dict[str, str]]:
    """The layers' tables merged key by key, later over earlier (a [section] key by key, anything else whole), and
    where each key came from."""
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer in layers:
        for key, value in layer.data.items():
            if key in SECTIONS and isinstance(value, dict) and isinstance(data.get(key, {}), dict):
                data.setdefault(key, {}).update(value)
                sources.update({f"{key}.{name}": layer.source for name in value})
            else:
                data[key] = value
                sources[key] = layer.source
    return data, sources


def resolve(layers: Sequence[Layer], gpus: str | None = None, base: Layer | None = None,
            recipe_file: dict[str, Any] | None = None) -> ProjectConfig:
    """The typed config `layers` (lowest first: kaggle-kit.toml, --set, flags) make over the recipe they name (or
    their backbone's family) and the defaults; `base`: values under the recipe (a kernel's embedded defaults);
    `gpus`: the batch shape's GPU (default: the GPUs here); `recipe_file`: a recipe file's tables (in a kernel)."""
    from kaggle_kit.config.recipes import recipe_values

    below = [base] if base else []
    above, above_sources = merge([*below, *layers])
    train = above.get("train", {}) if isinstance(above.get("train"), dict) else {}
    for key in ("recipe", "backbone"):  # checked before they choose a recipe, naming the layer that set them
        _check_key(f"train.{key}", train.get(key), above_sources)
    found = recipe_values(train, gpus, recipe_file)
    recipe = [] if found is None else [Layer(f"recipe {found[1]['recipe']}", {"train": found[0]})]
    for layer in [*recipe, *layers]:
        _check_tables(layer)
    data, sources = merge([*below, *recipe, *layers])
    if base:
        sources.update({key: DEFAULT for key, source in sources.items() if source == base.source})
    files = [layer.source for layer in layers if layer.source not in (SET, FLAG)]
    config = config_from_dict(data, files[0] if files else None, sources)
    if found is not None:
        applied = {k: v for k, v in found[0].items() if sources.get(f"train.{k}") == recipe[0].source}
        config.recipe_note = {**found[1], "applied": applied}
    return config


def _check_key(key: str, value: Any, sources: dict[str, str]) -> None:
    section, _, name = key.partition(".")
    f = next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name)
    problem = value_problem(f, field_types(SECTIONS[section])[name], value)
    if problem:
        where, error = key_label(sources, key, DEFAULT)
        raise error(f"{where} {problem}")


def _check_tables(layer: Layer) -> None:
    """A layer's shape before merging: sections are tables of known keys, named by the layer in any error."""
    for name, value in layer.data.items():
        if name in SECTIONS:
            if not isinstance(value, dict):
                raise KitError(f"{layer.source} [{name}] must be a table")
            check_keys(f"{layer.source} [{name}]", SECTIONS[name], value,
                       UsageProblem if layer.source in (SET, FLAG) else KitError)


def train_sources(config: ProjectConfig) -> dict[str, str]:
    """Where each [train] value of a resolved config came from (recorded in the model dir beside the values)."""
    return {f.name: config.source_of(f"train.{f.name}") for f in dataclasses.fields(config.train)}


def run_note(config: ProjectConfig) -> dict[str, Any]:
    """What a training run records about its settings: the recipe layer (or none) and every value's source."""
    note = config.recipe_note or {"recipe": None, "auto": True, "applied": {}, "predict_max_len": None}
    return {**note, "sources": train_sources(config)}


def embedded(config: ProjectConfig) -> dict[str, Any]:
    """A config as a kernel carries it: every value resolved here, where each came from, and a recipe file's tables
    (the kernel resolves the recipe again on its own GPUs and backbone: `from_embedded`)."""
    from kaggle_kit.config.recipes import is_recipe_file, read_recipe_file

    data = config.to_dict()
    data.pop("source", None)
    data["sources"] = dict(config.sources)
    recipe = config.train.recipe
    if recipe and is_recipe_file(recipe):
        data["recipe_file"] = read_recipe_file(Path(recipe).expanduser())
    return data


def from_embedded(data: dict[str, Any], top: Layer | None = None, gpus: str | None = None) -> ProjectConfig:
    """A kernel's config (`embedded`) resolved there: the values no recipe or default gave stay on top with their
    sources; the recipe is applied again under them (its batch shape for the kernel's GPUs, the family of the
    kernel's backbone); `top`: what the kernel itself sets (the mounted backbone)."""
    data = dict(data)
    sources: dict[str, str] = data.pop("sources", {}) or {}
    recipe_file = data.pop("recipe_file", None)
    base: dict[str, Any] = {}
    chosen: dict[str, dict[str, Any]] = {}
    for name, value in data.items():
        tables = value.items() if name in SECTIONS and isinstance(value, dict) else [(None, value)]
        for key, item in tables:
            path = f"{name}.{key}" if key is not None else name
            source = sources.get(path, DEFAULT)
            if source.startswith("recipe "):
                continue  # the kernel's own recipe layer gives it again
            target = base if source == DEFAULT else chosen.setdefault(source, {})
            (target.setdefault(name, {}) if key is not None else target)[key if key is not None else name] = item
    layers = [Layer(source, tables) for source, tables in chosen.items()]
    return resolve([*layers, *([top] if top else [])], gpus, Layer(DEFAULT + " (embedded)", base), recipe_file)


def load_config(path: Path | None = None) -> ProjectConfig:
    """Read `path`, else ./kaggle-kit.toml when present, else the built-in defaults; layered with the recipe it names
    (or its backbone's family) as `train` would use it (config/layers.py)."""
    return resolve(file_layers(path))


def read_config_file(path: Path | None = None) -> tuple[str, dict[str, Any]] | None:
    """`path`'s tables (else ./kaggle-kit.toml's when present, else None) and the name its errors go by."""
    if path is None:
        default = Path(CONFIG_FILE)
        if not default.exists():
            return None
        path = default
    if not path.exists():
        raise KitError(f"config file {path} not found", hint="run `kaggle-kit init` to write one")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a BOM (Windows editors) as CSVs accept it
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise KitError(f"{path}: not valid TOML ({exc})") from None
    return str(path), data


def file_layers(path: Path | None = None) -> list:
    """The kaggle-kit.toml layer (none without a file)."""
    found = read_config_file(path)
    return [Layer(found[0], found[1])] if found else []
