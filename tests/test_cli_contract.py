"""The contract every command keeps, checked over every command at once (as scikit-learn's parametrize_with_checks
checks every estimator): its --help, its --json, an output it cannot write refused in one line before any work, a dry
run that writes and sends nothing, an output that never replaces an input; and every option and command a message or
--help text names exists on the command it is said to.

Tests run as root here, so chmod cannot make a folder unwritable: an unwritable output location is made the way that
stops root too, a path under a regular file (mkdir and open fail with NotADirectoryError/FileExistsError).

The hints: two sources of mentions, checked against the real click tree (walked with click's own introspection):
- every command's --help: its docstring, epilog and each option's help; a bare `--opt` there belongs to that command;
- every string in kaggle_kit's source (hints, errors, notes): `kaggle-kit CMD ... --opt` or a backticked `CMD ...
  --opt` names CMD, and a bare `--opt` belongs to every command whose code can reach the function that holds the
  string (a call graph by function name, an over-approximation: a name shared by two functions links both).
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from collections import defaultdict
from pathlib import Path

import click
import pytest

from conftest import one_line_error, run_cli
from kaggle_kit.cli import main
from kaggle_kit.competition.sample_data import write_sample_data

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


ARGUMENT_WORD = r"(?:--[a-z][\w-]*(?:=\S+)?|[A-Z][\w/<>.-]*|[\w.<>-]*/[\w./<>-]*|\d\S*|[a-z_]+\.[a-z_]+=\S+)"
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


def config_key_problems(text: str) -> list[str]:
    """A hint may name a setting by its old flag or as `--set SECTION.KEY=VALUE`: the key must be a config key."""
    from kaggle_kit.config import SECTIONS
    from kaggle_kit.config.project import TOP_KEYS

    keys = {*TOP_KEYS, *(f"{name}.{f}" for name, cls in SECTIONS.items() for f in cls.__dataclass_fields__)}
    return [f"--set {key} names no config key" for key in SET_KEY.findall(text) if key not in keys]


SET_KEY = re.compile(r"--set[ =]([a-z_]+(?:\.[a-z_]+)?)=")


def phrase_problems(path: tuple[str, ...], words: list[str]) -> list[str]:
    command = COMMANDS[path]
    name = " ".join(path)
    known = options_of(command) | GLOBAL
    problems = [f"`{name}` has no {w}" for w in words if OPTION.fullmatch(w.split("=")[0]) and w.split("=")[0]
                not in known]
    problems += [f"`{name}`: {p}" for p in config_key_problems(" ".join(words))]
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
            if not getattr(param, "hidden", False):  # a hidden alias's help is never shown (`config --time-budget`)
                yield path, "/".join(param.opts), getattr(param, "help", None) or ""


def test_every_help_text_names_real_options_and_commands():
    problems = []
    for path, where, text in help_texts():
        name = " ".join(path) or "kaggle-kit"
        for phrase in command_phrases(text):
            problems += [f"{name} {where}: {p}" for p in phrase_problems(*phrase)]
        known = options_of(COMMANDS[path]) | GLOBAL
        problems += [f"{name} {where}: names {o}, which {name} does not have" for o in bare_options(text) - known]
        problems += [f"{name} {where}: {p}" for p in config_key_problems(text)]
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
        problems += [f"{where}: {p}" for p in config_key_problems(text)]
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
    ("`train --set train.grad_accum=4`", []),  # a hint names a setting by --set ...
    ("`train --grad-accum 4`", []),  # ... or by its old flag, a hidden alias
    ("`train --set train.grad_acum=4`", ["train.grad_acum"]),
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


# ---- the contract every command keeps, checked over every command (as scikit-learn's parametrize_with_checks does)
LEAVES = {" ".join(path): command for path, command in COMMANDS.items() if not isinstance(command, click.Group)}


def _options(name: str) -> set[str]:
    return {opt for param in LEAVES[name].params if isinstance(param, click.Option) for opt in param.opts}


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_help_says_what_the_command_and_each_option_do(name):
    result = run_cli(*name.split(), "--help")
    assert result.exit_code == 0 and result.output.startswith("Usage: ") and name in result.output.splitlines()[0]
    def squeezed(text):  # click re-wraps help, splitting words at hyphens too
        return re.sub(r"[\s-]", "", text)

    summary = (LEAVES[name].help or "").split("\n\n")[0]
    assert summary.strip() and squeezed(summary) in squeezed(result.output)
    options = [p for p in LEAVES[name].params if isinstance(p, click.Option) and not p.hidden]
    assert [p.opts[0] for p in options if not p.help] == []


# Each command's output under a regular file (tests run as root: chmod cannot stop them, a file in the path does).
# `{blocked}` is that file; the others are the fixtures' paths. Refused in one line, before any work.
UNWRITABLE = {
    "predict": ["--test", "{test}", "--model", "{model}", "--out", "{blocked}/sub.csv"],
    "pseudo-label": ["--model", "{model}", "--input", "{test}", "--out", "{blocked}/pl.csv"],
    "blend": ["--oof", "{oof}={model}", "--out", "{blocked}/blend.json"],
    "train": ["--train", "{train}", "--backbone", "{backbone}", "--out", "{blocked}/m"],
    "cv": ["--train", "{train}", "--backbone", "{backbone}", "--folds", "2", "--out", "{blocked}/cv"],
    "report": ["{model}", "--out", "{blocked}/r"],
    "build-kernel": ["train", "--out", "{blocked}/kb"],
    "run-kernel": ["{build}", "--working", "{blocked}/w"],
    "download": ["--to", "{blocked}/data"],
    "pull": ["tester/lmsys-train", "--to", "{blocked}/outputs"],
    "quickstart": ["--workdir", "{blocked}/q"],
    "sample-data": ["{blocked}/d"],
    "init": ["{blocked}/p"],
    "tiny-backbone": ["{blocked}/bb"],
    "average": ["{model}", "--out", "{blocked}/avg"],
}
OUTPUT_OPTIONS = {"--out", "--to", "--workdir", "--working"}


def test_every_command_that_writes_is_in_the_unwritable_table():
    writers = {name for name, command in LEAVES.items()
               if _options(name) & OUTPUT_OPTIONS
               or any(isinstance(p, click.Argument) and p.name == "directory" for p in command.params)}
    assert writers == set(UNWRITABLE)


@pytest.fixture
def paths(project, fake, small_files, tiny_backbone):
    """The inputs the tables above name, in a project folder served by the fake Kaggle."""
    from conftest import fake_model_dir

    model = fake_model_dir(project / "model", tiny_backbone)
    build = project / "kb"
    build.mkdir()
    (build / "kernel-metadata.json").write_text(json.dumps({"id": "tester/x", "code_file": "k.py"}))
    (build / "k.py").write_text("raise SystemExit('this build must never run')\n")
    oof = project / "oof.csv"
    oof.write_text("id,winner_model_a,winner_model_b,winner_tie,label\n1,0.4,0.35,0.25,0\n")
    blocked = project / "blocker"
    blocked.write_text("not a folder\n")
    # What Kaggle holds for the remote commands: the competition's files (ListCompetitionDataFiles), a kernel with one
    # version (GetKernel / GetKernelSessionStatus) and a processed dataset (GetDatasetStatus).
    files = [small_files.train, small_files.test, small_files.sample_submission]
    fake.competitions["lmsys-chatbot-arena"] = {"files": {p.name: p.read_bytes() for p in files}}
    fake.kernels["tester/lmsys-train"] = {"versions": 1}
    fake.datasets["tester/tiny-deberta-v3"] = {"versions": [{}], "status": "READY"}
    return {"test": small_files.test, "train": small_files.train, "sample": small_files.sample_submission,
            "model": model, "backbone": tiny_backbone, "build": build, "oof": oof, "blocked": blocked}


def _args(name: str, template: list[str], paths: dict) -> list[str]:
    return [*name.split(), *(arg.format(**paths) for arg in template)]


@pytest.mark.parametrize("name", sorted(UNWRITABLE))
def test_an_unwritable_output_is_one_line_before_any_work(name, paths):
    one_line_error(run_cli(*_args(name, UNWRITABLE[name], paths)), f"{paths['blocked']} is a file")
    assert paths["blocked"].read_text() == "not a folder\n"
    assert not (paths["build"].parent / "w").exists()


# What a dry run of each remote-changing command is given; it must send no change to Kaggle and write no file.
DRY_RUNS = {
    "download": [],
    "push-kernel": ["train"],
    "upload": ["model", "{model}", "--dataset", "tester/my-model"],
    "submit": ["{sample}", "-m", "a dry run", "--sample-submission", "{sample}"],
}
CHANGES = re.compile(r"^(Create|Save|Start|Update|Delete|Upload|Submit)")


def test_every_command_with_dry_run_is_in_the_dry_run_table():
    assert {name for name in LEAVES if "--dry-run" in _options(name)} == set(DRY_RUNS)


@pytest.mark.parametrize("name", sorted(DRY_RUNS))
def test_a_dry_run_writes_and_sends_nothing(name, paths, fake):
    def files():  # every path with its file's time: a temp file made and removed leaves nothing here
        return {p: p.is_file() and p.stat().st_mtime_ns for p in paths["model"].parent.rglob("*")}

    before = files()
    result = run_cli(*_args(name, DRY_RUNS[name], paths), "--dry-run")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert files() == before, result.output
    assert [r["method"] for r in fake.requests if r["method"] == "PUT" or CHANGES.match(r["method"])] == []


# A run of each command that prints --json, the cheapest there is; its stdout must be one JSON document. The commands
# whose cheapest run trains or runs a model are held to it where they are tested (JSON_TESTED_IN names the file).
JSON_RUNS = {
    "competitions": [], "recipes": [], "plan train": ["--recipe", "cpu-smoke"], "doctor": ["--offline"],
    "validate": ["{sample}", "--test", "{test}"], "bench validate": ["--rows", "50", "--repeat", "1"],
    "bench padding": ["--rows", "50", "--max-len", "128"],
    "bench predict": ["--rows", "8", "--max-len", "64", "--hidden", "32", "--layers", "1"],
    "deadline": [], "quota": [], "submissions": [], "status": ["tester/lmsys-train"],
    "datasets status": ["tester/tiny-deberta-v3"], "build-kernel": ["train", "--out", "{blocked}.d"],
    "download": ["--dry-run"], "push-kernel": ["train", "--dry-run"],
    "upload": ["model", "{model}", "--dataset", "tester/my-model", "--dry-run"],
    "submit": ["{sample}", "-m", "a dry run", "--sample-submission", "{sample}", "--dry-run"],
    "config": ["--set", "train.lora_r=8"], "runs": ["--offline"],
}
JSON_TESTED_ELSEWHERE = {"train", "cv", "blend", "predict", "pseudo-label", "report", "quickstart", "run-kernel",
                         "pull", "plan infer", "bench seeds", "average", "leaderboard"}


def test_every_json_command_is_held_to_it():
    assert {name for name in LEAVES if "--json" in _options(name)} == set(JSON_RUNS) | JSON_TESTED_ELSEWHERE
    sources = "".join(path.read_text() for path in Path(__file__).parent.glob("test_*.py"))
    for name in JSON_TESTED_ELSEWHERE:  # a run of the command whose words and --json stand within a few lines
        words = [re.escape(f'"{word}"') for word in (*name.split(), "--json")]
        assert re.search(r"[\s\S]{0,300}?".join(words), sources), f"no test runs {name} --json"


@pytest.mark.parametrize("name", sorted(JSON_RUNS))
def test_json_output_parses(name, paths):
    result = run_cli(*_args(name, JSON_RUNS[name], paths), "--json")
    assert "Traceback" not in result.output, result.output
    json.loads(result.stdout)


def test_bench_seeds_json_parses():
    """bench seeds trains once per seed, so it has a test of its own (slow) rather than a row in JSON_RUNS."""
    result = run_cli("bench", "seeds", "--rows", "100", "--seeds", "0", "--json")
    assert result.exit_code in (0, 1) and "Traceback" not in result.output, result.output
    (seed,) = json.loads(result.stdout)["runs"]
    assert seed["seed"] == 0


# ---- an output never replaces an input, and a path of the wrong kind is one line
@pytest.fixture(scope="module")
def model(tmp_path_factory, tiny_backbone):
    """Every test here stops at a refusal before a model loads: a model dir's files, nothing trained."""
    from conftest import fake_model_dir

    return fake_model_dir(tmp_path_factory.mktemp("m") / "model", tiny_backbone)


