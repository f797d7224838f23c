"""The package's layout stays true: stages import only downwards, no import cycles, small modules, and only the CLI
talks to Kaggle (function-level imports count too)."""

import ast
from pathlib import Path

import kaggle_kit

ROOT = Path(kaggle_kit.__file__).parent
# Low -> high: a module may import its own stage and the stages before it, never a later one.
STAGES = [
    ("base", ["errors", "atomic", "progress", "quiet", "compat", "metrics", "plots", "ledger", "__init__"]),
    ("competition", ["competition"]),
    ("config", ["config", "doctor"]),
    ("data", ["data", "submission"]),
    ("model", ["model"]),
    ("training", ["training"]),
    ("inference", ["inference"]),
    ("evaluation", ["evaluation"]),
    ("kernel", ["kernel"]),
    ("remote", ["remote"]),
    ("app", ["cli", "quickstart"]),
]
RANK = {room: rank for rank, (_, rooms) in enumerate(STAGES) for room in rooms}
MAX_TOP_LEVEL_MODULES = 12
MAX_MODULE_LINES = 450


def _imported_modules(path, module):
    """Absolute names of everything `path` (the module `module`) imports, relative imports resolved."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] if node.level else [])
            name = ".".join(filter(None, [base, node.module])) if node.level else node.module
            yield name
            yield from (f"{name}.{alias.name}" for alias in node.names)


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(("kaggle_kit", *parts)).removesuffix(".__init__")] = path
    return found


def _graph() -> dict[str, set[str]]:
    """Module -> the kaggle_kit modules it imports (a name that is an attribute maps to its module)."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        deps = set()
        for name in _imported_modules(path, module):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module and name != "kaggle_kit":
                deps.add(name)
            elif name == "kaggle_kit" and module != "kaggle_kit":
                deps.add("kaggle_kit")
        graph[module] = deps
    return graph


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), and self-loops."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_every_module_belongs_to_a_stage():
    assert sorted({_room(m) for m in _modules()} - set(RANK)) == []


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_cycle_finder_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_lower_stages_never_import_higher_ones():
    upward = [f"{m} ({_room(m)}) imports {d} ({_room(d)})" for m, deps in _graph().items() for d in sorted(deps)
              if RANK[_room(d)] > RANK[_room(m)]]
    assert upward == []


def test_folder_listing_stays_small_and_modules_short():
    top = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines()))
            > MAX_MODULE_LINES}
    assert long == {}


def test_only_the_cli_imports_the_remote_package():
    assert (ROOT / "remote" / "client.py").exists()
    offenders = []
    for module, path in _modules().items():
        if module.startswith(("kaggle_kit.cli", "kaggle_kit.remote")):
            continue
        names = set(_imported_modules(path, module))
        offenders += [f"{module} imports {n}" for n in sorted(names) if n == "kaggle_kit.remote"
                      or n.startswith("kaggle_kit.remote.") or n.split(".")[0] == "kaggle"]
    assert offenders == []


def test_import_walker_sees_relative_imports(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("from .remote.client import call\nfrom . import remote\nimport kaggle_kit.remote\n")
    names = set(_imported_modules(sample, "kaggle_kit.doctor"))
    assert {"kaggle_kit.remote.client", "kaggle_kit.remote"} <= names
