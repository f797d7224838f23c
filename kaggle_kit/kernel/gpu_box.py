"""A GPU box with no package index: `make gpu-wheels` (where the index is) writes the wheels such a box lacks, and
`make test-gpu` installs them there offline into the box's own torch environment, never replacing torch.

The box assumed: a cloud GPU image with its CUDA torch, transformers, peft, accelerate and the scientific stack
(numpy, pandas, scipy, scikit-learn) but no bitsandbytes and no index. kaggle-kit trains without `datasets` (its
rows are a plain torch Dataset), so pyarrow (52 MiB) is not needed; bitsandbytes is (41 MiB for 0.50.2). What the box
still lacks beyond the folder is named by `missing` in one line before any check runs.

    python -m kaggle_kit.kernel.gpu_box download DIR [--extra NAME ...]   (machine with the index)
    python -m kaggle_kit.kernel.gpu_box install DIR                      (the GPU box, offline)"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import importlib.util
import json
import sys
from pathlib import Path

from kaggle_kit.errors import KitError

BOX_WHEELS = ("bitsandbytes", "psutil", "tqdm", "sentencepiece")  # small, or absent from torch images
LIMIT_BYTES = 64 * 2 ** 20
MANIFEST = "gpu-wheels.json"
# What `make test-gpu` imports (module -> distribution): checked on the box before any check runs.
NEEDED = {"torch": "torch", "transformers": "transformers", "peft": "peft", "accelerate": "accelerate",
          "safetensors": "safetensors", "tokenizers": "tokenizers", "numpy": "numpy", "pandas": "pandas",
          "scipy": "scipy", "sklearn": "scikit-learn", "bitsandbytes": "bitsandbytes", "tqdm": "tqdm",
          "psutil": "psutil", "sentencepiece": "sentencepiece"}


PIP_HINT = "check the names and the package index"


def download(dest: Path, extra: tuple[str, ...] = (), python: str | None = None,
             platforms: tuple[str, ...] | None = None) -> dict:
    """BOX_WHEELS (+ extra) for the box's Python and platform, at the kernel lock's versions where it has them;
    refused over LIMIT_BYTES. Writes DIR/gpu-wheels.json (files, sizes, target)."""
    from kaggle_kit.kernel.wheels import canonical, load_lock, pip, target_args

    lock = load_lock()
    if dest.exists() and any(dest.iterdir()):
        raise KitError(f"{dest} is not empty", hint="choose a new folder (make gpu-wheels GPU_WHEELS=DIR)")
    dest.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys([*BOX_WHEELS, *extra]))
    wanted = [f"{n}=={lock.packages[canonical(n)]}" if canonical(n) in lock.packages else n for n in names]
    pip(["download", "-q", "--no-deps", "--only-binary=:all:", *target_args(lock, python, platforms or None),
         "-d", str(dest), *wanted], "pip download", hint=PIP_HINT)
    wheels = sorted(dest.glob("*.whl"))
    total = sum(p.stat().st_size for p in wheels)
    record = {"python": python or lock.python, "platforms": list(platforms or lock.platforms),
              "wheels": [{"file": p.name, "mib": round(p.stat().st_size / 2 ** 20, 1)} for p in wheels],
              "total_mib": round(total / 2 ** 20, 1)}
    if total > LIMIT_BYTES:
        raise KitError(f"the wheels for the GPU box take {record['total_mib']} MiB, over "
                       f"{LIMIT_BYTES // 2 ** 20} MiB",
                       hint="drop a package from GPU_WHEELS_EXTRA / --extra (the box may have it)")
    (dest / MANIFEST).write_text(json.dumps(record, indent=2) + "\n")
    return record


def installed(distribution: str) -> str | None:
    try:
        return md.version(distribution)
    except md.PackageNotFoundError:
        return None


def install(folder: Path, python: str = sys.executable) -> list[str]:
    """Install, offline and without dependencies, the folder's wheels whose distribution this environment lacks;
    torch is never among them, and its version is checked unchanged. Returns the wheels installed."""
    from kaggle_kit.kernel.wheels import pip, wheel_name

    if not (folder / MANIFEST).exists():
        raise KitError(f"{folder} holds no {MANIFEST}", hint="write it with `make gpu-wheels` on a machine with the "
                       "package index and copy it here")
    torch_before = installed("torch")
    lacking = [p for p in sorted(folder.glob("*.whl")) if wheel_name(p.name) != "torch"
               and installed(wheel_name(p.name)) is None]
    if lacking:
        pip(["install", "-q", "--no-index", "--no-deps", "--find-links", str(folder), *map(str, lacking)],
            "pip install", python, hint=PIP_HINT)
    if installed("torch") != torch_before:  # pragma: no cover - --no-deps and no torch wheel make this impossible
        raise KitError(f"torch changed from {torch_before} to {installed('torch')}", hint="reinstall the box's torch")
    return [p.name for p in lacking]


def missing() -> list[str]:
    """The distributions `make test-gpu` needs that this environment cannot import."""
    return [dist for module, dist in NEEDED.items() if importlib.util.find_spec(module) is None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kaggle_kit.kernel.gpu_box", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    down = sub.add_parser("download", help="Write the wheels a GPU box lacks (needs the package index).")
    down.add_argument("dest", type=Path)
    down.add_argument("--extra", nargs="*", default=[], help="Further distributions the box lacks.")
    down.add_argument("--python", default=None, help="The box's Python (default: the kernel lock's, 3.12).")
    put = sub.add_parser("install", help="Install what this environment lacks from DIR, offline.")
    put.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "download":
            record = download(args.dest, tuple(args.extra), args.python)
            print(f"gpu-wheels: {len(record['wheels'])} wheels, {record['total_mib']} MiB, for Python "
                  f"{record['python']} in {args.dest}")
            return 0
        done = install(args.folder) if args.folder.is_dir() else []
        if not args.folder.is_dir():
            print(f"gpu-wheels: no folder {args.folder}; nothing installed")
        elif done:
            print(f"gpu-wheels: installed {', '.join(done)} (offline, torch untouched)")
        lacking = missing()
        if lacking:
            print(f"gpu-check: this environment lacks {', '.join(lacking)}: add them to the folder "
                  f"(make gpu-wheels GPU_WHEELS_EXTRA='{' '.join(lacking)}') or install them")
            return 1
        return 0
    except KitError as exc:
        print(f"gpu-wheels: {exc.format_line()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