@pytest.fixture
def blocker(tmp_path):
    """A regular file: any path under it cannot be created, whoever asks (root included)."""
    path = tmp_path / "blocker"
    path.write_text("not a folder\n")
    return path


def _oof(small_files, path):
    """An OOF file of the small train set's rows (uniform probabilities) for blend."""
    import pandas as pd

    frame = pd.read_csv(small_files.train, dtype={"id": str})
    out = pd.DataFrame({"id": frame["id"], "winner_model_a": 0.4, "winner_model_b": 0.35, "winner_tie": 0.25,
                        "label": frame[["winner_model_a", "winner_model_b", "winner_tie"]].to_numpy().argmax(1)})
    out.to_csv(path, index=False)
    return path


def test_predict_never_writes_over_its_test_file(model, small_files, tmp_path):
    test = tmp_path / "t.csv"
    test.write_bytes(small_files.test.read_bytes())
    one_line_error(run_cli("predict", "--test", test, "--model", model, "--out", test, "--overwrite"),
                   "is also an input", code=2)
    assert test.read_bytes() == small_files.test.read_bytes()
    sample = small_files.sample_submission  # beside the test file: read for the row order
    before = sample.read_bytes()
    one_line_error(run_cli("predict", "--test", small_files.test, "--model", model, "--out", sample, "--overwrite"),
                   "is also an input", code=2)
    assert sample.read_bytes() == before


