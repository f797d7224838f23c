"""The kernel lock (kernel.lock.toml) and the offline wheel set built from it for Kaggle's image.

One lock is the single source for: the wheels `upload wheels` downloads, what the kernel bootstrap may install, and
what the preflight checks. `python -m kaggle_kit.kernel.wheels lock` regenerates it from the venv that ran the newest
tests."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from kaggle_kit.errors import KitError
from kaggle_kit.kernel.own_wheel import DIST, build_own_wheel

LOCK_FILE = Path(__file__).with_name("kernel.lock.toml")
RECORD_FILE = "kaggle_kit_lock.json"
# What kernel code imports beyond the image's own stack; their dependency closure is locked.
ROOTS = ("transformers", "peft", "accelerate", "bitsandbytes", "tokenizers", "datasets", "huggingface-hub",
         "safetensors", "sentencepiece")
# Always in Kaggle's image and never installed by us (torch is its CUDA build; the rest are large compiled wheels
# the image keeps current): the closure stops there, the preflight checks them against setup.cfg's minimums.
IMAGE = ("torch", "numpy", "pandas", "scipy", "scikit-learn", "matplotlib", "pyarrow")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Lock:
    python: str
    platforms: tuple[str, ...]
    packages: dict[str, str]  # canonical name -> exact version tested
    minimum: dict[str, str]  # canonical name -> lowest version tested (setup.cfg)

    def requirements(self) -> list[str]:
        return [f"{name}=={version}" for name, version in sorted(self.packages.items())]

    def to_dict(self) -> dict:
        return {"python": self.python, "platforms": list(self.platforms),
                "packages": dict(sorted(self.packages.items())), "minimum": dict(sorted(self.minimum.items()))}


def load_lock(path: Path = LOCK_FILE) -> Lock:
    if not path.exists():
        raise KitError(f"kernel lock {path} not found", hint="it ships with kaggle-kit: reinstall it")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return Lock(python=data["target"]["python"], platforms=tuple(data["target"]["platforms"]),
                packages={canonical(k): v for k, v in data["packages"].items()},
                minimum={canonical(k): v for k, v in data["minimum"].items()})


def wheel_name(filename: str) -> str:
    """The canonical distribution name of a wheel file (PEP 427: name-version-...whl)."""
    return canonical(filename.split("-")[0])


def build_wheel_set(dest: Path, lock: Lock | None = None, python: str | None = None, platforms: list[str] | None = None,
                    find_links: list[Path] | None = None, no_index: bool = False) -> list[Path]:
    """Exactly the lock's wheels for the target interpreter, our own wheel and the lock record; complete or an error.

    find_links/no_index let a test build the same set offline from a local wheel cache."""
    lock = lock or load_lock()
    dest.mkdir(parents=True, exist_ok=True)
    target = target_args(lock, python, platforms)
    sources = [arg for link in (find_links or []) for arg in ("--find-links", str(link))]
    sources += ["--no-index"] if no_index else []
    pip(["download", "-q", "--no-deps", "--only-binary=:all:", *target, *sources, "-d", str(dest),
          *lock.requirements()], "pip download of the locked wheels")
    build_own_wheel(dest)
    have = {wheel_name(p.name) for p in dest.glob("*.whl")}
    missing = sorted(set(lock.packages) - have)
    if missing:
        raise KitError(f"the wheel set lacks {', '.join(missing)}", hint="no wheel for the lock's python/platform")
    record = {"lock": lock.to_dict(), "wheels": sorted(p.name for p in dest.glob("*.whl"))}
    (dest / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return sorted(dest.glob("*.whl"))


def pip(args: list[str], what: str, python: str = sys.executable, hint: str | None = None) -> None:
    """Run `python -m pip ARGS`; a failure is one line with pip's own ERROR line."""
    proc = subprocess.run([python, "-m", "pip", *args], capture_output=True, text=True)
    if proc.returncode:
        lines = proc.stderr.strip().splitlines()
        lines = [x for x in lines if x.startswith("ERROR")] or lines
        raise KitError(f"{what} failed: {(lines or ['?'])[-1][:300]}", hint=hint)


