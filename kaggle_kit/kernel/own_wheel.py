"""kaggle-kit's own wheel, the one `upload code` / `upload wheels` ship: built from the source checkout through its
sdist (so both hold the same files), or, for an installed kaggle-kit, repacked from the files its RECORD lists."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

import kaggle_kit
from kaggle_kit.errors import KitError

DIST = "kaggle-kit"
# Written by the installer, not part of the wheel (PEP 376 / PEP 610); RECORD is rewritten for the new archive.
INSTALLER_FILES = ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD")


def source_checkout() -> Path | None:
    """The source tree this kaggle_kit runs from (a clone, editable or on PYTHONPATH); None when installed."""
    root = Path(kaggle_kit.__file__).resolve().parent.parent
    setup_cfg = root / "setup.cfg"
    if setup_cfg.is_file() and f"name = {DIST}\n" in setup_cfg.read_text(encoding="utf-8"):
        return root
    return None


def build_own_wheel(dest: Path) -> Path:
    """Write this kaggle-kit's wheel into `dest` and return its path."""
    dest.mkdir(parents=True, exist_ok=True)
    root = source_checkout()
    if root is None:
        return repack_installed(dest)
    with tempfile.TemporaryDirectory(prefix="kk-dist-") as tmp:
        _, wheel = build_distributions(root, Path(tmp))
        return Path(shutil.copy2(wheel, dest / wheel.name))


def build_distributions(root: Path, dest: Path) -> tuple[Path, Path]:
    """(sdist, wheel) of the checkout at `root`, the wheel built from the unpacked sdist as pip does. setuptools runs
    in this environment (no build isolation: offline, seconds); it leaves no file in the checkout."""
    dest.mkdir(parents=True, exist_ok=True)
    egg_info = root / "kaggle_kit.egg-info"
    had_egg_info = egg_info.exists()
    try:
        sdist = dest / _build_hook(root, "build_sdist", dest)
    finally:
        if not had_egg_info:
            shutil.rmtree(egg_info, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="kk-sdist-") as tmp, tarfile.open(sdist) as archive:
        archive.extractall(tmp, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        (unpacked,) = Path(tmp).iterdir()
        wheel = dest / _build_hook(unpacked, "build_wheel", dest)
    return sdist, wheel


def _build_hook(source: Path, hook: str, dest: Path) -> str:
    """Run setuptools' PEP 517 `hook` in `source`; the file name it built."""
    code = "import sys, setuptools.build_meta as b; print(getattr(b, sys.argv[1])(sys.argv[2]))"
    proc = subprocess.run([sys.executable, "-c", code, hook, str(dest.resolve())], cwd=source, capture_output=True,
                          text=True)
    if proc.returncode:
        lines = proc.stderr.strip().splitlines() or ["?"]
        raise KitError(f"building kaggle-kit ({hook}) failed: {lines[-1][:300]}",
                       hint="pyproject.toml's build requirement, here: pip install -U 'setuptools>=77'")
    return proc.stdout.strip().splitlines()[-1]


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repack_installed(dest: Path) -> Path:
    """The wheel of the installed kaggle-kit: every file its RECORD lists in the package and dist-info, each checked
    against its recorded hash, so what ships is what was installed."""
    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        dist = None
    site = Path(dist.locate_file("")).resolve() if dist else None
    if site is None or site / "kaggle_kit" / "__init__.py" != Path(kaggle_kit.__file__).resolve():
        raise KitError("this kaggle_kit is neither a source checkout nor an installed distribution",
                       hint="pip install kaggle-kit from its wheel, or run from a clone")
    files = dist.files or []
    info_dir = next((str(f.parent) for f in files if f.name == "METADATA"), None)
    if info_dir is None:
        raise KitError(f"the installed kaggle-kit in {site} has no RECORD of its files", hint="reinstall kaggle-kit")
    members = []
    for file in files:
        top = file.parts[0]
        if top not in ("kaggle_kit", info_dir) or file.suffix == ".pyc" or "__pycache__" in file.parts:
            continue
        if top == info_dir and file.name in INSTALLER_FILES:
            continue
        data = Path(file.locate()).read_bytes()
        if file.hash is None or _digest(data) != f"{file.hash.mode}={file.hash.value}":
            raise KitError(f"the installed {file} differs from what was installed", hint="reinstall kaggle-kit")
        members.append((str(file.as_posix()), data))
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]
    out = dest / f"kaggle_kit-{dist.version}-{tags[0] if tags else 'py3-none-any'}.whl"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in sorted(members):
            wheel.writestr(name, data)
            writer.writerow([name, _digest(data), len(data)])
        writer.writerow([f"{info_dir}/RECORD", "", ""])
        wheel.writestr(f"{info_dir}/RECORD", record.getvalue())
    return out


def main(argv: list[str]) -> None:
    """`python -m kaggle_kit.kernel.own_wheel DEST`: the sdist and wheel of this checkout into DEST (CI's smoke)."""
    root = source_checkout()
    if len(argv) != 1 or root is None:
        sys.exit("usage: python -m kaggle_kit.kernel.own_wheel DEST  (from a kaggle-kit source checkout)")
    for path in build_distributions(root, Path(argv[0])):
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
