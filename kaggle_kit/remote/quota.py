"""The account's weekly GPU quota (`KaggleApi.quota_view`, GetAcceleratorQuotaStatistics, kaggle-cli PR #1029) and
the GPU hours a fold fan-out is about to spend, refused in one line when the quota left cannot cover them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from kaggle_kit.errors import KitError, RemoteError
from kaggle_kit.remote.client import call, get_api

SESSION_LIMIT_S = 12 * 3600  # a GPU batch session's longest run when [kernel] timeout_s is 0 (Kaggle's default)


@dataclass
class GpuQuota:
    used_h: float
    reserved_h: float
    total_h: float
    refresh: str | None

    @property
    def left_h(self) -> float:
        return max(0.0, self.total_h - self.used_h - self.reserved_h)

    def as_dict(self) -> dict:
        return {"gpu_hours_used": round(self.used_h, 2), "gpu_hours_reserved": round(self.reserved_h, 2),
                "gpu_hours_total": round(self.total_h, 2), "gpu_hours_left": round(self.left_h, 2),
                "refresh": self.refresh}

    def describe(self) -> str:
        reserved = f", {self.reserved_h:.1f} h reserved by running sessions" if self.reserved_h else ""
        refresh = f"; resets {self.refresh}" if self.refresh else ""
        return (f"GPU: {self.used_h:.1f} h used of {self.total_h:.1f} h this week{reserved}; "
                f"{self.left_h:.1f} h left{refresh}")


def _hours(delta) -> float:
    return delta.total_seconds() / 3600 if isinstance(delta, timedelta) else 0.0


def gpu_quota() -> GpuQuota:
    api = get_api()
    response = call("quota", api.quota_view)
    gpu = getattr(response, "gpu_quota", None)
    if gpu is None:
        raise RemoteError("quota: Kaggle sent no GPU quota")
    refresh = getattr(response, "quota_refresh_time", None)
    return GpuQuota(_hours(gpu.time_used), _hours(gpu.time_reserved), _hours(gpu.total_time_allowed),
                    f"{refresh:%Y-%m-%d %H:%M} UTC" if refresh else None)


def fold_hours(seconds_per_fold: float, folds: int) -> float:
    """GPU hours K fold kernels may spend: each may run to its time limit. A session's hours are counted once (whether
    Kaggle counts a T4 x2 session twice is not known)."""
    return folds * seconds_per_fold / 3600


def check_fold_budget(seconds_per_fold: float, folds: int, force: bool, where: str) -> tuple[float, GpuQuota]:
    """Refuse (one line) when the quota left cannot cover the folds' estimate, unless `force`."""
    quota = gpu_quota()
    needed = fold_hours(seconds_per_fold, folds)
    if needed > quota.left_h and not force:
        raise KitError(f"{folds} fold kernels may spend {needed:.1f} GPU h ({seconds_per_fold / 3600:.1f} h each, "
                       f"from {where}) but {quota.left_h:.1f} h are left this week",
                       hint="lower [train] time_budget or --folds, wait for the weekly reset, or pass --force")
    return needed, quota


def seconds_per_fold(cfg) -> tuple[float, str]:
    """How long one fold kernel may run: [train] time_budget, else [kernel] timeout_s, else the session limit."""
    from kaggle_kit.config.durations import parse_duration

    if cfg.train.time_budget:
        return parse_duration(cfg.train.time_budget), "[train] time_budget"
    if cfg.kernel.timeout_s:
        return float(cfg.kernel.timeout_s), "[kernel] timeout_s"
    return float(SESSION_LIMIT_S), "Kaggle's 12 h session limit"
