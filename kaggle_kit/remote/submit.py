"""Submissions: validate first, respect the deadline and the daily limit, then submit a file or a kernel version once.

What Kaggle does (kaggle 2.2.5 `kaggle_api_extended.py`): CreateSubmission/CreateCodeSubmission are not retried by
the client, so after a 5xx, a dropped connection or a timeout the newest submissions are read to report what
happened; ListSubmissions answers 20 per page (`competition_submissions` L2534, which drops the page token, so the
pages are read through kagglesdk); a new submission can be missing for a moment (`_poll_submission`: a transient
404 is PENDING); ApiSubmissionLimits is all zeros for an account not on a team yet."""

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
from kaggle_kit.remote.client import RETRIES, OutcomeUnknown, call, get_api, normalise, poll
from kaggle_kit.submission import expected_ids, validate_file

WARN_WITHIN = timedelta(hours=24)
PAGE = 20
NOT_LISTED_POLLS = 3  # polls a submission just made may be missing for (then "not found" is an error)
JOIN_HINT = "join the competition (accept its rules) first"
SETTLE_DELAY_S = 2.0  # between listings while a submission that may have landed is looked for


@dataclass
class Deadline:
    deadline: datetime | None
    remaining_today: int | None
    on_team: bool = True  # False: every limit count is zero (ApiSubmissionLimits: not on a team yet)

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


def deadline_info(api, spec: CompetitionSpec, timeout: float | None = None, retries: int = RETRIES) -> Deadline:
    """The deadline and today's submissions left (two read calls; `timeout`/`retries` per call, for optional use)."""
    listing = call("competition listing", lambda: api.competitions_list(search=spec.slug), competition=spec.slug,
                   timeout=timeout, retries=retries)
    deadline = None
    for comp in getattr(listing, "competitions", None) or []:
        if str(comp.ref).rstrip("/").split("/")[-1] == spec.slug:
            deadline = comp.deadline
    if deadline is not None and deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=timezone.utc)
    limits = call("submission limits", lambda: api.competition_get_submission_limits(spec.slug), competition=spec.slug,
                  timeout=timeout, retries=retries)
    counts = [getattr(limits, k, None) for k in ("num_today", "num_total", "num_allowed_now")]
    return Deadline(deadline, getattr(limits, "num_allowed_now", None), on_team=any(counts))


def check_window(info: Deadline, now: datetime, force: bool) -> str | None:
    """Refuse after the deadline or with no submissions left today; warn (override: force) within 24 h."""
    left = info.left(now)
    if left is not None and left <= timedelta(0):
        raise KitError(f"the competition closed at {info.deadline:%Y-%m-%d %H:%M} UTC",
                       hint="no submission is possible")
    if not info.on_team:
        raise KitError("Kaggle shows 0 submissions left and none made: this account is "
                       "not on a team in the competition", hint=JOIN_HINT)
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
    before = _newest_refs(api, spec)
    try:
        response = call("submit", lambda: api.competition_submit(str(path), message, spec.slug, quiet=True),
                        competition=spec.slug, idempotent=False)
    except OutcomeUnknown as exc:
        return _settle(api, spec, before, message, exc, warning)
    return _result(api, spec, response.ref, warning)


def submit_kernel(kernel: str, version: int | None, message: str, spec: CompetitionSpec, now: datetime,
                  force: bool = False, dry_run: bool = False) -> dict:
    check_ref(kernel, "kernel")
    version = version if version is not None else last_completed_version(kernel)
    if dry_run:
        return {"dry_run": True, "kernel": kernel, "version": version, "file": spec.submission_file}
    api = get_api()
    warning = check_window(deadline_info(api, spec), now, force)
    before = _newest_refs(api, spec)
    try:
        response = call("submit kernel", lambda: api.competition_submit_code(
            spec.submission_file, message, spec.slug, kernel, version, quiet=True), competition=spec.slug,
            idempotent=False)
    except OutcomeUnknown as exc:
        return {**_settle(api, spec, before, message, exc, warning), "kernel": kernel, "version": version}
    return {**_result(api, spec, response.ref, warning), "kernel": kernel, "version": version}


def last_completed_version(kernel: str) -> int:
    """The newest version push-kernel recorded as COMPLETE; refuse rather than let Kaggle pick one."""
    version = state.last_completed(kernel)
    if version is None:
        raise KitError(f"no completed version of {kernel} is recorded in {state.STATE_FILE}",
                       hint=f"wait for it (kaggle-kit status {kernel} --wait) or pass --version N")
    return version


