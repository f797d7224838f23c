"""One run writes an output at a time: an flock on OUT.parts/lock, taken before any shard is read or written, naming
its holder (pid, host, since) to the run that finds it taken."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from kaggle_kit.errors import KitError

PARTS_SUFFIX = ".parts"
LOCK = "lock"  # held (flock) by the run writing OUT, from its check of OUT.parts/ until OUT is written
HELD: dict[Path, int] = {}  # OUT.parts/ (resolved) -> the lock file this process holds for it
ACTIVE: set[Path] = set()  # ... while run_sharded runs on it (after it returns, its caller writes OUT)


def acquire_lock(folder: Path) -> None:
    """Take OUT.parts/lock (flock, not blocking): a second run writing the same output stops here, in one line
    naming the run that holds it, before it reads or writes a shard. Held until remove_parts, or until this process
    ends (the kernel drops a killed run's lock)."""
    folder.mkdir(parents=True, exist_ok=True)
    if folder.resolve() in ACTIVE:
        raise KitError(f"{folder} is in use by another prediction of this process", hint="write to another --out")
    release_lock(folder)  # this process's own, left by a caller that failed to write OUT after the shards
    path = folder / LOCK
    for _ in range(5):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            os.close(fd)
            raise KitError(f"{folder.with_name(folder.name[:-len(PARTS_SUFFIX)])} is being written by another "
                           f"kaggle-kit run ({_describe(holder)})",
                           hint="wait for it to finish, or write to another --out") from None
        try:  # the run that held it may have removed the file meanwhile: hold the file that is there
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    else:
        raise KitError(f"cannot lock {path}: it is replaced as soon as it is taken", hint="rerun")
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)
    HELD[folder.resolve()] = fd


def _describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        return f"pid {info['pid']} on {info['host']}, since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return "it is starting"


def release_lock(folder: Path) -> None:
    fd = HELD.pop(folder.resolve(), None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def drop_lock_file(folder: Path) -> None:
    """Remove the lock file while still holding it (a run starting now then takes a new one), then let go."""
    if folder.resolve() in HELD:
        (folder / LOCK).unlink(missing_ok=True)
    release_lock(folder)
