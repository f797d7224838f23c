"""The command table of docs/commands.md, generated from the click app (a test keeps the page current).

Regenerate with `python -m kaggle_kit.cli.docs` (or name another page holding the markers)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

START, END = "<!-- commands:start -->", "<!-- commands:end -->"


def _rows(group: click.Group, prefix: str) -> list[str]:
    rows = []
    for name in sorted(group.commands):
        cmd = group.commands[name]
        full = f"{prefix} {name}"
        if isinstance(cmd, click.Group):
            rows.extend(_rows(cmd, full))
            continue
        args = " ".join(p.human_readable_name.upper() for p in cmd.params if isinstance(p, click.Argument))
        flags = ", ".join(f"`{p.opts[0]}`" for p in cmd.params
                          if isinstance(p, click.Option) and p.opts[0] not in ("--json",))
        # The first paragraph, joined: a docstring may wrap its one-line summary at 120 columns.
        summary = " ".join((cmd.help or "").split("\n\n")[0].split()).replace("|", "\\|")
        rows.append(f"| `{full}{' ' + args if args else ''}` | {summary} | {flags} |")
    return rows


def command_table() -> str:
    from kaggle_kit.cli import main

    return "\n".join(["| command | what it does | main flags |", "|---|---|---|", *_rows(main, "kaggle-kit")])


COMMANDS_PAGE = Path("docs") / "commands.md"


def replace_table(page: str) -> str:
    """The page with the text between its START and END markers replaced by the current table."""
    head, _, rest = page.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{command_table()}\n{END}{tail}"


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else COMMANDS_PAGE
    path.write_text(replace_table(path.read_text()))
