"""Every number read from a flag, a config file or the environment is finite: NaN passes any range check written as
`value < lo` (it compares false), and inf passes an open-ended one, so both are refused where they are read, in one
line, before any work."""

from __future__ import annotations

import dataclasses
import json

import click
import pytest

from conftest import one_line_error, run_cli
from kaggle_kit.cli import main
from kaggle_kit.config import field_types
from kaggle_kit.config.project import SECTIONS

NOT_FINITE = ("nan", "NaN", "inf", "-inf", "Infinity")


def _commands(group: click.Group, path=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def _float_options():
    """(command path, option flag, param) for every option of the CLI whose type parses floats."""
    for path, command in _commands(main):
        for param in command.params:
            if isinstance(param, click.Option) and isinstance(param.type, click.types.FloatParamType):
                yield path, param.opts[0], param


FLOAT_OPTIONS = list(_float_options())


def _arguments(path) -> list[str]:
    """A value for each positional argument of the command, so the float flag is the only thing wrong."""
    command = main
    for name in path:
        command = command.commands[name]
    return [p.type.choices[0] if isinstance(p.type, click.Choice) else "owner/name"
            for p in command.params if isinstance(p, click.Argument)]


def test_the_cli_has_float_options_to_check():
    flags = {flag for _, flag, _ in FLOAT_OPTIONS}
    assert {"--min-confidence", "--interval", "--timeout"} <= flags


@pytest.mark.parametrize(("path", "flag", "param"), FLOAT_OPTIONS,
                         ids=[" ".join(p) + " " + f for p, f, _ in FLOAT_OPTIONS])
def test_every_float_option_refuses_non_finite_values(path, flag, param):
    """Each float flag of each command: nan / inf are a usage error naming the flag (click parses the given flags
    before it reports a missing required one)."""
    for value in NOT_FINITE:
        result = run_cli(*path, *_arguments(path), flag, value)
        assert result.exit_code == 2, (path, flag, value, result.output)
        assert "Traceback" not in result.output
        assert flag in result.output and "finite" in result.output, result.output


def test_finite_types_keep_their_ranges_and_parse_numbers():
    from kaggle_kit.cli.param_types import FINITE, PROBABILITY, SECONDS, FiniteFloatRange

    assert FINITE.convert("1e-3", None, None) == 1e-3 and FINITE.convert(-2.5, None, None) == -2.5
    assert PROBABILITY.convert("0.25", None, None) == 0.25
    assert SECONDS.convert("0.5", None, None) == 0.5
    for kind, value in ((PROBABILITY, "1.5"), (SECONDS, "0"), (SECONDS, "-1"), (FINITE, "abc")):
        with pytest.raises(click.BadParameter):
            kind.convert(value, None, None)
    for kind in (FINITE, PROBABILITY, SECONDS, FiniteFloatRange(min=-1, max=None)):
        for value in (*NOT_FINITE, float("nan"), float("inf")):
            with pytest.raises(click.BadParameter, match="not a finite number"):
                kind.convert(value, None, None)


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_kaggle_timeout_from_the_environment_is_finite(monkeypatch, value):
    from kaggle_kit.errors import UsageProblem
    from kaggle_kit.remote.client import default_timeout

    monkeypatch.setenv("KAGGLE_KIT_TIMEOUT", value)
    with pytest.raises(UsageProblem, match="finite positive"):
        default_timeout()


# --- config values (kaggle-kit.toml, --set and the generated flags): these rely on config/checks.py value_problem
# refusing non-finite floats (branch i35cfg); they fail on today's code.

def _float_fields():
    for section, cls in SECTIONS.items():
        types = field_types(cls)
        for f in dataclasses.fields(cls):
            if "float" in str(types[f.name]):
                yield section, f


FLOAT_FIELDS = list(_float_fields())


@pytest.mark.parametrize(("section", "field"), FLOAT_FIELDS, ids=[f"{s}.{f.name}" for s, f in FLOAT_FIELDS])
def test_config_float_settings_refuse_non_finite_values(section, field, tmp_path, monkeypatch):
    """`[train] learning_rate = nan` (TOML has nan and inf literals): `config` exits with one line naming the key,
    and never prints a bare NaN / Infinity as JSON."""
    monkeypatch.chdir(tmp_path)
    for literal in ("nan", "inf", "-inf"):
        (tmp_path / "kaggle-kit.toml").write_text(f"[{section}]\n{field.name} = {literal}\n")
        result = run_cli("config")
        assert "NaN" not in result.output and "Infinity" not in result.output, result.output
        line = one_line_error(result, field.name, code=result.exit_code or 1)
        assert result.exit_code != 0, line


def test_lr_nan_refused_before_the_output_folder_exists(tmp_path, small_files, tiny_backbone):
    out = tmp_path / "model"
    for value in ("nan", "inf"):
        result = run_cli("train", "--train", small_files.train, "--backbone", tiny_backbone, "--out", out,
                         "--lr", value)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert "--lr" in result.output
        assert not out.exists()


def test_config_prints_strict_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("config", "--json")
    assert result.exit_code == 0
    json.loads(result.output, parse_constant=lambda name: pytest.fail(f"config printed {name}"))
