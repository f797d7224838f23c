"""Write outputs atomically (temp file + rename) and never over an existing file unless asked; a file's sha256."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from kaggle_kit.errors import KitError, UsageProblem


def refuse_overwrite(path: Path, overwrite: bool, flag: str = "--overwrite") -> None:
    if path.exists() and not overwrite:
        raise KitError(f"{path} already exists", hint=f"pass {flag} to replace it, or choose another name")


def refuse_same_file(out: Path, inputs: Iterable[Path | str | None], flag: str = "--out") -> None:
    """No command writes over a file it reads, --overwrite or not: resolved paths, so links and ./ count too."""
    target = Path(out).resolve()
    for given in inputs:
        if given is not None and Path(given).resolve() == target:
            raise UsageProblem(f"{flag} {out} is also an input of this command ({given})",
                               hint="write to another file: kaggle-kit never replaces a file it reads")


def check_outputs(outputs: dict[str, Path | None], inputs: Iterable[Path | str | None], overwrite: bool) -> None:
    """The one guard for a command's output files (flag -> path), before any expensive work: each can be written,
    is none of the inputs nor another output (--overwrite or not), and replaces an existing file only with
    --overwrite."""
    inputs = list(inputs)
    given = [(flag, Path(path)) for flag, path in outputs.items() if path is not None]
    for k, (flag, path) in enumerate(given):
        check_writable(path)
        refuse_same_file(path, inputs, flag)
        for other_flag, other in given[:k]:
            if path.resolve() == other.resolve():
                raise UsageProblem(f"{flag} {path} is also {other_flag}", hint="give each output its own file")
        refuse_overwrite(path, overwrite)


def check_writable(path: Path, folder: bool = False) -> None:
    """Before expensive work: `path` (a file, or with `folder` a folder) can be created there. A probe file in the
    nearest existing folder decides (os.access says yes to root even on read-only mounts); the probe is removed."""
    path = Path(path)
    if path.is_dir() != folder and path.exists():
        kind, want = ("a file", "folder") if folder else ("a folder", "file")
        raise KitError(f"{path} is {kind}", hint=f"give a {want} path")
    base = path if folder and path.is_dir() else path.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise KitError(f"cannot create {path}: {base} is a file, not a folder", hint="choose another location")
    try:
        fd, probe = tempfile.mkstemp(prefix=".kaggle-kit-probe-", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise KitError(f"cannot write {path}: {base} is not writable ({exc.strerror or exc})",
                       hint="choose another location, or make it writable") from None


def missing_folders(path: Path) -> list[Path]:
    """`path` and its ancestors that do not exist yet, deepest first: what a mkdir(parents=True) will create."""
    path = Path(path)
    return [p for p in [path, *path.parents] if not p.exists()]


def remove_empty(folders: Iterable[Path]) -> None:
    """After a failed command: the folders it created (deepest first) go if nothing else was put in them."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (someone else's file), or already gone
            pass


def next_free(directory: Path, stem: str, suffix: str = "") -> Path:
    """stem, stem-2, stem-3, ...: the first name not taken, so reruns never overwrite."""
    candidate = directory / f"{stem}{suffix}"
    k = 2
    while candidate.exists():
        candidate = directory / f"{stem}-{k}{suffix}"
        k += 1
    return candidate


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; it replaces `path` only if the block finishes without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _mode_for(path))  # mkstemp makes 0600: keep the old file's mode, else the umask default
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(path: Path, writer: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        writer(tmp)


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def file_sha256(path: Path) -> str:
    """The file's sha256, read in blocks (a submission, a model file, a train.csv of any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
