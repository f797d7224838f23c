"""`push-kernel train --folds K`: one train kernel per fold, never more GPU sessions at once than the account may run.

Kaggle refuses a GPU push beyond the account's cap (2 batch sessions). This keeps at most [kernel] max_gpu_sessions
of our fold kernels running, waits for a slot between pushes, pushes a refused fold again once a slot frees (sessions
started elsewhere count against the cap too), records each version, and skips folds a previous run saw COMPLETE."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from kaggle_kit.config import ProjectConfig
from kaggle_kit.errors import KitError, RemoteError, UsageProblem
from kaggle_kit.kernel.build import build_kernel, fold_config
from kaggle_kit.remote import state
from kaggle_kit.remote.kernels import (
    FINISHED,
    NEW_KERNEL,
    SessionCapReached,
    is_active,
    kernel_status,
    push_kernel,
)

BUILD_ROOT = Path("kernels/build")


@dataclass
class FoldRun:
    fold: int
    kernel: str
    version: int | None = None
    state: str = "PENDING"  # PENDING, PUSHED, QUEUED, RUNNING, COMPLETE, ERROR, ... as Kaggle says

    @property
    def active(self) -> bool:
        return self.state not in (*FINISHED, "PENDING")  # PUSHED, QUEUED, RUNNING, NEW_SCRIPT, unknown states


def fold_configs(cfg: ProjectConfig, folds: int) -> list[ProjectConfig]:
    """Exactly what `--fold i/K` builds, for i = 0..K-1."""
    if folds < 2:
        raise UsageProblem("--folds needs at least 2 folds")
    return [fold_config(cfg, f"{i}/{folds}") for i in range(folds)]


def plan_dry_run(cfg: ProjectConfig, folds: int) -> dict:
    """Build every fold kernel into a temp folder (removed) and send nothing."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="kk-dry-run-") as tmp:
        for i, fold_cfg in enumerate(fold_configs(cfg, folds)):
            build = build_kernel("train", fold_cfg, Path(tmp) / str(i))
            runs.append({"fold": i, "id": build.metadata["id"],
                         "would_build": str(BUILD_ROOT / fold_cfg.kernel.train_slug),
                         "script_bytes": build.script.stat().st_size})
    return {"dry_run": True, "folds": runs, "max_gpu_sessions": cfg.kernel.max_gpu_sessions}


def _refresh(run: FoldRun) -> None:
    """The state of the version this run pushed (owner/slug/N), never the kernel's newest unpinned answer."""
    ref = state.join_ref(run.kernel, run.version)
    try:
        run.state = kernel_status(ref)[0]
    except RemoteError as exc:
        if exc.status != 404:  # a kernel just pushed may not be visible yet
            raise


def _initial_state(run: FoldRun, fold: str, force: bool) -> None:
    """The version last pushed from here of this fold of this split (i/K): COMPLETE is skipped, still running
    occupies a slot. Else (never pushed, pushed for another K, ERROR, or --force): pending. A kernel Kaggle does
    not know (403/404) is new."""
    last = state.pushed_versions(run.kernel)
    if force or not last or last[-1].get("fold", fold) != fold:
        return
    version = last[-1].get("version")
    try:
        status, _ = kernel_status(f"{run.kernel}/{version}")
    except RemoteError as exc:
        if exc.status in NEW_KERNEL:
            return
        raise
    if status == "COMPLETE" or is_active(status):
        run.state, run.version = status, version


