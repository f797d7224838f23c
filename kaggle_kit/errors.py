"""User-facing errors: one line, a hint, a named exit status. Kernel-side code raises these too."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    FAILED = 1  # validation failure, remote error, bad data
    USAGE = 2  # bad flags or arguments (click's own convention)


class KitError(Exception):
    """An expected failure the user can act on; the CLI prints it as one line, without a traceback."""

    exit_code: int = ExitStatus.FAILED

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def format_line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def __str__(self) -> str:
        return self.format_line()


class DataError(KitError):
    """A competition file that cannot be read or does not follow the schema."""


class RemoteError(KitError):
    """Kaggle refused or failed a request; `status` is the HTTP status when Kaggle answered with one."""

    def __init__(self, message: str, hint: str | None = None, status: int | None = None):
        super().__init__(message, hint)
        self.status = status


class UsageProblem(KitError):
    """Arguments that cannot work together; exits 2 like click's usage errors."""

    exit_code = ExitStatus.USAGE


def failure_line(text: str) -> str:
    """One clean line saying what failed, from a log or message that may end in a Python traceback: the exception
    line with its module path dropped ("kaggle_kit.errors.DataError: x" -> "DataError: x"), else the last line."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "no message"
    starts = [k for k, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if starts:
        tail = [line for line in lines[starts[-1] + 1:] if not line[0].isspace()]
        if tail:
            head, sep, message = tail[-1].partition(": ")
            name = head.rsplit(".", 1)[-1] if " " not in head else head
            return f"{name}{sep}{message}".strip()
    return lines[-1].strip()
