"""push-kernel pushes what build-kernel built and run-kernel ran: an existing build is compared with what the config
builds now, never silently replaced."""

from __future__ import annotations

import json
from pathlib import Path

from kaggle_kit.config import ProjectConfig
from kaggle_kit.errors import KitError
from kaggle_kit.kernel.build import KernelBuild, read_build_metadata, render_kernel, script_of

PROVENANCE = ("commit", "dirty", "config_sha256", "package_sha256")  # where it was built, or follows CONFIG/ARCHIVE
EMBEDDED = ("TASK", "ARCHIVE", "CONFIG", "MANIFEST")
MAX_SHOWN = 4


def existing_build(folder: Path) -> KernelBuild | None:
    """The build in `folder` (its metadata read, one line if corrupt), or None when there is none."""
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    meta = read_build_metadata(folder)
    return KernelBuild(folder, folder / meta.get("code_file", ""), meta)


def build_differences(task: str, cfg: ProjectConfig, build: KernelBuild) -> list[str]:
    """What differs between an existing build and what `cfg` builds now, one phrase each; [] when they are the same
    kernel (only the provenance in the manifest, the git commit and dirty flag, may differ)."""
    want_meta, want_script = render_kernel(task, cfg, build.script.suffix == ".ipynb")
    found = [f"kernel-metadata.json {key} is {build.metadata.get(key)!r}, the config gives {want_meta.get(key)!r}"
             for key in sorted(set(build.metadata) | set(want_meta)) if build.metadata.get(key) != want_meta.get(key)]
    if not build.script.is_file():
        return [*found, f"{build.script.name} is missing"]
    try:
        script = script_of(build.script)
    except (KitError, UnicodeDecodeError) as exc:
        return [*found, f"{build.script.name} cannot be read ({exc})"]
    if script == want_script:
        return found
    have, want = _embedded(script), _embedded(want_script)
    if have is None or want is None:
        return [*found, f"{build.script.name} was edited (its embedded parts cannot be read)"]
    if have["TASK"] != want["TASK"]:
        found.append(f"the build is a {have['TASK']} kernel")
    if have["CONFIG"] != want["CONFIG"]:
        found.append(f"the embedded config differs in {_changed_keys(have['CONFIG'], want['CONFIG'])}")
    if have["ARCHIVE"] != want["ARCHIVE"]:
        found.append("the embedded kaggle_kit package differs (its sources changed since the build)")
    strip = lambda m: {k: v for k, v in m.items() if k not in PROVENANCE} if isinstance(m, dict) else m  # noqa: E731
    manifests = strip(have["MANIFEST"]), strip(want["MANIFEST"])
    if manifests[0] != manifests[1]:
        found.append(f"the embedded manifest differs in {_changed_keys(*manifests)}")
    if have["rest"] != want["rest"]:
        found.append(f"{build.script.name} differs outside its embedded parts (edited, or another kaggle-kit's "
                     "template)")
    return found


def _embedded(script: str) -> dict | None:
    """The parts the template embeds (TASK, ARCHIVE, CONFIG, MANIFEST) and the script's text without them."""
    import ast

    try:
        tree = ast.parse(script)
    except (SyntaxError, ValueError):
        return None
    lines, parts = script.splitlines(keepends=True), {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and getattr(node.targets[0], "id", None) in EMBEDDED:
            value = node.value.args[0] if isinstance(node.value, ast.Call) and node.value.args else node.value
            if not isinstance(value, ast.Constant) or not isinstance(value.value, str):
                return None
            name = node.targets[0].id
            try:
                parts[name] = json.loads(value.value) if name in ("CONFIG", "MANIFEST") else value.value
            except json.JSONDecodeError:
                return None
            for k in range(node.lineno - 1, node.end_lineno or node.lineno):
                lines[k] = f"{name}\n"
    if set(parts) != set(EMBEDDED):
        return None
    return {**parts, "rest": "".join(lines)}


def _changed_keys(have, want) -> str:
    """'[train] lr, [kernel] accelerator' (at most MAX_SHOWN named) for two nested dicts."""
    keys: list[str] = []

    def walk(a, b, where: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(a.get(key), b.get(key), f"{where}.{key}" if where else str(key))
        elif a != b:
            keys.append(where or "its value")

    walk(have, want, "")
    shown = ", ".join(keys[:MAX_SHOWN]) + (f" (+{len(keys) - MAX_SHOWN} more)" if len(keys) > MAX_SHOWN else "")
    return shown or "nothing"
