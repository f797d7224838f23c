"""The one door to Kaggle: lazy import of the official client, our own timeouts, retries with backoff, one-line errors,
and the one poll loop every wait uses. Kernel-side code never imports it (the client needs Python 3.11, credentials)."""

from __future__ import annotations

import contextlib
import email.utils
import io
import json
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
CREDENTIALS_HINT = "put kaggle.json in ~/.kaggle/ (chmod 600) or set KAGGLE_USERNAME and KAGGLE_KEY"


def default_timeout() -> float:
    """KAGGLE_KIT_TIMEOUT in seconds (default 120), read when used so a bad value is a one-line error."""
    raw = os.environ.get("KAGGLE_KIT_TIMEOUT", "120")
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise UsageProblem(f"KAGGLE_KIT_TIMEOUT={raw!r} is not a positive number of seconds", hint="e.g. 120")
    return value


def transfer_timeout(total_bytes: int, min_rate_bytes_s: float = 512 * 1024) -> float:
    """Uploads and downloads get time in proportion to their size (at least 10 min), not the RPC default."""
    return max(600.0, default_timeout() + total_bytes / min_rate_bytes_s)


def get_api():
    """An authenticated KaggleApi. Importing the client prints help and may exit when credentials are missing."""
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


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _retry_after(exc: BaseException, attempt: int) -> float:
    response = getattr(exc, "response", None)
    header = response.headers.get("Retry-After") if response is not None else None
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(header)
            return max(0.0, parsed.timestamp() - time.time())
    return min(30.0, 0.5 * 2**attempt)


def _server_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            return str(response.json().get("message") or response.reason)
        except ValueError:
            return str(response.reason or "")
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def explain(exc: BaseException, what: str, competition: str | None = None) -> RemoteError:
    status = _status(exc)
    message = _server_message(exc)
    if status == 401:
        return RemoteError(f"{what}: Kaggle rejected the credentials (401)", hint=CREDENTIALS_HINT, status=status)
    if status == 403:
        hint = (f"accept the competition rules at {rules_url(competition)}"
                if competition else "check that this account may access it")
        return RemoteError(f"{what}: permission denied (403: {message})", hint=hint, status=status)
    if status == 404:
        return RemoteError(f"{what}: not found (404)", hint="check the owner/slug spelling", status=status)
    if status == 429:
        return RemoteError(f"{what}: rate limited by Kaggle (429) after {RETRIES} tries",
                           hint="wait a few minutes and retry", status=status)
    if status is not None:
        return RemoteError(f"{what}: Kaggle answered {status} ({message})", status=status)
    return RemoteError(f"{what}: {type(exc).__name__}: {message}")


def _with_timeout(fn: Callable[[], T], timeout: float) -> T:
    """The client sets no timeout on its RPCs: run in a daemon thread so a hung server cannot hang us (or exit)."""
    box: dict[str, Any] = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout:.0f}s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def call(what: str, fn: Callable[[], T], timeout: float | None = None, retries: int = RETRIES,
         competition: str | None = None, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run one remote operation with a timeout; retry 429 (honouring Retry-After), 5xx and connection errors."""
    import requests

    timeout = timeout or default_timeout()
    for attempt in range(retries):
        try:
            return _with_timeout(fn, timeout)
        except TimeoutError as exc:
            raise RemoteError(f"{what}: {exc}", hint="Kaggle may be slow; retry, or raise KAGGLE_KIT_TIMEOUT") from None
        except (requests.HTTPError, requests.ConnectionError) as exc:
            status = _status(exc)
            dropped = status is None and isinstance(exc, requests.ConnectionError)
            transient = dropped or status == 429 or (status or 0) >= 500
            if not transient or attempt == retries - 1:
                raise explain(exc, what, competition) from None
            sleep(_retry_after(exc, attempt))
        except SystemExit:
            raise RemoteError(f"{what}: the kaggle client gave up (no credentials?)", hint=CREDENTIALS_HINT) from None
        except ValueError as exc:
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
