"""The CLI's shared machinery: flags generated from the config dataclasses, the context object, grouped --help."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any

import click

from kaggle_kit.config import field_types, value_problem

CONFIG_HINT = ("Layers: defaults < recipe < kaggle-kit.toml < --set < flags. Any other setting: --set "
               "SECTION.KEY=VALUE; `kaggle-kit config` lists every key by group, its value and where it came from.")
# How --help and `kaggle-kit config` title each concern of the settings (setting(..., group=...)).
GROUP_TITLES = {"data": "Data and encoding", "model": "Model and LoRA", "optimisation": "Optimisation",
                "validation": "Validation", "distillation": "Distillation", "run": "Run",
                "config": "Configuration"}


class KitContext:
    """What every command shares: the --config path, --set values and config flags, and the config and competition
    spec resolved once from them (config/layers.py)."""

    def __init__(self) -> None:
        self.config_path: Path | None = None
        self.sets: list[str | tuple[str, Any]] = []  # --set texts, and (key, value) from hidden alias flags
        self.flags: dict[str, dict[str, Any]] = {}  # section -> key -> value of the first-class config flags
        self._config = None

    def add_set(self, entry: str | tuple[str, Any]) -> None:
        self.sets.append(entry)
        self._config = None

    def add_flag(self, section: str, key: str, value: Any) -> None:
        self.flags.setdefault(section, {})[key] = value
        self._config = None

    @property
    def config(self):
        """defaults < recipe < kaggle-kit.toml (or --config) < --set < flags, typed and checked once."""
        if self._config is None:
            from kaggle_kit.config.layers import FLAG, Layer, file_layers, resolve, set_layer

            self._config = resolve([*file_layers(self.config_path), set_layer(self.sets), Layer(FLAG, self.flags)])
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


def _remember_sets(ctx: click.Context, _param, values: tuple[str, ...]) -> None:
    kit = ctx.ensure_object(KitContext)
    for value in values:  # parsed with the other layers, inside the command: a bad one is one error line
        kit.add_set(value)


class KitOption(click.Option):
    """An option that knows its --help group (GROUP_TITLES)."""

    def __init__(self, *args, group: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.group = group


class GroupedCommand(click.Command):
    """--help lists options under their group's title (KitOption.group), in order of first appearance."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record:
                sections.setdefault(GROUP_TITLES.get(getattr(param, "group", None) or "", "Options"), []).append(record)
        for title, rows in sections.items():
            with formatter.section(title):
                formatter.write_dl(rows)


def config_option(command):
    """--config FILE and --set SECTION.KEY=VALUE (repeatable): every command that reads `kit.config` takes both."""
    command = click.option("--set", "settings", multiple=True, metavar="SECTION.KEY=VALUE", expose_value=False,
                           callback=_remember_sets, cls=KitOption, group="config",
                           help="Set any config key over kaggle-kit.toml, e.g. --set train.grad_accum=4 "
                                "(repeatable; `kaggle-kit config` lists the keys).")(command)
    return click.option("--config", type=click.Path(path_type=Path), default=None, expose_value=False,
                        is_eager=True, callback=_remember_config, cls=KitOption, group="config",
                        help="Project config (default: ./kaggle-kit.toml if present).")(command)


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
    """What runs when the flag is not given: for train, a recipe's value outranks the built-in default."""
    from kaggle_kit.config import TrainConfig
    from kaggle_kit.config.recipes import RECIPES

    if cls is TrainConfig and any(name in r.settings() for r in RECIPES.values()):
        return f"[default: {default}, or the recipe's]"
    return f"[default: {default}]"


def _section_of(cls: type) -> str:
    from kaggle_kit.config import SECTIONS

    return next(name for name, section in SECTIONS.items() if section is cls)


def _remember_flag(section: str):
    """A first-class config flag: its value is the top layer of kit.config (and still the command's argument)."""

    def remember(ctx: click.Context, _param, value):
        if value is not None:
            ctx.ensure_object(KitContext).add_flag(section, _param.name, value)
        return value

    return remember


def _alias_note(section: str):
    """A hidden alias of a setting (an old flag): still takes effect, as the --set it names in one line."""

    def remember(ctx: click.Context, param: click.Parameter, value):
        if value is None:
            return value
        spelled = param.opts[0] if value is not False or not param.secondary_opts else param.secondary_opts[0]
        given = spelled if isinstance(value, bool) else f"{spelled} {_set_text(value)}"
        key = f"{section}.{param.name}"
        if "LOCAL_RANK" not in os.environ:  # said once, not again by each torchrun worker the command relaunches
            click.echo(f"note: {given} is --set {key}={_set_text(value)}", err=True)
        ctx.ensure_object(KitContext).add_set((key, value))
        return value

    return remember


def _set_text(value: Any) -> str:
    """A value as --set reads it back."""
    if isinstance(value, bool):
        return str(value).lower()
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _option_for(cls: type, f: dataclasses.Field, tp: Any, first_class: bool):
    meta = f.metadata
    flag = meta.get("flag") or "--" + f.name.replace("_", "-")
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    help_text = meta["help"] if default in (None, []) else f"{meta['help']} {_default_text(cls, f.name, default)}"
    section = _section_of(cls)
    shared = dict(default=None, help=help_text, cls=KitOption, group=meta.get("group"), hidden=not first_class,
                  callback=_remember_flag(section) if first_class else _alias_note(section))
    if _base_type(tp) is bool:
        name = flag[2:]
        return click.option(f"--{name}/--no-{name}", f.name, **shared)
    if meta.get("choices"):
        return click.option(flag, f.name, type=click.Choice([str(c) for c in meta["choices"]]), **shared)
    return click.option(flag, f.name, type=SettingType(f, tp), **shared)


def config_flags(cls: type, exclude: tuple[str, ...] = (), first_class: tuple[str, ...] | None = None):
    """Decorate a command with one flag per CLI-visible field of a config dataclass (help and default from it).

    `first_class`: the fields --help shows (default: all); the others stay as hidden aliases that print the
    `--set SECTION.KEY=VALUE` they stand for and still take effect. Either way the value is also the command's
    keyword argument."""
    types_of = field_types(cls)
    chosen = [f for f in dataclasses.fields(cls) if f.metadata.get("cli", False) and f.name not in exclude]

    def decorate(command):
        for f in reversed(chosen):
            shown = first_class is None or f.name in first_class
            command = _option_for(cls, f, types_of[f.name], shown)(command)
        return command

    return decorate


def flag_values(flags: dict, cls: type) -> dict:
    """The subset of a command's keyword arguments that are fields of `cls` (the generated flags)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in flags.items() if k in names}
