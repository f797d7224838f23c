"""Print setup.cfg's lower bounds as `name==version` lines, so the oldest-stack venv cannot drift from what we declare.

Usage: python .ci/lower_bounds.py [--extra test] [--exclude torch]  (markers are evaluated for this interpreter)."""

from __future__ import annotations

import argparse
import configparser
import operator
import re
import sys
from pathlib import Path

SETUP_CFG = Path(__file__).resolve().parent.parent / "setup.cfg"
REQ_RE = re.compile(r"^([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(?:;\s*(.+))?$")
MARKER_RE = re.compile(r'^python_version\s*(<=|>=|<|>|==|!=)\s*"(\d+)\.(\d+)"$')
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}


def marker_holds(marker: str | None) -> bool:
    """Only `python_version OP "X.Y"` markers are used in setup.cfg; anything else is an error, not a guess."""
    if not marker:
        return True
    match = MARKER_RE.match(marker.strip())
    if not match:
        sys.exit(f"lower_bounds: unsupported marker '{marker}' in setup.cfg")
    op, major, minor = match.groups()
    return OPS[op](sys.version_info[:2], (int(major), int(minor)))


def lower_bounds(extras: list[str], exclude: set[str]) -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(SETUP_CFG)
    lines = cfg["options"]["install_requires"].splitlines()
    for extra in extras:
        lines += cfg["options.extras_require"][extra].splitlines()
    pins = []
    for line in filter(None, (raw.strip() for raw in lines)):
        match = REQ_RE.match(line)
        if not match:
            sys.exit(f"lower_bounds: '{line}' in setup.cfg has no plain '>=' lower bound")
        name, version, marker = match.groups()
        if name.lower() not in exclude and marker_holds(marker):
            pins.append(f"{name}=={version}")
    return pins


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--extra", action="append", default=[])
    parser.add_argument("--exclude", action="append", default=[])
    args = parser.parse_args()
    print("\n".join(lower_bounds(args.extra, {e.lower() for e in args.exclude})))
