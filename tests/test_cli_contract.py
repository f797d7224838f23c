"""Every option and command a message or --help text names exists on the command it is said to.

Two sources of mentions, checked against the real click tree (walked with click's own introspection):
- every command's --help: its docstring, epilog and each option's help; a bare `--opt` there belongs to that command;
- every string in kaggle_kit's source (hints, errors, notes): `kaggle-kit CMD ... --opt` or a backticked `CMD ...
  --opt` names CMD, and a bare `--opt` belongs to every command whose code can reach the function that holds the
  string (a call graph by function name, an over-approximation: a name shared by two functions links both).
"""

from __future__ import annotations

import ast
import inspect
import re
from collections import defaultdict
from pathlib import Path

import click
import pytest

from kaggle_kit.cli import main

PACKAGE = Path(__file__).resolve().parents[1] / "kaggle_kit"
OPTION = re.compile(r"(?<![\w\-/.=])--[a-z][a-z0-9-]*[a-z0-9]")
# Options of other programs that kaggle-kit's messages or code name: not kaggle-kit's own.
OTHER_PROGRAMS = {"--index-url": "pip", "--find-links": "pip", "--no-index": "pip", "--no-deps": "pip",
                  "--only-binary": "pip", "--platform": "pip", "--python-version": "pip",
                  "--no-build-isolation": "pip", "--standalone": "torchrun", "--porcelain": "git"}
# Modules with their own argument parser (python -m ...): their options are theirs, not the CLI's.
OWN_PARSERS = {"evaluation/gpu_check.py", "evaluation/gpu_check_multi.py", "kernel/gpu_box.py"}


def walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))


COMMANDS = dict(walk(main))
TOP = {path[0] for path in COMMANDS if path}


def options_of(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        names.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("-"))
    return names


GLOBAL = options_of(main)  # --config, --version: accepted before any command


ARGUMENT_WORD = r"(?:--[a-z][\w-]*(?:=\S+)?|[A-Z][\w/<>.-]*|[\w.<>-]*/[\w./<>-]*|\d\S*)"
# Unquoted prose: a command name (and a subcommand) directly followed by an option, then options/placeholders/paths.
PATHS = "|".join(sorted((re.escape(" ".join(p)) for p in COMMANDS if p), key=len, reverse=True))  # longest first
PROSE = re.compile(rf"(?<![\w-])((?:{PATHS})"
                   rf" --[a-z][\w-]*(?: {ARGUMENT_WORD})*)")
# `kaggle-kit CMD`, an argument word (`upload model PATH`) when more arguments follow, then arguments
INVOKED = re.compile(rf"kaggle-kit (?:{PATHS})(?: [a-z][a-z-]*(?= {ARGUMENT_WORD}))?(?: {ARGUMENT_WORD})*")


def spans_of(text: str) -> list[str]:
    """The pieces of text that read as a command line: `...` in backticks, `kaggle-kit ...`, `CMD --opt ...`."""
    spans = re.findall(r"`[^`]+`", text) + INVOKED.findall(text)
    rest = text
    for span in spans:
        rest = rest.replace(span, " ")
    return spans + PROSE.findall(rest)


def command_phrases(text: str) -> list[tuple[tuple[str, ...], list[str]]]:
    """(command path, words after it) for each command line in text."""
    found = []
    spans = [s.strip("`").strip().rstrip(".,;:)") for s in spans_of(text)]
    for span in spans:
        words = span.replace("kaggle-kit ", "", 1).split()
        if not words or words[0] not in TOP:
            continue
        path = (words.pop(0),)
        while words and isinstance(COMMANDS[path], click.Group) and (*path, words[0]) in COMMANDS:
            path = (*path, words.pop(0))
        found.append((path, words))
    return found


def phrase_problems(path: tuple[str, ...], words: list[str]) -> list[str]:
    command = COMMANDS[path]
    name = " ".join(path)
    known = options_of(command) | GLOBAL
    problems = [f"`{name}` has no {w}" for w in words if OPTION.fullmatch(w.split("=")[0]) and w.split("=")[0]
                not in known]
    takes_words = isinstance(command, click.Group) or any(isinstance(p, click.Argument) for p in command.params)
    first = words[0] if words else ""
    if not takes_words and re.fullmatch(r"[a-z][a-z-]+", first):  # a lower-case word where no argument is taken
        problems.append(f"`{name} {first}`: {name} takes no argument or subcommand '{first}'")
    if isinstance(command, click.Group) and re.fullmatch(r"[a-z][a-z-]+", first) and first not in command.commands:
        problems.append(f"`{name} {first}`: no such subcommand")
    return problems


def bare_options(text: str) -> set[str]:
    """Options named outside a command phrase."""
    for span in spans_of(text):
        if command_phrases(span):
            text = text.replace(span, " ")
    return {o for o in OPTION.findall(text) if o not in OTHER_PROGRAMS}


# --- --help texts -------------------------------------------------------------------------------------------------

def help_texts():
    for path, command in COMMANDS.items():
        yield path, "help", command.help or ""
        yield path, "epilog", command.epilog or ""
        for param in command.params:
            yield path, "/".join(param.opts), getattr(param, "help", None) or ""


def test_every_help_text_names_real_options_and_commands():
    problems = []
    for path, where, text in help_texts():
        name = " ".join(path) or "kaggle-kit"
        for phrase in command_phrases(text):
            problems += [f"{name} {where}: {p}" for p in phrase_problems(*phrase)]
        known = options_of(COMMANDS[path]) | GLOBAL
        problems += [f"{name} {where}: names {o}, which {name} does not have" for o in bare_options(text) - known]
    assert not problems, "\n".join(problems)