def fan_out(cfg: ProjectConfig, folds: int, interval: float = 60, wait: bool = False, force: bool = False,
            echo: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep,
            timeout: float = 7 * 24 * 3600, on_poll: Callable[[FoldRun], None] | None = None) -> list[FoldRun]:
    """Push every fold kernel within the session cap; with `wait`, return only when all of them have ended."""
    if not interval > 0:
        raise UsageProblem(f"--interval must be > 0 seconds, got {interval}")
    configs = fold_configs(cfg, folds)
    cap = cfg.kernel.max_gpu_sessions if cfg.kernel.enable_gpu else len(configs)
    runs = [FoldRun(i, f"{c.username}/{c.kernel.train_slug}") for i, c in enumerate(configs)]
    for run in runs:
        _initial_state(run, f"{run.fold}/{folds}", force)
        if run.state != "PENDING":
            echo(f"fold {run.fold}: {run.kernel} already {run.state}"
                 + (" (skipped)" if run.state == "COMPLETE" else " (counted as running)"))
    to_push = sum(r.state == "PENDING" for r in runs)
    if cfg.kernel.enable_gpu and to_push:
        from kaggle_kit.remote.quota import check_fold_budget, seconds_per_fold

        seconds, where = seconds_per_fold(cfg)
        needed, quota = check_fold_budget(seconds, to_push, force, where)
        echo(f"{to_push} fold kernel(s) may spend {needed:.1f} GPU h; {quota.left_h:.1f} h left this week")
    start = time.monotonic()
    while True:
        for run in runs:
            if run.active:
                _refresh(run)
                if on_poll:
                    on_poll(run)
        pending = [r for r in runs if r.state == "PENDING"]
        running = sum(r.active for r in runs)
        for run in pending:
            if running >= cap:
                break
            try:
                build = build_kernel("train", configs[run.fold], BUILD_ROOT / configs[run.fold].kernel.train_slug,
                                     overwrite=True)
                result = push_kernel(build, cfg.kernel.timeout_s, fold=f"{run.fold}/{folds}")
            except SessionCapReached as exc:
                echo(f"fold {run.fold}: {exc.message}; pushing again when a session ends")
                break
            run.version, run.state = result["version"], "PUSHED"
            running += 1
            echo(f"fold {run.fold}: pushed {run.kernel} version {run.version}"
                 + (f": {result['warning']}" if result.get("warning") else ""))
        waiting = [r for r in runs if r.state == "PENDING"]
        if not waiting and not (wait and any(r.active for r in runs)):
            return runs
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            raise RemoteError(f"fold kernels still not done after {elapsed:.0f}s",
                              hint="run the same command again later: folds already COMPLETE are skipped")
        if waiting:
            echo(f"waiting for a GPU slot: {running} of {cap} running, fold(s) "
                 f"{', '.join(str(r.fold) for r in waiting)} to push ({elapsed:.0f}s)")
        sleep(interval)


def next_commands(runs: list[FoldRun], to: str = "outputs", out: str = "cv") -> list[str]:
    pulls = [f"kaggle-kit pull {r.kernel} --to {to}" for r in runs]
    gathers = " ".join(f"--gather {to}/{r.kernel.split('/')[-1]}" for r in runs)
    return [*pulls, f"kaggle-kit cv {gathers} --out {out}"]


def table(runs: list[FoldRun]) -> str:
    width = max(len(r.kernel) for r in runs)
    lines = [f"{'fold':<5} {'kernel':<{width}} {'version':<8} state"]
    lines += [f"{r.fold:<5} {r.kernel:<{width}} {str(r.version or '-'):<8} {r.state}" for r in runs]
    return "\n".join(lines)


def report(runs: list[FoldRun]) -> dict:
    return {"folds": [asdict(r) for r in runs], "next": next_commands(runs)}


def failed(runs: list[FoldRun]) -> list[FoldRun]:
    return [r for r in runs if r.state in FINISHED and r.state != "COMPLETE"]


def check_finished(runs: list[FoldRun]) -> None:
    bad = failed(runs)
    if bad:
        raise KitError(f"fold(s) {', '.join(str(r.fold) for r in bad)} ended "
                       f"{', '.join(sorted({r.state for r in bad}))}",
                       hint="read their logs (kaggle-kit pull OWNER/SLUG), then run the same command again: "
                            "COMPLETE folds are skipped")
