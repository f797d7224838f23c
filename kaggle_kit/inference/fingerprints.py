"""Fingerprints of what a prediction's numbers depend on: files by content (large ones by sampled blocks), folders,
the input rows, and the run id every shard carries (inference/shards.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from kaggle_kit.atomic import file_sha256

HASHED_WHOLE = 16 << 20  # files up to 16 MiB are hashed whole; bigger ones (weights) by size and sampled blocks
SAMPLES, SAMPLE_BYTES = 64, 64 << 10  # 4 MiB read of a weights file of any size: a new version differs there


def content_digest(path: Path) -> str:
    """A file's content: whole up to HASHED_WHOLE; above, its size and SAMPLES blocks spread over it (start and end
    included). Not the modification time: a copy to another node or a remount keeps the shards, a new version of the
    weights does not."""
    size = path.stat().st_size
    if size <= HASHED_WHOLE:
        return file_sha256(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        for k in range(SAMPLES):
            f.seek((size - SAMPLE_BYTES) * k // (SAMPLES - 1))
            digest.update(f.read(SAMPLE_BYTES))
    return digest.hexdigest()


def folder_fingerprint(folder: Path, entries: tuple[str, ...] | None = None) -> str:
    """The files under `folder` (only `entries` of it, if given) by relative path and content_digest."""
    folder = Path(folder)
    roots = [folder / e for e in entries] if entries is not None else [folder]
    paths = [p for root in roots for p in ([root] if root.is_file() else root.rglob("*")) if p.is_file()]
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + content_digest(path).encode())
    return digest.hexdigest()


def rows_digest(ids: list[str], texts: dict[str, list]) -> str:
    """The input as predicted: row ids and texts in order (not the file's bytes: a re-saved CSV keeps the shards)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(ids).encode())
    for column in sorted(texts):
        digest.update(column.encode())
        for turns in texts[column]:
            digest.update(json.dumps(turns).encode())
    return digest.hexdigest()


def run_id(fingerprint: dict) -> str:
    """Written into every shard: a shard counts only for the run whose fingerprint it carries."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
