"""A running kernel's log while we wait, where the installed kaggle client can stream it (`kernels_logs_stream`,
kaggle >= 2.2.3), for the version being waited on (`owner/slug/N`: the client sends it as `versionLabel`).

While the session runs the endpoint is server-sent events, which the load balancer drops every few minutes (the
client's comment): a pass that ends while the kernel still runs is started again at the next status poll. Each pass
replays the log from its start (as the server does on every connection; `kernels_logs_cli` dedups the same way), so
lines already shown are skipped by count. Once the run has finished the endpoint answers the stored log as a JSON
array (`_iter_blob_lines`): that last pass ends the follower. A client without the method, or a stream that keeps
failing (not merely idle past our socket timeout), leaves the state lines alone."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from kaggle_kit.remote import state
from kaggle_kit.remote.client import get_api

FINISHED = ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED")
MAX_FAILURES = 3
FINAL_PASS_S = 30.0


class LogFollower:
    def __init__(self, kernel: str, echo: Callable[[str], None], prefix: str = "| "):
        self.kernel, self.echo, self.prefix = kernel, echo, prefix
        self.api = get_api()
        self.enabled = hasattr(self.api, "kernels_logs_stream")
        self.seen = 0
        self.failures = 0
        self.lines: queue.Queue[str] = queue.Queue()
        self.thread: threading.Thread | None = None

    def _pass(self) -> None:
        try:
            for index, event in enumerate(self.api.kernels_logs_stream(self.kernel)):
                if index < self.seen:
                    continue
                self.seen = index + 1
                data = event.get("data") if isinstance(event, dict) else None
                if data is not None:
                    for line in str(data).rstrip("\n").split("\n"):
                        self.lines.put(line)
            self.failures = 0
        except Exception as exc:  # noqa: BLE001 - any failure only ends log display, never the wait
            if type(exc).__name__ in ("ReadTimeout", "ChunkedEncodingError"):  # idle or cut: reconnect next poll
                return
            self.failures += 1
            if self.failures >= MAX_FAILURES:
                self.enabled = False
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self.lines.put(f"(log stream unavailable: {reason[:120]}; showing states only)")

    def _start(self) -> None:
        if self.enabled and (self.thread is None or not self.thread.is_alive()):
            self.thread = threading.Thread(target=self._pass, daemon=True)
            self.thread.start()

    def _drain(self) -> None:
        while not self.lines.empty():
            self.echo(self.prefix + self.lines.get())

    def tick(self, state: str) -> None:
        """Called after each status poll: (re)attach while it runs; one last pass once it has ended."""
        if state == "RUNNING":
            self._start()
        elif state in FINISHED and self.enabled:
            if self.thread is not None:
                self.thread.join(FINAL_PASS_S)  # a live stream ends with the session
            self._start()
            if self.thread is not None:
                self.thread.join(FINAL_PASS_S)
            self.enabled = False
        self._drain()


class LogFollowers:
    """One follower per kernel, for waits over several kernels (`push-kernel --folds K --wait`)."""

    def __init__(self, echo: Callable[[str], None]):
        self.echo = echo
        self.followers: dict[str, LogFollower] = {}

    def poll(self, run) -> None:
        """Follow the version this fold pushed (owner/slug/N), a new follower for each new version."""
        ref = state.join_ref(run.kernel, run.version)
        if ref not in self.followers:
            self.followers[ref] = LogFollower(ref, self.echo, prefix=f"| fold {run.fold}: ")
        self.followers[ref].tick(run.state)