def _result(api, spec, ref, warning, outcome: str | None = None) -> dict:
    limits = call("submission limits", lambda: api.competition_get_submission_limits(spec.slug), competition=spec.slug)
    return {"ref": ref, "remaining_today": limits.num_allowed_now, "warning": warning, "outcome": outcome}


def _page(api, spec: CompetitionSpec, token: str, timeout: float | None = None):
    """One page of ListSubmissions with its next page token (the client's `competition_submissions` drops it)."""
    from kagglesdk.competitions.types.competition_api_service import ApiListSubmissionsRequest

    def get():
        with api.build_kaggle_client() as kaggle:
            request = ApiListSubmissionsRequest()
            request.competition_name, request.page_size = spec.slug, PAGE
            if token:
                request.page_token = token
            else:
                request.page = 1
            return kaggle.competitions.competition_api_client.list_submissions(request)

    return call("list submissions", get, competition=spec.slug, timeout=timeout)


def _newest_refs(api, spec: CompetitionSpec) -> set[int] | None:
    """The refs on the first page (newest first) before a submit; None when Kaggle could not be asked."""
    try:
        return {s.ref for s in (_page(api, spec, "").submissions or [])}
    except RemoteError:
        return None


def _settle(api, spec, before: set[int] | None, message: str, exc: OutcomeUnknown, warning) -> dict:
    """The submission may have reached Kaggle: read the newest ones (a new one can be missing for a moment)."""
    answered = exc.answered
    for attempt in range(NOT_LISTED_POLLS):
        try:
            newest = _page(api, spec, "").submissions or []
        except RemoteError:
            break
        new = [s for s in newest if before is not None and s.ref not in before and s.description == message]
        if new:
            outcome = f"submitted as ref {new[0].ref} ({answered} after accepting it)"
            return _result(api, spec, new[0].ref, warning, outcome)
        if attempt < NOT_LISTED_POLLS - 1:
            time.sleep(SETTLE_DELAY_S)
    if before is not None and not exc.timed_out:
        raise RemoteError(f"submit: not submitted ({answered}; no new submission is listed)",
                          hint="check `kaggle-kit submissions` and submit again", status=exc.status)
    raise RemoteError(f"submit: unknown whether it was submitted ({answered})",
                      hint="see `kaggle-kit submissions` before submitting again", status=exc.status)


def _row(s) -> dict:
    return {"ref": s.ref, "date": str(s.date), "description": s.description, "status": normalise(s.status),
            "public_score": s.public_score, "file": s.file_name, "error": s.error_description or None}


def list_submissions(spec: CompetitionSpec, limit: int | None = None, timeout: float | None = None) -> list[dict]:
    """Every submission, newest first, page after page of 20 (at most `limit`)."""
    api = get_api()
    rows: list[dict] = []
    token = ""
    while True:
        response = _page(api, spec, token, timeout)
        rows += [_row(s) for s in response.submissions or []]
        token = response.next_page_token or ""
        if not token or (limit is not None and len(rows) >= limit):
            return rows[:limit] if limit is not None else rows


def get_submission(spec: CompetitionSpec, ref: int) -> dict | None:
    """One submission by ref (`get_submission`, retried by the client itself); None while Kaggle answers 404."""
    api = get_api()
    try:
        return _row(call(f"submission {ref}", lambda: api.get_submission(ref), competition=spec.slug))
    except RemoteError as exc:
        if exc.status == 404:
            return None
        raise


def find_submission(spec: CompetitionSpec, ref: int) -> dict:
    sub = get_submission(spec, ref)
    if sub is None:
        raise RemoteError(f"submission {ref} not found", status=404)
    return sub


def wait_for_score(spec: CompetitionSpec, ref: int, interval: float = 10, timeout: float = 3600, echo=print,
                   sleep=time.sleep) -> dict:
    """Poll until scored; a 404 in the first polls is a submission not listed yet (PENDING); a submission that ends
    in ERROR is a RemoteError carrying Kaggle's description."""
    polls = {"n": 0}

    def fetch() -> dict:
        polls["n"] += 1
        sub = get_submission(spec, ref)
        if sub is None:
            if polls["n"] > NOT_LISTED_POLLS:
                raise RemoteError(f"submission {ref} not found", hint="check the ref with `kaggle-kit submissions`",
                                  status=404)
            return {"ref": ref, "status": "PENDING", "error": None, "public_score": ""}
        return sub

    status, sub = poll(f"submission {ref}", fetch, lambda s: s["status"], ("COMPLETE", "ERROR"), interval, timeout,
                       echo, sleep)
    if status == "ERROR":
        raise RemoteError(f"submission {ref} failed: {sub['error'] or 'Kaggle gave no error description'}")
    return sub
