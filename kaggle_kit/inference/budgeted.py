"""Predict inside a time budget: the base pass over every row first, then optional work while it fits.

Optional work (the swap pass, further models of a blend) is chosen by budget.plan from the measured throughput and
re-planned after every step; the submission is rewritten atomically as work completes, so a valid file for every
row exists from the first second on (rows not reached yet carry the class prior)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.config import PredictConfig
from kaggle_kit.config.durations import format_duration
from kaggle_kit.data.encode import Encoder, field_demand
from kaggle_kit.data.reading import Pairs
from kaggle_kit.inference.blend_run import BlendRun
from kaggle_kit.inference.budget import (
    AGREE_STEPS,
    VALUE_PER_ROW,
    Budget,
    Throughput,
    Unit,
    cap_direction,
    cap_vote,
    plan,
    suffix_tokens,
    truncation_for,
)
from kaggle_kit.inference.loaded import Loaded
from kaggle_kit.inference.placement import load_placed
from kaggle_kit.inference.predict import blend, encoder_for, gpu_replicas, unswap
from kaggle_kit.model.backbone import free_model_memory
from kaggle_kit.model.batching import Batching, BatchStats, batching_for, run_batches
from kaggle_kit.model.model_dir import load_trained, recorded_prior
from kaggle_kit.model.side_head import pair_features

REFRESH_SHARE = 1 / 60  # rewrite the file at least this often (share of the budget), and at every stage end
MIN_REFRESH_S = 5.0
# Refreshes may take at most this share of the time between them: a costly write (a large test set) is made less
# often, and what the remaining refreshes will cost is taken off the time the plan may spend on forward passes.
WRITE_SHARE = 0.1
QUANTILES = list(range(0, 101, 5))
EXIT_SHARE = 0.5
@dataclass
class RunState:
    n: int
    num_labels: int
    base: list[np.ndarray]
    swap: list[np.ndarray]
    covered: list[np.ndarray]
    swapped: list[np.ndarray]
    stages: list[dict] = field(default_factory=list)
    truncated: int = 0
    cap: int | None = None
    caps: list[dict] = field(default_factory=list)  # every move of the base pass's token cap: row reached, cap


class BudgetedPredictor:
    def __init__(self, model_dirs: list[Path], pairs: Pairs, spec: CompetitionSpec, cfg: PredictConfig,
                 weights: list[float] | None, backbone: str | None, budget: Budget,
                 write: Callable[[np.ndarray], None], echo: Callable[[str], None] = lambda m: None,
                 progress: bool = True, loader: Callable = load_trained, fitted: BlendRun | None = None):
        """`fitted`: a blend.json's run (its model dirs are `model_dirs`): per-model backbones and values, and its
        fold-by-fold combination instead of `weights` and cfg.blend."""
        self.model_dirs, self.pairs, self.spec, self.cfg = model_dirs, pairs, spec, cfg
        self.fitted = fitted
        self.weights, self.backbone, self.budget = weights, backbone, budget
        self._write, self.echo, self.progress = write, echo, progress
        n, c = len(pairs), spec.num_labels
        nan = lambda: np.full((n, c), np.nan)  # noqa: E731
        k = len(model_dirs)
        self.state = RunState(n, c, [nan() for _ in range(k)], [nan() for _ in range(k)],
                              [np.zeros(n, bool) for _ in range(k)], [np.zeros(n, bool) for _ in range(k)])
        self.prior = recorded_prior(model_dirs[0], c)  # for rows the budget never reaches
        self.rates: dict[int, Throughput] = {}
        self.write_s = 0.0  # the costliest write so far: what the last write is expected to take
        self.writes, self.write_total_s = 0, 0.0
        self.last_write = -1e18
        self.refresh_s = max(MIN_REFRESH_S, budget.seconds * REFRESH_SHARE)
        self.projection: dict | None = None
        self.clock = budget.clock  # every duration on the budget's clock: a test can drive it deterministically
        self.loader = loader
        self.measured: dict = {}
        self.batchings: dict[int, Batching] = {}  # each loaded model's batching (packed or padded, eager caps)
        self.stats = BatchStats()  # the tokens every forward pass computed

    # ---- output
    def combine(self) -> np.ndarray:
        """Each row: every model that reached it (its swap pass averaged in where done), blended; else the prior."""
        s = self.state
        per_model = []
        for m in range(len(self.model_dirs)):
            p = s.base[m].copy()
            both = s.covered[m] & s.swapped[m]
            p[both] = (s.base[m][both] + unswap(s.swap[m][both], self.spec)) / 2
            per_model.append(p)
        out = np.tile(self.prior, (s.n, 1))
        pattern = np.stack(s.covered, axis=1)
        for key in {tuple(r) for r in pattern.tolist()}:
            models = [m for m, on in enumerate(key) if on]
            if not models:
                continue
            rows = np.where((pattern == np.array(key)).all(axis=1))[0]
            if self.fitted is not None:
                out[rows] = self.fitted.combine({m: per_model[m][rows] for m in models})
            elif len(self.model_dirs) == 1 and not self.weights:
                out[rows] = per_model[0][rows]
            else:
                weights = self.weights or [1.0] * len(self.model_dirs)
                out[rows] = blend([per_model[m][rows] for m in models], [weights[m] for m in models], self.cfg.blend)
        return out

    def write(self, why: str) -> None:
        start = self.clock()
        self._write(self.combine())
        took = self.clock() - start
        self.write_s = max(self.write_s, took)
        self.writes, self.write_total_s = self.writes + 1, self.write_total_s + took
        self.refresh_s = max(self.refresh_s, took / WRITE_SHARE)
        self.last_write = self.budget.elapsed()
        if why != "refresh":  # the stage ends' writes are in the report; refreshes are counted in writes/write_s
            self.stage("write", None, self.state.n, took)

    def refresh_share(self) -> float:
        """The share of forward time the periodic rewrites will take at the measured write cost."""
        return self.write_s / (self.refresh_s + self.write_s) if self.write_s else 0.0

    def maybe_refresh(self) -> None:
        if self.budget.elapsed() - self.last_write >= self.refresh_s:
            self.write("refresh")

    def stage(self, name: str, model: int | None, rows: int, seconds: float) -> None:
        entry = {"stage": name, "model": None if model is None else model + 1, "rows": rows,
                 "seconds": round(seconds, 3), "elapsed_s": round(self.budget.elapsed(), 3)}
        self.state.stages.append(entry)
        what = f"{name}" + (f" (model {model + 1})" if model is not None and len(self.model_dirs) > 1 else "")
        self.echo(f"kaggle-kit: {what}: {rows} rows in {seconds:.1f}s; {format_duration(self.budget.elapsed())} of "
                  f"{format_duration(self.budget.seconds)} used")

    # ---- models
    def load(self, m: int) -> Loaded:
        t0 = self.clock()
        backbone = self.fitted.backbones[m] if self.fitted is not None else self.backbone
        trained = load_placed(self.loader, self.model_dirs[m], backbone, self.cfg)
        load_s = self.clock() - t0
        self.batchings[m] = batching_for(trained.model, self.cfg.batching)
        self.stage("load", m, 0, load_s)
        t0 = self.clock()
        encoder = encoder_for(trained)
        tokens = encoder.tokenize_turns(self.pairs, progress=self.progress)
        encoded = [encoder.assemble([tokens[f][r] for f in encoder.spec.fields]) for r in range(len(self.pairs))]
        features = swap_features = None
        if trained.side_head:
            features = pair_features(self.pairs, self.spec)
            swap_features = pair_features(self.pairs.swapped(self.spec), self.spec)
        tokenize_s = self.clock() - t0
        self.stage("tokenize", m, len(encoded), tokenize_s)
        replicas = gpu_replicas(trained.model, trained.reload) or [trained.model]
        pool = ThreadPoolExecutor(len(replicas)) if len(replicas) > 1 else None
        return Loaded(m, trained, encoder, tokens, encoded, replicas, pool, load_s, tokenize_s, features, swap_features)

    def batching(self, m: int) -> Batching:  # a model not loaded yet: the first one's (its lengths are too)
        return self.batchings.get(m) or self.batchings.get(0) or Batching()

    def batches(self, lengths: list[int], m: int) -> list[list[int]]:
        """Token-budget batches as plain predict makes them, packed or padded as model m runs them."""
        return self.batching(m).batches(lengths, self.cfg.max_tokens)

    def run_step(self, loaded: Loaded, batches: list[list[int]], encoded, out: np.ndarray, bar) -> float:
        """One batch per replica, run together; returns the wall time (the throughput counts all replicas)."""
        pad_id, how = loaded.trained.tokenizer.pad_token_id, self.batching(loaded.index)
        start = self.clock()
        if loaded.pool is None:
            run_batches(loaded.replicas[0], batches, encoded, pad_id, out, bar, how, self.stats)
        else:
            jobs = [loaded.pool.submit(run_batches, loaded.replicas[k], [b], encoded, pad_id, out, bar, how,
                                       self.stats) for k, b in enumerate(batches)]
            for job in jobs:
                job.result()
        seconds = self.clock() - start
        lengths = {i: len(encoded[i]) for b in batches for i in b}
        self.rates.setdefault(loaded.index, Throughput()).record(sum(how.tokens(b, lengths) for b in batches), seconds)
        return seconds

    def available(self) -> float:
        """Seconds optional work may still use: the margin keeps room for the last write and the interpreter's exit
        (which takes a while after torch and transformers were imported; half the start-up is kept for it), less what
        the periodic rewrites will take meanwhile."""
        free = self.budget.left() - self.budget.margin(self.write_s) - self.exit_s
        return free * (1 - self.refresh_share()) if free > 0 else free

    # ---- the base pass of the first model: every row, longest first; shorter max_len if it cannot all fit
    def base_pass(self, loaded: Loaded) -> None:
        """The cap on tokens per row moves (down when the rows left cannot fit at full length, up again when the
        time left allows more) only after AGREE_STEPS steady steps in a row want it moved the same way (down at once
        when fewer steps than that are left)."""
        s, m = self.state, loaded.index
        encoded = list(loaded.encoded)
        lengths = [len(e) for e in encoded]
        batches = self.batches(lengths, m)
        how = self.batching(m)  # what a batch costs: the tokens it computes (packed or padded)
        self.pad_factor = sum(how.tokens(b, lengths) for b in batches) / max(1, sum(lengths))
        logits = np.zeros((s.n, s.num_labels), dtype=np.float32)
        step_n = len(loaded.replicas)
        floor = min(loaded.encoder.spec.max_len, loaded.encoder.overhead + 32)
        start, i, votes = self.clock(), 0, 0
        tokens_from = suffix_tokens(batches, lengths, how.tokens)  # batches[i:]'s, not re-summed per step
        with tqdm(total=s.n, desc="predict", unit="row", disable=not self.progress) as bar:
            while i < len(batches):
                step = batches[i:i + step_n]
                rate = self.rates.get(m)
                if self.available() <= 0:
                    break
                if rate is not None:
                    if rate.steady and s.cap is None and rate.seconds_for(tokens_from[i]) <= self.available():
                        votes = 0  # uncapped and the rest fits: no need to look at every row left
                    elif rate.steady:
                        rest = [r for b in batches[i:] for r in b]
                        cap = self._wanted_cap(loaded, rest, rate, floor)
                        votes = cap_vote(votes, cap_direction(cap, s.cap))
                        few_left = len(batches) - i <= AGREE_STEPS * step_n  # no steps left to wait for agreement
                        if abs(votes) >= AGREE_STEPS or (votes < 0 and few_left):
                            batches, lengths = self._recap(loaded, encoded, batches, i, rest, cap)
                            tokens_from = suffix_tokens(batches, lengths, how.tokens)
                            step, votes = batches[i:i + step_n], 0
                    if rate.seconds_for(sum(how.tokens(b, lengths) for b in step)) > self.available():
                        break
                self.run_step(loaded, step, encoded, logits, bar)
                rows = [r for b in step for r in b]
                s.base[m][rows] = loaded.probs(logits, rows)
                s.covered[m][rows] = True
                i += len(step)
                if self.projection is None and (self.rates[m].steady or i >= len(batches)):
                    self.projection = self.project(loaded, batches[i:], lengths)
                self.maybe_refresh()
        if self.projection is None and m in self.rates:  # the budget ran out before a steady step: say so anyway
            self.projection = self.project(loaded, batches[i:], lengths)
        self.full_rows = [r for r in range(s.n) if s.covered[m][r] and len(encoded[r]) == len(loaded.encoded[r])]
        self.stage("base", m, int(s.covered[m].sum()), self.clock() - start)
        missing = s.n - int(s.covered[m].sum())
        if missing:
            self.echo(f"kaggle-kit: warning: the budget ran out: {missing} row(s) got the class prior")

    def _wanted_cap(self, loaded: Loaded, rest: list[int], rate: Throughput, floor: int) -> int | None:
        """The largest cap at which the rows left fit at their full lengths (None: no cap needed)."""
        full = [len(loaded.encoded[r]) for r in rest]
        cap = truncation_for(full, self.available(), rate, self.pad_factor, floor)
        return None if cap is not None and cap >= max(full, default=0) else (cap or floor)

    def _recap(self, loaded, encoded, batches, i, rest, cap):
        """Re-encode the rows not reached yet from their full tokens at `cap` (None: full length)."""
        short = Encoder(loaded.trained.tokenizer, replace(loaded.encoder.spec, max_len=cap)) if cap else None
        fields = loaded.encoder.spec.fields
        for r in rest:
            full = loaded.encoded[r]
            encoded[r] = full if short is None or len(full) <= cap else short.assemble(
                [loaded.tokens[f][r] for f in fields])
        s = self.state
        lowered = s.cap is None or (cap is not None and cap < s.cap)
        s.cap = cap
        s.truncated = sum(len(encoded[r]) < len(loaded.encoded[r]) for r in range(s.n))
        s.caps.append({"at_row": int(s.covered[loaded.index].sum()), "cap": cap})
        if lowered:
            self.echo(f"kaggle-kit: the base pass would not fit: the {len(rest)} rows left are cut to {cap} tokens")
        else:
            self.echo(f"kaggle-kit: time to spare: the {len(rest)} rows left are cut to "
                      f"{cap if cap else 'no'} tokens{'' if cap else ' (full length)'}")
        lengths = [len(e) for e in encoded]
        return batches[:i] + [[rest[j] for j in b] for b in self.batches([lengths[r] for r in rest],
                                                                         loaded.index)], lengths

    # ---- optional work
    def units(self, loaded: Loaded | None, swap_lengths: list[int] | None = None) -> list[Unit]:
        """Swap pass of the first model, other models' passes (and their swap passes), best value per token first."""
        s = self.state
        units: list[Unit] = []
        setup = loaded.load_s + loaded.tokenize_s if loaded else 0.0
        every = list(range(s.n))
        proxy = self.first_lengths  # a model not loaded yet is assumed to see rows as long as the first one does
        if self.cfg.tta == "swap" and swap_lengths is not None:
            units.append(self._unit("swap:1", 0, "swap", self.full_rows, swap_lengths, 0.0))
        elif self.cfg.tta == "swap":
            units.append(self._unit("swap:1", 0, "swap", self.full_rows, proxy, 0.0))
        for m in range(1, len(self.model_dirs)):
            units.append(self._unit(f"model:{m + 1}", m, "model", every, proxy, setup))
            if self.cfg.tta == "swap":
                units.append(self._unit(f"swap:{m + 1}", m, "swap", every, proxy, setup, needs=f"model:{m + 1}"))
        return units

    def _unit(self, key, m, kind, rows, lengths, setup, needs=None) -> Unit:
        local = self.batches([lengths[r] for r in rows], m)[::-1]  # shortest first
        batches = [[rows[j] for j in b] for b in local]
        value = 0.0  # the kind's default
        if self.fitted is not None and m > 0:  # a blend member's share, per its cost (a swap pass: half of it)
            value = self.fitted.values[m] * (VALUE_PER_ROW["swap"] / VALUE_PER_ROW["model"] if kind == "swap" else 1)
        how = self.batching(m)
        return Unit(key, m, kind, batches, [how.tokens(b, lengths) for b in batches], setup_s=setup, needs=needs,
                    value_per_row=value)

    def project(self, loaded: Loaded, rest: list[list[int]], lengths: list[int]) -> dict:
        """The projection made once the first step is measured: base, each optional unit, and what fits."""
        rate = self.rates[loaded.index]
        base_left = rate.seconds_for(sum(self.batching(loaded.index).tokens(b, lengths) for b in rest))
        self.full_rows = list(range(self.state.n))
        units = self.units(loaded)
        picks = plan(units, self.available() - base_left, rate, loaded=0)

        def cost(u: Unit, count: int) -> float:
            return (u.setup_s if u.model > 0 and count else 0.0) + rate.seconds_for(sum(u.tokens[:count]))

        planned = sum(cost(u, picks[u.key]) for u in units)
        return {"at_s": round(self.budget.elapsed(), 3), "budget_s": self.budget.seconds,
                "tokens_per_s": round(rate.tokens_per_s, 1),
                "base_s": round(rate.spent + base_left, 1),
                "optional_s": {u.key: round(cost(u, len(u.batches)), 1) for u in units},
                "planned_rows": {u.key: sum(len(b) for b in u.batches[:picks[u.key]]) for u in units},
                "finish_s": round(self.budget.elapsed() + base_left + planned, 1),
                "fits_everything": all(picks[u.key] == len(u.batches) for u in units) and base_left <= self.available()}

    def optional(self, loaded: Loaded) -> Loaded | None:
        s = self.state
        swap_lengths = None
        if self.cfg.tta == "swap":
            swap_lengths = [0] * s.n
            for r, ids in loaded.swapped(self.full_rows, self.spec).items():
                swap_lengths[r] = len(ids)
        units = self.units(loaded, swap_lengths)
        times: dict[str, float] = {}
        with tqdm(total=sum(u.rows for u in units), desc="optional", unit="row", disable=not self.progress) as bar:
            while True:
                picks = plan(units, self.available(), self.rates[0], loaded.index if loaded else None, self.rates)
                todo = [u for u in units if picks[u.key] > u.done]
                if not todo:
                    break
                current = [u for u in todo if loaded is not None and u.model == loaded.index]
                if not current:
                    nxt = min(u.model for u in todo)
                    self._finish_units(units, times, loaded)
                    if loaded is not None:
                        self.unload(loaded)
                    loaded = self.load(nxt)
                    units = self._rebuild(units, loaded)
                    continue
                unit = current[0]
                step = unit.batches[unit.done:min(picks[unit.key], unit.done + len(loaded.replicas))]
                rate = self.rates.get(loaded.index, self.rates[0])
                if rate.seconds_for(sum(unit.tokens[unit.done:unit.done + len(step)])) > self.available():
                    break
                rows = [r for b in step for r in b]
                encoded, logits = self._inputs(loaded, unit, rows)
                t = self.run_step(loaded, step, encoded, logits, bar)
                times[unit.key] = times.get(unit.key, 0.0) + t
                probs = loaded.probs(logits, rows, swapped=unit.kind == "swap")
                m = unit.model
                if unit.kind == "swap":
                    s.swap[m][rows] = probs
                    s.swapped[m][rows] = True
                else:
                    s.base[m][rows] = probs
                    s.covered[m][rows] = True
                unit.done += len(step)
                self.maybe_refresh()
        self._finish_units(units, times, loaded)
        return loaded

    def _inputs(self, loaded: Loaded, unit: Unit, rows: list[int]):
        if unit.kind == "swap":
            swapped = loaded.swapped(rows, self.spec)
            encoded: list = [None] * self.state.n
            for r, ids in swapped.items():
                encoded[r] = ids
        else:
            encoded = loaded.encoded
        return encoded, np.zeros((self.state.n, self.state.num_labels), dtype=np.float32)

    def _finish_units(self, units: list[Unit], times: dict[str, float], loaded: Loaded | None) -> None:
        for u in units:
            if loaded is not None and u.model == loaded.index and u.key in times and not getattr(u, "reported", False):
                self.stage("swap" if u.kind == "swap" else "base", u.model, sum(len(b) for b in u.batches[:u.done]),
                           times[u.key])
                u.reported = True  # type: ignore[attr-defined]

    def _rebuild(self, units: list[Unit], loaded: Loaded) -> list[Unit]:
        """A newly loaded model's units, batched by its own encodings; other models' units keep their progress."""
        out = []
        lengths = loaded.lengths
        for u in units:
            if u.model < loaded.index:
                continue
            if u.model == loaded.index and u.done == 0:
                rows = sorted(r for b in u.batches for r in b)
                u = self._unit(u.key, u.model, u.kind, rows, lengths, 0.0, u.needs)
            out.append(u)
        return out

    def unload(self, loaded: Loaded) -> None:
        loaded.close()
        loaded.trained = loaded.replicas = None  # type: ignore[assignment]
        free_model_memory()

    # ---- the whole run
    def run(self) -> dict:
        self.exit_s = EXIT_SHARE * self.budget.elapsed()
        self.stage("start", None, 0, self.budget.elapsed())
        self.write("prior")
        self.full_rows, self.first_lengths = [], []
        loaded = self.load(0)
        self.first_lengths = loaded.lengths
        self.base_pass(loaded)
        self.write("base")
        self.measured = self.measure(loaded)
        if (self.cfg.tta == "swap" or len(self.model_dirs) > 1) and 0 in self.rates:
            loaded = self.optional(loaded)
            self.write("final")
        if loaded is not None:
            self.unload(loaded)
        return self.report()

    def measure(self, loaded: Loaded) -> dict:
        """What `plan infer` projects from: throughput, start-up costs and the rows' untruncated token lengths."""
        rate = self.rates.get(0)
        sep = loaded.encoder.separator
        fields = loaded.encoder.spec.fields
        full = [loaded.encoder.overhead + sum(field_demand(loaded.tokens[f][r], sep) for f in fields)
                for r in range(self.state.n)]
        return {"device": "cuda" if torch.cuda.is_available() else "cpu", "replicas": len(loaded.replicas),
                "rows": self.state.n, "max_len": loaded.encoder.spec.max_len, "max_tokens": self.cfg.max_tokens,
                "tokens_per_s": round(rate.tokens_per_s, 1) if rate and rate.known else None,
                "pad_factor": round(getattr(self, "pad_factor", 1.0), 4), "batching": self.batching(0).name,
                "load_s": round(loaded.load_s, 3), "tokenize_s_per_row": loaded.tokenize_s / max(1, self.state.n),
                "startup_s": round(self.state.stages[0]["seconds"], 3),
                "length_quantiles": [int(q) for q in np.percentile(full, QUANTILES)] if full else []}

    def report(self) -> dict:
        s = self.state
        swapped = np.any(np.stack(s.swapped), axis=0) if s.swapped else np.zeros(s.n, bool)
        return {"rows": s.n, "predicted_rows": int(s.covered[0].sum()), "prior_rows": int((~s.covered[0]).sum()),
                "truncated_rows": s.truncated, "truncated_to": s.cap, "cap_changes": s.caps,
                "tta_rows": int(swapped.sum()),
                "model_rows": [int(c.sum()) for c in s.covered], "budget_s": self.budget.seconds,
                "elapsed_s": round(self.budget.elapsed(), 3), "projection": self.projection, "stages": s.stages,
                "writes": self.writes, "write_s": round(self.write_total_s, 3),
                "models": sum(bool(c.any()) for c in s.covered), **self.stats.report(), "measured": self.measured}
