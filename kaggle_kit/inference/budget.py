"""Time budgets for inference: a deadline that counts from process start, measured throughput and a scheduler.

Pure Python (no torch): the scheduling decisions are tested with an injected clock and throughput."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kaggle_kit.config.durations import process_age

# What a row gains from each kind of optional work, relative to the swap pass (a heuristic: on LMSYS swap TTA
# bought about 0.007 log loss, a second model of a blend several times that).
VALUE_PER_ROW = {"swap": 1.0, "model": 2.0}


class Budget:
    """A deadline on a monotonic clock; `clock` is injectable so scheduling is tested without real time."""

    def __init__(self, seconds: float, spent: float = 0.0, clock: Callable[[], float] = time.monotonic):
        self.seconds = float(seconds)
        self.clock = clock
        self.start = clock() - spent

    @classmethod
    def from_process_start(cls, seconds: float) -> Budget:
        return cls(seconds, spent=process_age())

    def elapsed(self) -> float:
        return self.clock() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def margin(self, write_s: float = 0.0) -> float:
        """Kept free for the final write: 2% of the budget (at least 1 s) plus twice the last write's time."""
        return max(1.0, 0.02 * self.seconds) + 2.0 * write_s


WARMUP_STEPS = 1  # a model's first forward step(s) pay for kernel compilation, allocator growth and caches


class Throughput:
    """Seconds per padded token over the forward steps after the warm-up (longest rows first: a cautious rate).

    The warm-up steps are kept apart: they are the rate only until a steady step has been measured."""

    def __init__(self, prior_s_per_token: float | None = None, warmup_steps: int = WARMUP_STEPS):
        self.tokens = 0
        self.seconds = 0.0
        self.steps = 0
        self.warmup_steps = warmup_steps
        self.warmup_tokens = 0
        self.warmup_seconds = 0.0
        self.prior = prior_s_per_token

    def record(self, tokens: int, seconds: float) -> None:
        self.steps += 1
        if self.steps <= self.warmup_steps:
            self.warmup_tokens += tokens
            self.warmup_seconds += seconds
        else:
            self.tokens += tokens
            self.seconds += seconds

    @property
    def known(self) -> bool:
        return self.tokens > 0 or self.warmup_tokens > 0 or self.prior is not None

    @property
    def steady(self) -> bool:
        """Measured after the warm-up (decisions that cut rows wait for this)."""
        return self.tokens > 0

    @property
    def spent(self) -> float:
        return self.seconds + self.warmup_seconds

    @property
    def s_per_token(self) -> float:
        if self.tokens:
            return self.seconds / self.tokens
        if self.warmup_tokens:
            return self.warmup_seconds / self.warmup_tokens
        if self.prior is None:
            raise ValueError("no throughput measured yet")
        return self.prior

    @property
    def tokens_per_s(self) -> float:
        return 1.0 / self.s_per_token if self.s_per_token > 0 else float("inf")

    def seconds_for(self, tokens: int) -> float:
        return tokens * self.s_per_token


def padded_tokens(batch: list[int], lengths: list[int]) -> int:
    return len(batch) * max(lengths[i] for i in batch)


def suffix_tokens(batches: list[list[int]], lengths: list[int], cost=padded_tokens) -> list[int]:
    """Entry i: computed tokens of batches[i:] (and a last entry, 0), so a loop over batches never re-sums the rest.
    `cost(batch, lengths)`: the tokens one batch computes (default: padded to its longest row)."""
    out = [0] * (len(batches) + 1)
    for i in range(len(batches) - 1, -1, -1):
        out[i] = out[i + 1] + cost(batches[i], lengths)
    return out


@dataclass
class Unit:
    """Optional work: one model's pass (kind "model") or swap pass (kind "swap") over batches, best value first."""

    key: str
    model: int
    kind: str
    batches: list[list[int]]
    tokens: list[int]
    setup_s: float = 0.0  # loading + tokenising, paid once unless the model is already loaded
    needs: str | None = None  # a swap pass runs only on batches its model's pass covered (same batches)
    done: int = 0
    value_per_row: float = field(default=0.0)

    def __post_init__(self) -> None:
        if not self.value_per_row:
            self.value_per_row = VALUE_PER_ROW[self.kind]

    @property
    def rows(self) -> int:
        return sum(len(b) for b in self.batches)


def plan(units: list[Unit], seconds: float, rate: Throughput, loaded: int | None = None,
         rates: dict[int, Throughput] | None = None) -> dict[str, int]:
    """How many batches of each unit fit in `seconds`, chosen greedily by value per second.

    A unit whose model must be loaded first is weighed as its setup plus its best-value prefix of batches, so a
    costly load is neither ignored nor charged to one batch alone. `rates` holds models measured on their own
    (others use `rate`). Returns unit key -> batches (done included)."""
    rates = rates or {}
    picks = {u.key: u.done for u in units}
    by_key = {u.key: u for u in units}
    paid = {u.model for u in units if u.model == loaded}
    left = seconds
    while True:
        best: tuple[float, str, int, float] | None = None  # density, key, batches to add, cost
        for u in units:
            start = picks[u.key]
            limit = len(u.batches)
            if u.needs is not None:
                limit = min(limit, picks[u.needs])
            if start >= limit:
                continue
            setup = 0.0 if u.model in paid else u.setup_s
            value = cost = 0.0
            candidate = None
            for j in range(start, limit):
                value += u.value_per_row * len(u.batches[j])
                cost += rates.get(u.model, rate).seconds_for(u.tokens[j])
                if setup + cost > left:
                    break
                density = value / max(setup + cost, 1e-12)
                if candidate is None or density > candidate[0]:
                    candidate = (density, u.key, j + 1 - start, setup + cost)
                if not setup:  # without a setup to spread, the next single batch is the best step
                    break
            if candidate and (best is None or candidate[0] > best[0]):
                best = candidate
        if best is None:
            return picks
        _, key, count, cost = best
        picks[key] += count
        paid.add(by_key[key].model)
        left -= cost


def truncation_for(lengths: list[int], seconds: float, rate: Throughput, pad_factor: float, floor: int) -> int | None:
    """The largest per-row token cap at which `lengths` can still be predicted in `seconds`; None if even `floor`
    does not fit."""
    longest = max(lengths, default=0)

    def cost(cap: int) -> float:
        return rate.seconds_for(int(sum(min(n, cap) for n in lengths) * pad_factor))

    if cost(longest) <= seconds:
        return longest
    if cost(floor) > seconds:
        return None
    lo, hi = floor, longest
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cost(mid) <= seconds else (lo, mid)
    return lo


AGREE_STEPS = 3  # steady steps in a row that must want the base pass's token cap moved the same way
RAISE_MARGIN = 1.05  # a cap is raised only for at least 5% more tokens per row (no flapping on noise)


def cap_direction(wanted: int | None, current: int | None) -> int:
    """-1: the cap must come down (or a first cap is needed), +1: it may go up, 0: leave it."""
    if wanted is None:
        return 0 if current is None else 1
    if current is None or wanted < current:
        return -1
    return 1 if wanted >= RAISE_MARGIN * current else 0


def cap_vote(votes: int, direction: int) -> int:
    """Consecutive steps wanting the same move: a step wanting nothing or the opposite starts the count again."""
    if direction == 0:
        return 0
    return votes + direction if votes * direction > 0 else direction
