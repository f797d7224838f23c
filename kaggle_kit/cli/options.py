"""The CLI's shared machinery: flags generated from the config dataclasses, the context object, grouped --help."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import click

from kaggle_kit.config import field_types, value_problem

CONFIG_HINT = "Flags override kaggle-kit.toml, which overrides the defaults shown."


class KitContext:
    """What every command shares: the --config path, and the config and competition spec resolved once from it."""

    def __init__(self) -> None:
        self.config_path: Path | None = None
        self._config = None

    @property
    def config(self):
        if self._config is None:
            from kaggle_kit.config import load_config

            self._config = load_config(self.config_path)
        return self._config

    @property
    def spec(self):
        return self.config.spec

    def spec_for(self, competition: str | None):
        """The spec a --competition SLUG names: the project's own (its [competition] table too) when SLUG is the
        project's competition or not given, else a shipped one."""
        from kaggle_kit.competition.spec import get_spec

        if competition is None or competition == self.config.competition:
            return self.spec
        return get_spec(competition)

    def spec_problem(self) -> str | None:
        """Why the config's competition cannot be resolved (for doctor), or None."""
        from kaggle_kit.errors import KitError

        try:
            _ = self.spec
        except KitError as exc:
            return exc.format_line()
        return None


pass_kit = click.make_pass_decorator(KitContext, ensure=True)


def _remember_config(ctx: click.Context, _param, value: Path | None) -> None:
    if value is not None:
        ctx.ensure_object(KitContext).config_path = value


config_option = click.option("--config", type=click.Path(path_type=Path), default=None, expose_value=False,
                             is_eager=True, callback=_remember_config,
                             help="Project config (default: ./kaggle-kit.toml if present).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
dry_run_option = click.option("--dry-run", is_flag=True, help="Show what would be done; change nothing.")
from kaggle_kit.cli.param_types import SECONDS  # noqa: E402 - finite, > 0: a wait of 0 would spin, nan/inf hang


def interval_option(default: float):
    return click.option("--interval", default=default, show_default=True, type=SECONDS,
                        help="Seconds between status checks while waiting.")


def timeout_option(default: float):
    return click.option("--timeout", default=default, show_default=True, type=SECONDS,
                        help="Give up waiting after this many seconds.")


def _base_type(tp: Any) -> Any:
    """int | None -> int; list[str] | None -> list."""
    args = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) in (
        typing.Union, __import__("types").UnionType) else [tp]
    base = args[0]
    return list if typing.get_origin(base) is list else base


class SettingType(click.ParamType):
    """Parses a flag by its config field's type, then applies the same range/choice checks as kaggle-kit.toml."""

    def __init__(self, field: dataclasses.Field, tp: Any):
        self.field, self.tp, self.base = field, tp, _base_type(tp)
        self.name = {int: "integer", float: "number", list: "list", str: "text"}.get(self.base, "value")

    def convert(self, value, param, ctx):
        if isinstance(value, str):
            try:
                if self.base is list:
                    value = [v.strip() for v in value.split(",") if v.strip()]
                elif self.base in (int, float):
                    value = self.base(value)
            except ValueError:
                self.fail(f"{value!r} is not {'an integer' if self.base is int else 'a number'}", param, ctx)
        problem = value_problem(self.field, self.tp, value)
        if problem:
            self.fail(problem, param, ctx)
        return value


def _default_text(cls: type, name: str, default: Any) -> str:
    """What runs when the flag is not given: for train, recipe values outrank the built-in defaults."""
    from kaggle_kit.config import TrainConfig
    from kaggle_kit.config.recipes import FAMILY_FIELDS, RECIPES

    if cls is TrainConfig and name in FAMILY_FIELDS:
        return f"[default: from the backbone's recipe unless set; {default} without one]"
    if cls is TrainConfig and any(name in r.settings() for r in RECIPES.values()):
        return f"[default: {default}, or the --recipe's value]"
    return f"[default: {default}]"


def _option_for(cls: type, f: dataclasses.Field, tp: Any):
    meta = f.metadata
    flag = meta.get("flag") or "--" + f.name.replace("_", "-")
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    help_text = meta["help"] if default in (None, []) else f"{meta['help']} {_default_text(cls, f.name, default)}"
    if _base_type(tp) is bool:
        name = flag[2:]
        return click.option(f"--{name}/--no-{name}", f.name, default=None, help=help_text)
    if meta.get("choices"):
        return click.option(flag, f.name, type=click.Choice([str(c) for c in meta["choices"]]), default=None,
                            help=help_text)
    return click.option(flag, f.name, type=SettingType(f, tp), default=None, help=help_text)


def config_flags(cls: type, exclude: tuple[str, ...] = ()):
    """Decorate a command with one flag per CLI-visible field of a config dataclass (help and default from it)."""
    types_of = field_types(cls)
    chosen = [f for f in dataclasses.fields(cls) if f.metadata.get("cli", False) and f.name not in exclude]

    def decorate(command):
        for f in reversed(chosen):
            command = _option_for(cls, f, types_of[f.name])(command)
        return command

    return decorate


def flag_values(flags: dict, cls: type) -> dict:
    """The subset of a command's keyword arguments that are fields of `cls` (the generated flags)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in flags.items() if k in names}