def target_args(lock: Lock, python: str | None = None, platforms=None) -> list[str]:
    """pip's --python-version / --platform for wheels of another interpreter (default: the lock's target)."""
    target = ["--python-version", python or lock.python]
    for platform in platforms if platforms is not None else lock.platforms:
        target += ["--platform", platform]
    return target


# ---- lock generation (run in the venv that passed the newest tests)
def _requires(dist: metadata.Distribution) -> list[str]:
    """Names a distribution needs here (markers evaluated, extras skipped)."""
    from packaging.requirements import Requirement

    names = []
    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            names.append(canonical(req.name))
    return names


def closure(roots=ROOTS, stop=IMAGE) -> dict[str, str]:
    """Installed versions of `roots` and everything they need, not descending into image packages."""
    found: dict[str, str] = {}
    todo = [canonical(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in found or name in stop:
            continue
        dist = metadata.distribution(name)
        found[name] = dist.version
        todo.extend(_requires(dist))
    return dict(sorted(found.items()))


def declared_minimums() -> dict[str, str]:
    """The `>=` lower bounds kaggle-kit declares (setup.cfg's install_requires), read from the installed metadata."""
    from packaging.requirements import Requirement

    bounds = {}
    for line in metadata.requires(DIST) or []:
        req = Requirement(line)
        if req.marker is not None and "extra" in str(req.marker):
            continue
        low = [spec.version for spec in req.specifier if spec.operator == ">="]
        if low:
            bounds[canonical(req.name)] = low[0]
    return bounds


def render_lock(packages: dict[str, str], minimum: dict[str, str], python: str, platforms: list[str]) -> str:
    lines = [
        "# Exact versions the kernels are tested with (the newest stack of `make test`). The single source for",
        "# `kaggle-kit upload wheels` (downloads exactly these + the kaggle-kit wheel), the kernel bootstrap (installs",
        "# from them what the image lacks or has below [minimum]) and the kernel preflight.",
        "# Regenerate in the venv that passed the newest tests: python -m kaggle_kit.kernel.wheels lock",
        "", "[target]  # Kaggle's GPU image",
        f'python = "{python}"', "platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]",
        "", "[minimum]  # setup.cfg's lower bounds: the oldest tested versions (`make test-oldest`)",
        *(f'{name} = "{version}"' for name, version in sorted(minimum.items())),
        "", "[packages]",
        *(f'{name} = "{version}"' for name, version in packages.items()), "",
    ]
    return "\n".join(lines)


def write_lock(path: Path = LOCK_FILE) -> Path:
    """The lock from this venv's installed closure; minimums of what kernels use, as declared (declared_minimums)."""
    current = load_lock(path) if path.exists() else None
    packages = closure()
    minimum = {k: v for k, v in declared_minimums().items() if k in packages or k in ROOTS or k in IMAGE}
    path.write_text(render_lock(packages, minimum, current.python if current else "3.12",
                                list(current.platforms) if current else ["manylinux_2_28_x86_64"]))
    return path


def main(argv: list[str]) -> None:
    """`lock`: rewrite the lock from this venv; `download DEST [PYTHON]`: the wheel set as `upload wheels` stages it."""
    if argv[:1] == ["lock"]:
        print(f"wrote {write_lock()}")
    elif argv[:1] == ["download"] and len(argv) in (2, 3):
        files = build_wheel_set(Path(argv[1]), python=argv[2] if len(argv) == 3 else None)
        print(f"{len(files)} wheels in {argv[1]}")
    else:
        sys.exit("usage: python -m kaggle_kit.kernel.wheels lock | download DEST [PYTHON_VERSION]")


if __name__ == "__main__":
    main(sys.argv[1:])
