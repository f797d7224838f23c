"""The one door to Kaggle: lazy import of the official client, socket timeouts on its HTTP session, retries with
backoff for reads only, one-line errors whatever the body's shape, and the one poll loop every wait uses. Kernel-side
code never imports it (the client needs Python 3.11, credentials).

The 2.2.5 client sets no timeout on its RPCs (kagglesdk `KaggleHttpClient.call` sends with the session's settings
only) and wraps only some reads in `with_retry` (never SaveKernel, CreateSubmission, CreateCodeSubmission). So every
session the client opens gets an adapter with our timeout, and a call that changes something (`idempotent=False`)
goes out once, in the caller's thread: after a 5xx, a dropped connection or a timeout it raises `OutcomeUnknown`, and
the caller asks Kaggle what happened instead of sending it again."""

from __future__ import annotations

import contextlib
import email.utils
import io
import json
import math
import os
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

from kaggle_kit.competition.spec import rules_url
from kaggle_kit.errors import RemoteError, UsageProblem

T = TypeVar("T")
RETRIES = 4
_local = threading.local()  # the timeout of the call running in this thread, and the last answer it got
CREDENTIALS_HINT = "put kaggle.json in ~/.kaggle/ (chmod 600) or set KAGGLE_USERNAME and KAGGLE_KEY"


def default_timeout() -> float:
    """KAGGLE_KIT_TIMEOUT in seconds (default 120), read when used so a bad value is a one-line error."""
    raw = os.environ.get("KAGGLE_KIT_TIMEOUT", "120")
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not (math.isfinite(value) and value > 0):  # inf would wait forever; nan passes no comparison
        raise UsageProblem(f"KAGGLE_KIT_TIMEOUT={raw!r} is not a finite positive number of seconds", hint="e.g. 120")
    return value


OPTIONAL_TIMEOUT_S = 15.0  # a look-up the command can do without (a dry run's deadline, doctor's rules check)


def optional_timeout() -> float:
    """The wait for an optional look-up: short, since the command goes on without its answer."""
    return min(OPTIONAL_TIMEOUT_S, default_timeout())


def transfer_timeout(total_bytes: int, min_rate_bytes_s: float = 512 * 1024) -> float:
    """Uploads and downloads get time in proportion to their size (at least 10 min), not the RPC default."""
    return max(600.0, default_timeout() + total_bytes / min_rate_bytes_s)


class OutcomeUnknown(RemoteError):
    """A call that changes something failed after it may have reached Kaggle (5xx, dropped, timed out)."""

    def __init__(self, message: str, status: int | None = None, timed_out: bool = False, answered: str = ""):
        super().__init__(message, status=status)
        self.timed_out = timed_out
        self.answered = answered or (f"Kaggle answered {status}" if status else message.split(": ", 1)[-1])


def _timeout_adapter():
    """A requests adapter that gives every request without a timeout ours (the client passes none)."""
    from requests.adapters import HTTPAdapter

    class TimeoutAdapter(HTTPAdapter):
        def send(self, request, timeout=None, **kwargs):
            response = super().send(request, timeout=timeout or getattr(_local, "timeout", None) or default_timeout(),
                                    **kwargs)
            _local.last = response
            return response

    return TimeoutAdapter()


def _with_socket_timeouts(api) -> None:
    """Mount the adapter on each HTTP session the client builds (`build_kaggle_client`; the log stream uses the same
    session, kaggle_api_extended.py `kernels_logs_stream`)."""
    build = api.build_kaggle_client

    def build_with_timeouts():
        client = build()
        http = getattr(client, "_http_client", None)
        init = getattr(http, "_init_session", None)
        if init is None:
            return client

        def init_session():
            session = init()
            session = getattr(http, "_session", None) or session
            if session is not None and not getattr(session, "_kk_timeouts", False):
                adapter = _timeout_adapter()
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session._kk_timeouts = True
            return session

        http._init_session = init_session
        return client

    api.build_kaggle_client = build_with_timeouts


def credentials_problem() -> str | None:
    """What is wrong with the kaggle.json the client would read (truncated, no key ...), or None."""
    source = credentials_source()
    if source and source.endswith("kaggle.json"):
        problem = credentials_file_problem(source)
        return f"{source} {problem}" if problem else None
    return None


def get_api():
    """An authenticated KaggleApi. Importing the client prints help and may exit when credentials are missing."""
    problem = credentials_problem()
    if problem:  # what `doctor` says, not the client's "no credentials" (issue 30)
        raise RemoteError(problem, hint=CREDENTIALS_HINT)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as exc:
        raise RemoteError(f"the kaggle client is not importable ({exc})",
                          hint="pip install 'kaggle>=2.2' six (Python >= 3.11)") from None
    api = KaggleApi()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            api.authenticate()
    except SystemExit:
        raise RemoteError("no Kaggle credentials found", hint=CREDENTIALS_HINT) from None
    _with_socket_timeouts(api)
    return api