# --- messages in the source ---------------------------------------------------------------------------------------

class _Functions(ast.NodeVisitor):
    """Per function (by name): the names it calls and the strings it holds (nested functions count as their own)."""

    def __init__(self, module: str):
        self.module = module
        self.calls: dict[str, set[str]] = defaultdict(set)
        self.strings: list[tuple[str, int, str]] = []  # (function name, line, text)
        self.stack: list[str] = []
        self.defined: set[str] = set()
        self.docstrings: set[int] = set()

    def visit(self, node):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            self.docstrings.add(id(first.value))  # documentation, not a message (command docstrings: --help above)
        return super().visit(node)

    def visit_FunctionDef(self, node):
        self.defined.add(node.name)
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node):
        if self.stack:
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name:
                self.calls[self.stack[-1]].add(name)
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                if isinstance(arg, ast.Name):  # a function handed on (echo=..., callbacks) is reachable too
                    self.calls[self.stack[-1]].add(arg.id)
        self.generic_visit(node)

    def visit_JoinedStr(self, node):
        text = "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
        self.strings.append((self.stack[-1] if self.stack else "", node.lineno, text))

    def visit_Constant(self, node):
        if isinstance(node.value, str) and id(node) not in self.docstrings:
            self.strings.append((self.stack[-1] if self.stack else "", node.lineno, node.value))


def is_message(text: str) -> bool:
    """Words, not one argv word or an argv fragment built for a command line (`--gather X/Y`)."""
    words = text.split()
    return len(words) > 1 and not all(re.fullmatch(ARGUMENT_WORD, w) for w in words)


def source_messages():
    calls: dict[str, set[str]] = defaultdict(set)
    strings = []
    cli_functions: set[str] = set()
    for file in sorted(PACKAGE.rglob("*.py")):
        relative = file.relative_to(PACKAGE).as_posix()
        if relative in OWN_PARSERS:
            continue
        visitor = _Functions(relative)
        visitor.visit(ast.parse(file.read_text()))
        for name, called in visitor.calls.items():
            calls[name] |= called
        strings += [(relative, *s) for s in visitor.strings if is_message(s[2])]
        if relative.startswith("cli/"):
            cli_functions |= visitor.defined
    return calls, strings, cli_functions


def reaching_commands(calls: dict[str, set[str]]) -> dict[str, set[tuple[str, ...]]]:
    """Function name -> the commands whose callback can reach it (by name: an over-approximation)."""
    reached: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for path, command in COMMANDS.items():
        if not path or command.callback is None:
            continue
        start = inspect.unwrap(command.callback).__name__
        seen, todo = {start}, [start]
        while todo:
            for callee in calls.get(todo.pop(), ()):
                if callee not in seen:
                    seen.add(callee)
                    todo.append(callee)
        for name in seen:
            reached[name].add(path)
    return reached


def test_every_message_names_real_options_and_commands():
    calls, strings, cli_functions = source_messages()
    reached = reaching_commands(calls)
    local_reach = reaching_commands({f: c & cli_functions for f, c in calls.items() if f in cli_functions})
    everywhere = set().union(*(options_of(c) for c in COMMANDS.values()))
    problems = []
    for module, function, line, text in strings:
        where = f"{module}:{line}"
        for phrase in command_phrases(text):
            problems += [f"{where}: {p}" for p in phrase_problems(*phrase)]
        local = module.startswith("cli/")  # a command's own module: the command it serves is known
        for option in sorted(bare_options(text)):
            if option not in everywhere:
                problems.append(f"{where}: {option} is an option of no command")
                continue
            commands = (local_reach if local else reached).get(function, set())
            lacking = sorted(p for p in commands if option not in options_of(COMMANDS[p]) | GLOBAL)
            if local and lacking:
                problems += [f"{where}: said by `{' '.join(p)}`, which has no {option}" for p in lacking]
            elif commands and len(lacking) == len(commands):
                problems.append(f"{where}: reachable only from commands without {option}: "
                                f"{', '.join(' '.join(p) for p in lacking)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("text, expected", [
    ("pass --resume to continue it", ["--resume"]),
    ("or `cv gather`", ["`cv gather`"]),
    ("`train --fold i/K --time-budget D`", []),
    ("`kaggle-kit cv --gather D`", []),
    ("`datasets status owner/slug --nope`", ["--nope"]),
])
def test_the_checker_itself(text, expected):
    """The walker flags an option a command lacks and a word a command does not take (stands in for a regression)."""
    found = [p for phrase in command_phrases(text) for p in phrase_problems(*phrase)]
    found += [f"cv has no {o}" for o in bare_options(text) - options_of(COMMANDS[("cv",)])]
    assert len(found) == len(expected) and all(any(e in f for f in found) for e in expected), found


def test_a_bare_option_is_checked_against_the_commands_that_reach_it():
    """The call graph's attribution: a helper only `cv` reaches may not name train's --resume (the issue's repro)."""
    visitor = _Functions("cli/train.py")
    source = "def cv_cmd():\n    helper()\n\ndef helper():\n    raise E('x', hint='pass --resume to go on')\n"
    visitor.visit(ast.parse(source))
    reach = reaching_commands(visitor.calls)
    assert reach["helper"] == {("cv",)}
    (_, _, text), = [s for s in visitor.strings if "--resume" in s[2]]
    assert bare_options(text) == {"--resume"} and "--resume" not in options_of(COMMANDS[("cv",)])
