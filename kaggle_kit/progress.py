"""Progress for people: a tqdm bar on a terminal, plain periodic lines in logs (CI, Kaggle kernel logs), where
tqdm's carriage-return redraws turn into kilobytes of noise."""

from __future__ import annotations

import os
import sys
import time

LINE_EVERY_S = float(os.environ.get("KAGGLE_KIT_PROGRESS_EVERY", "30"))


def on_terminal() -> bool:
    return sys.stderr.isatty()


class PlainProgress:
    """tqdm's update/close/context protocol, printing one line at most every LINE_EVERY_S seconds (and at the end)."""

    def __init__(self, total: int, desc: str, unit: str, every_s: float = LINE_EVERY_S):
        self.total, self.desc, self.unit, self.every_s = total, desc, unit, every_s
        self.n = 0
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self._line(now)

    def _line(self, now: float) -> None:
        elapsed = now - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}s{share}, {elapsed:.0f}s elapsed, "
              f"{rate:.1f} {self.unit}/s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.n and time.monotonic() - self.start >= self.every_s:
            self._line(time.monotonic())

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def progress_bar(total: int, desc: str, unit: str = "row", enabled: bool = True, leave: bool = True,
                 position: int | None = None):
    """A tqdm bar on a terminal, PlainProgress elsewhere, nothing when disabled. `position`: the line of this bar
    (torchrun ranks sharing one terminal each draw on their own line)."""
    if not enabled:
        return _Silent()
    if on_terminal():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, leave=leave, position=position)
    return PlainProgress(total, desc, unit)