def account_username() -> str:
    """The username of the credentials the kaggle client uses (KAGGLE_USERNAME, kaggle.json, the token's owner)."""
    name = (getattr(get_api(), "config_values", None) or {}).get("username")
    if not name:
        raise RemoteError("no Kaggle username", hint="set username in kaggle-kit.toml or configure Kaggle credentials")
    return name


def credentials_source() -> str | None:
    """Where credentials would come from (never their value)."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    config_dir = os.environ.get("KAGGLE_CONFIG_DIR") or os.path.expanduser("~/.kaggle")
    path = os.path.join(config_dir, "kaggle.json")
    return path if os.path.exists(path) else None


def credentials_file_problem(path: str) -> str | None:
    """Why the client could not use a kaggle.json (never its values): unreadable, not JSON, or a key missing."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    except (ValueError, UnicodeDecodeError):
        return "is not valid JSON (truncated?)"
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) and data[k] for k in ("username", "key")):
        return "lacks a username or a key"
    return None


def _response(exc: BaseException):
    """The HTTP answer behind an error: on the exception, or on the HTTPError the client turned into a ValueError
    (`kernels_status`/`kernels_output` raise "Cannot access kernel ..." from inside `except HTTPError`)."""
    for candidate in (exc, exc.__context__, exc.__cause__):
        response = getattr(candidate, "response", None)
        if response is not None:
            return response
    return None


def _status(exc: BaseException) -> int | None:
    return getattr(_response(exc), "status_code", None)


def _retry_after(exc: BaseException, attempt: int) -> float:
    """Retry-After in seconds or as an HTTP date; anything else (or none) falls back to backoff."""
    response = _response(exc)
    header = response.headers.get("Retry-After") if response is not None else None
    backoff = min(30.0, 0.5 * 2**attempt)
    if header:
        try:
            return min(300.0, max(0.0, float(header)))
        except ValueError:
            pass
        try:
            parsed = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):  # "soon", "" ...: parsedate_to_datetime raises ValueError
            return backoff
        if parsed.tzinfo is None:
            return backoff
        return min(300.0, max(0.0, parsed.timestamp() - time.time()))
    return backoff


def _is_html(text: str) -> bool:
    return text.lstrip()[:15].lower().startswith(("<!doctype", "<html"))


def body_message(response) -> str:
    """Kaggle's message whatever the body's shape: {"message"}, {"error": {"message"}}, {"errors": [...]}, an HTML
    page, or plain text (shared/docs/kaggle-real-answers.md, Errors)."""
    text = getattr(response, "text", "") or ""
    if _is_html(text):
        return "with an HTML page"
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip().splitlines()[0][:200] if text.strip() else str(getattr(response, "reason", "") or "")
    if isinstance(data, dict):
        nested = data.get("error")
        errors = data.get("errors")
        for candidate in (data.get("message"), nested.get("message") if isinstance(nested, dict) else nested,
                          "; ".join(str(e.get("message", e) if isinstance(e, dict) else e) for e in errors)
                          if isinstance(errors, list) and errors else None):
            if candidate:
                return str(candidate)
    return str(getattr(response, "reason", "") or "")


def _server_message(exc: BaseException) -> str:
    response = _response(exc)
    if response is not None:
        return body_message(response)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "benchmark_task_slug" in text or text.startswith("Cannot access kernel"):
        return "Permission 'kernels.get' was denied"  # the client's text, without its leaderboard advice
    return text


def explain(exc: BaseException, what: str, competition: str | None = None) -> RemoteError:
    """One line naming the call, the status and Kaggle's message."""
    status = _status(exc)
    message = _server_message(exc)
    said = f" {message}" if message.startswith("with an") else f" ({message})" if message else ""
    if status == 401:
        return RemoteError(f"{what}: Kaggle rejected the credentials (401)", hint=CREDENTIALS_HINT, status=status)
    if status == 403:
        hint = (f"accept the competition rules at {rules_url(competition)}"
                if competition else "check that this account may access it")
        return RemoteError(f"{what}: permission denied (403: {message})", hint=hint, status=status)
    if status == 404:
        return RemoteError(f"{what}: not found (404{': ' + message if message else ''})",
                           hint="check the owner/slug spelling", status=status)
    if status == 429:
        return RemoteError(f"{what}: rate limited, Kaggle answered 429{said} after {RETRIES} tries",
                           hint="wait a few minutes and retry", status=status)
    if status is not None:
        return RemoteError(f"{what}: Kaggle answered {status}{said}", status=status)
    return RemoteError(f"{what}: {type(exc).__name__}: {message}")


def _not_json(exc: ValueError, what: str) -> RemoteError:
    """kagglesdk parses a JSON content type (and every 2xx) as JSON: an HTML page there is a JSONDecodeError."""
    last = getattr(_local, "last", None)
    status = getattr(last, "status_code", None)
    text = getattr(exc, "doc", None) or getattr(last, "text", "") or ""
    kind = "an HTML page" if _is_html(text) else "a body that is not JSON"
    return RemoteError(f"{what}: Kaggle answered {status or ''} with {kind}".replace("  ", " "), status=status,
                       hint="Kaggle's front end is busy or down; try again in a few minutes")