def test_pseudo_label_never_writes_over_its_input(model, small_files, tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_bytes(small_files.test.read_bytes())
    one_line_error(run_cli("pseudo-label", "--model", model, "--input", pairs, "--out", tmp_path / "." / "pairs.csv",
                       "--overwrite"), "is also an input", code=2)
    assert pairs.read_bytes() == small_files.test.read_bytes()


def test_blend_never_writes_over_an_oof_file(model, small_files, tmp_path):
    oof = _oof(small_files, tmp_path / "oof.csv")
    before = oof.read_bytes()
    one_line_error(run_cli("blend", "--oof", f"{oof}={model}", "--out", oof, "--overwrite"), "is also an input", code=2)
    assert oof.read_bytes() == before


def test_unwritable_folder_is_found_by_a_probe_not_by_permissions(tmp_path, monkeypatch):
    """os.access says yes to root even on a read-only mount: the decision is a real file created in the folder. A
    folder that refuses it (EROFS, as a read-only mount answers) stops train before it reads anything."""
    import errno
    import tempfile

    real = tempfile.mkstemp

    def read_only(*args, dir=None, **kw):
        if str(dir) == str(tmp_path / "ro"):
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        return real(*args, dir=dir, **kw)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    one_line_error(run_cli("train", "--train", tmp_path / "missing.csv", "--out", tmp_path / "ro" / "model"),
                   "is not writable (Read-only file system)")


@pytest.mark.parametrize("command", ["tiny-backbone", "build-kernel", "init", "report", "quickstart"])
def test_a_file_where_a_folder_is_expected(command, project, model, blocker):
    args = {"tiny-backbone": ["tiny-backbone", blocker], "build-kernel": ["build-kernel", "train", "--out", blocker],
            "init": ["init", blocker], "report": ["report", model, "--out", blocker],
            "quickstart": ["quickstart", "--workdir", blocker]}[command]
    one_line_error(run_cli(*args), f"{blocker} is a file")
    assert blocker.read_text() == "not a folder\n"


def test_a_folder_where_a_file_is_expected(model, small_files, tmp_path):
    folder = tmp_path / "adir"
    folder.mkdir()
    one_line_error(run_cli("validate", folder, "--test", small_files.test), str(folder))
    one_line_error(run_cli("config", "--config", folder), str(folder))
    oof = _oof(small_files, tmp_path / "oof.csv")
    one_line_error(run_cli("blend", "--oof", f"{oof}={model}", "--out", folder, "--overwrite"), f"{folder} is a folder")


def test_numbers_and_json_of_other_files_are_checked_in_one_line(tmp_path):
    """The same kind elsewhere: a model dir's temperature of Infinity, a corrupt cv.json behind an oof.csv, a corrupt
    notebook build given to run-kernel."""
    files = write_sample_data(tmp_path / "data", rows=12, test_rows=4)
    model = tmp_path / "model"
    model.mkdir()
    info = {"backbone": "bb", "model_type": "deberta-v2", "num_labels": 3, "encoding": {}, "temperature": float("inf")}
    (model / "kaggle_kit_model.json").write_text(json.dumps(info))
    one_line_error(run_cli("predict", "--test", files.test, "--model", model, "--out", tmp_path / "s.csv"),
                   "temperature inf must be a finite number > 0")
    (model / "kaggle_kit_model.json").write_text(json.dumps({**info, "temperature": 1.0, "num_labels": 7}))
    one_line_error(run_cli("predict", "--test", files.test, "--model", model, "--out", tmp_path / "s.csv"),
                   "num_labels 7 must be 2 or 3")

    (tmp_path / "cv").mkdir()
    (tmp_path / "cv" / "oof.csv").write_text("id,label\n1,0\n")
    (tmp_path / "cv" / "cv.json").write_text('{"per_fold": [')
    one_line_error(run_cli("blend", "--oof", tmp_path / "cv" / "oof.csv", "--out", tmp_path / "b.json"),
                   "cv.json is corrupt")

    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "kernel-metadata.json").write_text('{"code_file": "k.ipynb"}')
    (tmp_path / "nb" / "k.ipynb").write_text('{"cells": [')
    one_line_error(run_cli("run-kernel", tmp_path / "nb", "--working", tmp_path / "w"),
                   "k.ipynb is not a readable notebook")
