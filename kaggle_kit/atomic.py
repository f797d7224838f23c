"""Write outputs atomically (temp file + rename) and never over an existing file unless asked."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from kaggle_kit.errors import KitError


def refuse_overwrite(path: Path, overwrite: bool, flag: str = "--overwrite") -> None:
    if path.exists() and not overwrite:
        raise KitError(f"{path} already exists", hint=f"pass {flag} to replace it, or choose another name")


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
