"""What push-kernel learned, kept in the project: each kernel's pushed versions and their last known status."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from kaggle_kit.atomic import write_text_atomic
from kaggle_kit.errors import KitError

STATE_FILE = Path(".kaggle-kit") / "kernels.json"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load(path: Path = STATE_FILE) -> dict:
    """{kernel ref: {"versions": [{"version", "pushed_at", "status", "status_at"}, ...]}}; {} when there is no file."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise KitError(f"{path} is not valid JSON ({exc})",
                       hint="fix or delete it; push-kernel writes it again") from None
    if not isinstance(data, dict):
        raise KitError(f"{path} does not hold a JSON object", hint="fix or delete it; push-kernel writes it again")
    return data


def _save(data: dict, path: Path) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def record_push(kernel: str, version: int, path: Path = STATE_FILE, fold: str | None = None) -> None:
    """`fold` ("i/K") is kept so a later `--folds K'` does not take fold i of another split for done."""
    data = load(path)
    versions = data.setdefault(kernel, {}).setdefault("versions", [])
    entry = {"version": version, "pushed_at": _now(), "status": None, "status_at": None}
    if fold:
        entry["fold"] = fold
    versions.append(entry)
    _save(data, path)


def record_status(kernel: str, status: str, path: Path = STATE_FILE, version: int | None = None) -> None:
    """Store a status on the version it describes (the newest we pushed when none is given); kernels we never
    pushed from here are not recorded."""
    data = load(path)
    versions = data.get(kernel, {}).get("versions")
    if not versions:
        return
    entry = next((v for v in reversed(versions) if v.get("version") == version), None) if version else versions[-1]
    if entry is None or entry.get("status") == status:
        return
    entry.update(status=status, status_at=_now())
    _save(data, path)


def pushed_versions(kernel: str, path: Path = STATE_FILE) -> list[dict]:
    return load(path).get(kernel, {}).get("versions", [])


def last_pushed(kernel: str, path: Path = STATE_FILE) -> int | None:
    """The version the last push from here got (pushes Kaggle refused, version 0, are never recorded)."""
    versions = [v.get("version") for v in pushed_versions(kernel, path)]
    versions = [v for v in versions if isinstance(v, int) and v > 0]
    return versions[-1] if versions else None


def split_ref(ref: str) -> tuple[str, int | None]:
    """"owner/slug/N" -> ("owner/slug", N); "owner/slug" -> ("owner/slug", None)."""
    parts = ref.split("/")
    if len(parts) == 3 and parts[2].isdigit():
        return "/".join(parts[:2]), int(parts[2])
    return ref, None


def join_ref(kernel: str, version: int | None) -> str:
    """("owner/slug", N) -> "owner/slug/N" (what the client sends as versionLabel); no version: "owner/slug"."""
    return f"{kernel}/{version}" if version else kernel


def pinned(ref: str, path: Path = STATE_FILE) -> tuple[str, int | None]:
    """The kernel and the version to ask about: the one given, else the one last pushed from here, else None."""
    kernel, version = split_ref(ref)
    return kernel, version if version is not None else last_pushed(kernel, path)


def last_completed(kernel: str, path: Path = STATE_FILE) -> int | None:
    """The newest version recorded as COMPLETE, or None (never a guess)."""
    done = [v["version"] for v in pushed_versions(kernel, path)
            if v.get("status") == "COMPLETE" and isinstance(v.get("version"), int)]
    return max(done) if done else None
