"""The `kaggle-kit` click group: one-line errors with exit codes, --help by workflow, and the output helpers."""

from __future__ import annotations

import errno
import json
import os
import sys

import click

from kaggle_kit import __version__
from kaggle_kit.cli.options import (
    KitContext,
    config_option,
)
from kaggle_kit.errors import ExitStatus, KitError
from kaggle_kit.quiet import quiet_libraries

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
# `kaggle-kit --help` lists commands by workflow; a test keeps every command in one of these.
COMMAND_SECTIONS = {
    "Start": ["init", "doctor", "config", "quickstart"],
    "Data": ["competitions", "download", "sample-data", "validate"],
    "Train / predict": ["tiny-backbone", "recipes", "train", "predict", "report", "bench"],
    "Recipes": ["cv", "average", "blend", "pseudo-label"],
    "Kernels": ["plan", "build-kernel", "run-kernel", "push-kernel", "status", "pull", "quota"],
    "Datasets": ["upload", "datasets"],
    "Submit": ["submit", "submissions", "deadline"],
    "Runs": ["runs", "leaderboard"],
}


class KitGroup(click.Group):
    """Expected failures become one line on stderr with their exit code, never a traceback; --help by workflow."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KitError as exc:
            _error_line(exc.format_line())
            ctx.exit(exc.exit_code)
        except OSError as exc:  # the filesystem said no, wherever in the command: one line, not a traceback
            line = filesystem_error_line(exc)
            if line is None:
                raise
            _error_line(line)
            ctx.exit(ExitStatus.FAILED)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self is not main:
            return super().format_commands(ctx, formatter)
        placed = {name for names in COMMAND_SECTIONS.values() for name in names}
        sections = {**COMMAND_SECTIONS, "Other": sorted(set(self.commands) - placed)}
        for title, names in sections.items():
            rows = [(n, self.commands[n].get_short_help_str(80)) for n in names if n in self.commands]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


FILESYSTEM_HINTS = {
    IsADirectoryError: "a folder is where a file is expected: give a file path",
    NotADirectoryError: "a file is where a folder is expected: give a folder path",
    FileExistsError: "something is already there: choose another path",
    PermissionError: "choose a location you can write to, or fix its permissions",
    FileNotFoundError: "check the path",
}
FILESYSTEM_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG}


def filesystem_error_line(exc: OSError) -> str | None:
    """One line for an error about a path (with a hint by kind); None for other OS errors (sockets, ...)."""
    if exc.filename is None and exc.errno not in FILESYSTEM_ERRNOS:
        return None
    where = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "") if exc.filename else "a file"
    hint = next((h for kind, h in FILESYSTEM_HINTS.items() if isinstance(exc, kind)), None)
    return f"cannot use {where}: {exc.strerror or exc}" + (f" ({hint})" if hint else "")


def _error_line(line: str) -> None:
    click.secho(f"Error: {line}", err=True, fg="red" if _tty_err() else None)


def _tty_err() -> bool:
    return sys.stderr.isatty() and "NO_COLOR" not in os.environ


def emit(data, as_json: bool, text: str | None = None) -> None:
    click.echo(json.dumps(data, indent=2, default=str) if as_json else (text if text is not None else str(data)))


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


@click.group(cls=KitGroup, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="kaggle-kit")
@config_option
@click.pass_context
def main(ctx: click.Context) -> None:
    """Train, predict, package and submit LoRA preference classifiers for Kaggle code competitions."""
    ctx.ensure_object(KitContext)
    quiet_libraries()
