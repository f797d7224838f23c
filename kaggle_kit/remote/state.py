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


def record_push(kernel: str, version: int, path: Path = STATE_FILE) -> None:
    data = load(path)
    versions = data.setdefault(kernel, {}).setdefault("versions", [])
    versions.append({"version": version, "pushed_at": _now(), "status": None, "status_at": None})
    _save(data, path)


def record_status(kernel: str, status: str, path: Path = STATE_FILE) -> None:
    """Kaggle reports the newest version's status: store it on the newest version we pushed (kernels we never pushed
    from here are not recorded)."""
    data = load(path)
    versions = data.get(kernel, {}).get("versions")
    if not versions or versions[-1].get("status") == status:
        return
    versions[-1].update(status=status, status_at=_now())
    _save(data, path)


def last_completed(kernel: str, path: Path = STATE_FILE) -> int | None:
    """The newest version recorded as COMPLETE, or None (never a guess)."""
    versions = load(path).get(kernel, {}).get("versions", [])
    done = [v["version"] for v in versions if v.get("status") == "COMPLETE" and isinstance(v.get("version"), int)]
    return max(done) if done else None