def _with_timeout(fn: Callable[[], T], timeout: float) -> T:
    """Reads also run in a daemon thread, so a server that trickles bytes cannot hang us past the timeout; a read
    left running changes nothing. Calls that change something never run here (see `call`)."""
    box: dict[str, Any] = {}

    def target():
        _local.timeout = timeout
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc
            box["last"] = getattr(_local, "last", None)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout:.0f}s")
    if "error" in box:
        _local.last = box.get("last")
        raise box["error"]
    return box["value"]


def _once(fn: Callable[[], T], timeout: float) -> T:
    """In this thread, with socket timeouts: when we report a failure nothing is left that could still send it."""
    _local.timeout = timeout
    try:
        return fn()
    finally:
        _local.timeout = None


def call(what: str, fn: Callable[[], T], timeout: float | None = None, retries: int = RETRIES,
         competition: str | None = None, sleep: Callable[[float], None] = time.sleep, idempotent: bool = True) -> T:
    """Run one remote operation with a timeout. Reads retry 429 (honouring Retry-After), 5xx and dropped connections;
    a call that is not idempotent goes out once and raises OutcomeUnknown when it may have reached Kaggle."""
    import requests

    timeout = timeout or default_timeout()
    for attempt in range(retries if idempotent else 1):
        try:
            return _with_timeout(fn, timeout) if idempotent else _once(fn, timeout)
        except (TimeoutError, requests.Timeout) as exc:
            message = f"no answer within {timeout:.0f}s" if isinstance(exc, requests.Timeout) else str(exc)
            if not idempotent:
                raise OutcomeUnknown(f"{what}: {message}", timed_out=True, answered=message) from None
            raise RemoteError(f"{what}: {message}",
                              hint="Kaggle may be slow; retry, or raise KAGGLE_KIT_TIMEOUT") from None
        except (requests.HTTPError, requests.ConnectionError) as exc:
            status = _status(exc)
            dropped = status is None and isinstance(exc, requests.ConnectionError)
            transient = dropped or status == 429 or (status or 0) >= 500
            if not idempotent and (dropped or (status or 0) >= 500):
                error = explain(exc, what, competition)
                raise OutcomeUnknown(error.message if status else f"{what}: Kaggle dropped the connection",
                                     status=status) from None
            if not transient or attempt == retries - 1 or not idempotent:
                raise explain(exc, what, competition) from None
            sleep(_retry_after(exc, attempt))
        except SystemExit:
            raise RemoteError(f"{what}: the kaggle client gave up (no credentials?)", hint=CREDENTIALS_HINT) from None
        except ValueError as exc:
            if _status(exc) is not None:  # the client's own ValueError for a 401/403
                raise explain(exc, what, competition) from None
            if isinstance(exc, json.JSONDecodeError) or type(exc).__name__ == "JSONDecodeError":
                error = _not_json(exc, what)
                if idempotent and (error.status or 0) >= 500 and attempt < retries - 1:
                    sleep(_retry_after(exc, attempt))
                    continue
                if not idempotent and (error.status or 500) >= 500:
                    raise OutcomeUnknown(error.message, status=error.status) from None
                raise error from None
            raise RemoteError(f"{what}: {exc}") from None
    raise AssertionError("unreachable")


def normalise(status: Any) -> str:
    """One spelling for every status: enums, 'KernelWorkerStatus.RUNNING' -> 'RUNNING', 'ready' -> 'READY'."""
    name = getattr(status, "name", None) or str(status or "UNKNOWN")
    return name.split(".")[-1].upper()


def poll(what: str, fetch: Callable[[], T], state_of: Callable[[T], Any], done: Collection[str], interval: float,
         timeout: float, echo: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep,
         hint: str | None = None, on_state: Callable[[str], None] | None = None) -> tuple[str, T]:
    """Fetch until the normalised state is in `done`, echoing state and elapsed time; a timeout is a RemoteError.
    `on_state` sees each state before its line (the log follower prints the kernel's new lines there)."""
    if not interval > 0 or not timeout > 0:  # time.sleep(-5) raises mid-wait; 0 would poll Kaggle in a tight loop
        raise UsageProblem(f"--interval {interval:g} and --timeout {timeout:g} must both be more than 0 seconds")
    start = time.monotonic()
    while True:
        value = fetch()
        state = normalise(state_of(value))
        if on_state:
            on_state(state)
        elapsed = time.monotonic() - start
        echo(f"{what}: {state} ({elapsed:.0f}s)")
        if state in done:
            return state, value
        if elapsed > timeout:
            raise RemoteError(f"{what} still {state} after {timeout:.0f}s", hint=hint)
        sleep(interval)
