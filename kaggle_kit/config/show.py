"""`kaggle-kit config`: a resolved configuration as TOML to read or copy, each key with the layer it came from."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from kaggle_kit.config.project import SECTIONS, TOP_KEYS, ProjectConfig

# The concerns of the [train] settings (setting(..., group=...)), in the order they are shown.
TRAIN_GROUPS = {"data": "data and encoding", "model": "model and LoRA", "optimisation": "optimisation",
                "validation": "validation", "distillation": "distillation", "run": "run"}


def config_view(config: ProjectConfig) -> dict[str, Any]:
    """The resolved config as data: every section, where each key came from, and the recipe layer."""
    return {**config.to_dict(), "sources": {key: config.source_of(key) for key in _keys(config)},
            "recipe": config.recipe_note}


def _keys(config: ProjectConfig) -> list[str]:
    return [*TOP_KEYS, *(f"{name}.{f.name}" for name in SECTIONS for f in dataclasses.fields(getattr(config, name)))]


def config_text(config: ProjectConfig) -> str:
    """The resolved config as TOML with `# source` comments; [train] keys by concern. An unset key is shown
    commented out (TOML has no null)."""
    note = config.recipe_note
    lines = ["# As `train` uses it: defaults < recipe < kaggle-kit.toml < --set < flags (`# source` on each key).",
             "# recipe: " + (f"{note['recipe']}" + (" (the backbone's family: its optimisation settings only)"
                                                    if note["auto"] else "") if note else "none")]
    lines += [_line(key, getattr(config, key), config.source_of(key)) for key in TOP_KEYS]
    for name in SECTIONS:
        section = getattr(config, name)
        lines += ["", f"[{name}]"]
        fields = dataclasses.fields(section)
        groups = TRAIN_GROUPS if name == "train" else {None: None}
        for group, title in groups.items():
            if title:
                lines.append(f"# -- {title}")
            lines += [_line(f.name, getattr(section, f.name), config.source_of(f"{name}.{f.name}"))
                      for f in fields if name != "train" or f.metadata.get("group") == group]
    for name, cmap in config.column_maps.items():
        lines += ["", f"[column_maps.{name}]"]
        lines += [_line(k, v, config.source_of("column_maps")) for k, v in dataclasses.asdict(cmap).items()]
    return "\n".join(lines)


def _line(key: str, value: Any, source: str) -> str:
    text = f"{key} = {toml_value(value)}" if value is not None else f"# {key} = (unset)"
    return f"{text:<44} # {source}"


def toml_value(value: Any) -> str:
    """A TOML literal for a config value (strings, numbers, booleans, lists, tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)
