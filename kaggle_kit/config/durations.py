"""Durations as users write them (90s, 45m, 8h30m), the range every budget must fall in, and a process clock."""

from __future__ import annotations

import re
import time

DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")
MIN_BUDGET_S = 1.0
# An infer kernel's default budget: this share of the competition's limit (the rest covers what runs before Python
# starts and throughput that varies from one Kaggle machine to another).
SAFE_SHARE = 0.8
MAX_BUDGET_S = 7 * 24 * 3600.0

def parse_duration(value: str | int | float) -> float:
    """Seconds from 3600, "90s", "45m", "8h30m", "1.5h"; ValueError with a readable reason otherwise."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 90s, 45m, 8h30m or a number of seconds")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            match = DURATION_RE.match(text)
            if not text or not match or not any(match.groups()):
                raise ValueError("must be a duration such as 90s, 45m, 8h30m or a number of seconds") from None
            h, m, s = (float(g) if g else 0.0 for g in match.groups())
            seconds = h * 3600 + m * 60 + s
    if not MIN_BUDGET_S <= seconds <= MAX_BUDGET_S:
        raise ValueError(f"must be between {MIN_BUDGET_S:.0f}s and {MAX_BUDGET_S / 86400:.0f} days")
    return seconds


def duration_problem(value: str | int) -> str | None:
    """The config check for [predict] time_budget and --time-budget (the same forms and range for both)."""
    try:
        parse_duration(value)
    except ValueError as exc:
        return str(exc)
    return None


KAGGLE_SESSION_S = 12 * 3600  # Kaggle stops a GPU (or CPU) session after 12 hours
TRAIN_SAFE_SHARE = 0.85  # a train kernel's default [train] time_budget: start-up and the final writes fit in the rest


def default_train_budget() -> float:
    return TRAIN_SAFE_SHARE * KAGGLE_SESSION_S


def default_budget(time_limit_s: int | None) -> float | None:
    """The safe share of a competition's runtime limit, or None when the limit is unknown."""
    return SAFE_SHARE * time_limit_s if time_limit_s else None


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.1f}s"
    h, rest = divmod(int(round(seconds)), 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


def process_age() -> float:
    """Seconds since this process started (imports and start-up count against a budget too); 0 if unknown."""
    try:
        import psutil

        return max(0.0, time.time() - psutil.Process().create_time())
    except Exception:  # pragma: no cover - psutil missing or the platform refuses
        return 0.0
