"""Submissions: validate first, respect the deadline and the daily limit, then submit a file or a kernel version."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.config import check_ref
from kaggle_kit.errors import KitError, RemoteError
from kaggle_kit.remote import state
from kaggle_kit.remote.client import call, get_api, normalise, poll
from kaggle_kit.submission import expected_ids, validate_file

WARN_WITHIN = timedelta(hours=24)


@dataclass
class Deadline:
    deadline: datetime | None
    remaining_today: int | None

    def left(self, now: datetime) -> timedelta | None:
        return None if self.deadline is None else self.deadline - now

    def describe(self, now: datetime) -> str:
        """'2026-12-31 23:59 UTC (36d 11h 59m left)': minutes are the finest grain anyone acts on."""
        left = self.left(now)
        if left is None:
            return "no deadline listed"
        if left <= timedelta(0):
            return f"{self.deadline:%Y-%m-%d %H:%M} UTC (closed)"
        minutes = int(left.total_seconds() // 60)
        return f"{self.deadline:%Y-%m-%d %H:%M} UTC ({minutes // 1440}d {minutes // 60 % 24}h {minutes % 60}m left)"


def deadline_info(api, spec: CompetitionSpec) -> Deadline:
    listing = call("competition listing", lambda: api.competitions_list(search=spec.slug), competition=spec.slug)
    deadline = None
    for comp in getattr(listing, "competitions", None) or []:
        if str(comp.ref).rstrip("/").split("/")[-1] == spec.slug:
            deadline = comp.deadline
    if deadline is not None and deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=timezone.utc)
    limits = call("submission limits", lambda: api.competition_get_submission_limits(spec.slug), competition=spec.slug)
    return Deadline(deadline, getattr(limits, "num_allowed_now", None))


def check_window(info: Deadline, now: datetime, force: bool) -> str | None:
    """Refuse after the deadline or with no submissions left today; warn (override: force) within 24 h."""
    left = info.left(now)
    if left is not None and left <= timedelta(0):
        raise KitError(f"the competition closed at {info.deadline:%Y-%m-%d %H:%M} UTC",
                       hint="no submission is possible")
    if info.remaining_today is not None and info.remaining_today <= 0:
        raise KitError("no submissions left today", hint="the daily limit resets at 00:00 UTC")
    if left is not None and left < WARN_WITHIN:
        warning = f"the deadline is in {left.total_seconds() / 3600:.1f} h ({info.deadline:%Y-%m-%d %H:%M} UTC)"
        if not force:
            raise KitError(warning, hint="pass --force to submit anyway")
        return warning
    return None


def fetch_sample_submission(spec: CompetitionSpec, folder: Path) -> Path:
    """The competition's own sample_submission.csv, fetched through the API into `folder`."""
    api = get_api()
    name = spec.sample_submission_file
    call(f"download {name}", lambda: api.competition_download_file(
        spec.slug, name, path=str(folder), quiet=True), competition=spec.slug)
    found = sorted(folder.rglob(name))
    if not found:
        raise RemoteError("Kaggle sent no sample_submission.csv", hint="pass --sample-submission PATH")
    return found[0]


def submit_file(path: Path, message: str, spec: CompetitionSpec, sample_submission: Path | None, now: datetime,
                force: bool = False, dry_run: bool = False) -> dict:
    """Validate against the given sample_submission, else the local data folder's, else Kaggle's; then submit."""
    if sample_submission is None or not sample_submission.exists():
        reference = f"{spec.slug}'s sample_submission.csv from Kaggle"
        with tempfile.TemporaryDirectory(prefix="kk-sample-") as tmp:
            ids = expected_ids(spec, sample_submission=fetch_sample_submission(spec, Path(tmp)))
    else:
        reference = str(sample_submission)
        ids = expected_ids(spec, sample_submission=sample_submission)
    report = validate_file(path, ids, spec)
    if not report.ok:
        raise KitError(f"refusing to submit an invalid file (checked against {reference}):\n{report.summary()}")
    if dry_run:
        return {"dry_run": True, "file": str(path), "rows": report.rows, "reference": reference}
    api = get_api()
    warning = check_window(deadline_info(api, spec), now, force)
    response = call("submit", lambda: api.competition_submit(str(path), message, spec.slug, quiet=True),
                    competition=spec.slug)
    return _result(api, spec, response, warning)


def submit_kernel(kernel: str, version: int | None, message: str, spec: CompetitionSpec, now: datetime,
                  force: bool = False, dry_run: bool = False) -> dict:
    check_ref(kernel, "kernel")
    version = version if version is not None else last_completed_version(kernel)
    if dry_run:
        return {"dry_run": True, "kernel": kernel, "version": version, "file": spec.submission_file}
    api = get_api()
    warning = check_window(deadline_info(api, spec), now, force)
    response = call("submit kernel", lambda: api.competition_submit_code(
        spec.submission_file, message, spec.slug, kernel, version, quiet=True), competition=spec.slug)
    return _result(api, spec, response, warning)


def last_completed_version(kernel: str) -> int:
    """The newest version push-kernel recorded as COMPLETE; refuse rather than let Kaggle pick one."""
    version = state.last_completed(kernel)
    if version is None:
        raise KitError(f"no completed version of {kernel} is recorded in {state.STATE_FILE}",
                       hint=f"wait for it (kaggle-kit status {kernel} --wait) or pass --version N")
    return version


def _result(api, spec, response, warning) -> dict:
    limits = call("submission limits", lambda: api.competition_get_submission_limits(spec.slug), competition=spec.slug)
    return {"ref": response.ref, "message": response.message, "remaining_today": limits.num_allowed_now,
            "warning": warning}


def list_submissions(spec: CompetitionSpec) -> list[dict]:
    api = get_api()
    subs = call("list submissions", lambda: api.competition_submissions(spec.slug), competition=spec.slug) or []
    return [{"ref": s.ref, "date": str(s.date), "description": s.description, "status": normalise(s.status),
             "public_score": s.public_score, "file": s.file_name, "error": s.error_description or None} for s in subs]


def find_submission(spec: CompetitionSpec, ref: int) -> dict:
    match = [s for s in list_submissions(spec) if str(s["ref"]) == str(ref)]
    if not match:
        raise RemoteError(f"submission {ref} not found")
    return match[0]


def wait_for_score(spec: CompetitionSpec, ref: int, interval: float = 10, timeout: float = 3600, echo=print,
                   sleep=time.sleep) -> dict:
    """Poll until scored; a submission that ends in ERROR is a RemoteError carrying Kaggle's description."""
    status, sub = poll(f"submission {ref}", lambda: find_submission(spec, ref), lambda s: s["status"],
                       ("COMPLETE", "ERROR"), interval, timeout, echo, sleep)
    if status == "ERROR":
        raise RemoteError(f"submission {ref} failed: {sub['error'] or 'Kaggle gave no error description'}")
    return sub
