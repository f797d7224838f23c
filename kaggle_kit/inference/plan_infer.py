"""`plan infer`: project an infer kernel's runtime on the hidden test from a measured throughput, per option set.

The measurement is what `predict --time-budget --json` and infer kernels (kaggle_kit_run.json) record under
"measured", or a `bench predict --json` result. Forward time is modelled as padded tokens / measured tokens per
second; rows' token lengths come from the measured rows' length quantiles."""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kaggle_kit.config.durations import format_duration
from kaggle_kit.errors import DataError

SWAP_FACTOR = 2  # the swap pass runs every row a second time


@dataclass
class Measurement:
    source: str
    kind: str  # "run" (predict/kernel) or "bench"
    device: str
    replicas: int
    max_len: int
    tokens_per_s: float
    pad_factor: float
    length_quantiles: list[int]  # untruncated row lengths at 0, 5, ..., 100 % ("bench": capped at max_len)
    load_s: float
    tokenize_s_per_row: float
    startup_s: float

    def tokens_per_row(self, max_len: int) -> float:
        """Mean padded tokens per row at `max_len`, from the length distribution the quantiles describe."""
        qs = np.linspace(0, 1, len(self.length_quantiles))
        lengths = np.interp(np.linspace(0, 1, 2001), qs, np.asarray(self.length_quantiles, dtype=float))
        return float(np.minimum(lengths, max_len).mean()) * self.pad_factor


def _number(data: dict, key: str, where: str) -> float:
    value = data.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value) or value < 0:
        raise DataError(f"{where}: '{key}' is missing or not a non-negative number",
                        hint="pass a `predict --time-budget --json` output, a kaggle_kit_run.json or a "
                             "`bench predict --json` output")
    return float(value)


def read_measurement(path: Path) -> Measurement:
    """A measured throughput from a run report (its "measured" block) or a bench predict result."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    if isinstance(data.get("measured"), dict) and data["measured"].get("tokens_per_s"):
        m = data["measured"]
        where = f"{path} measured"
        quantiles = m.get("length_quantiles")
        if not isinstance(quantiles, list) or len(quantiles) < 2:
            raise DataError(f"{where}: no length_quantiles")
        return Measurement(str(path), "run", str(m.get("device", "?")), int(_number(m, "replicas", where)),
                           int(_number(m, "max_len", where)), _number(m, "tokens_per_s", where),
                           _number(m, "pad_factor", where), [int(q) for q in quantiles], _number(m, "load_s", where),
                           _number(m, "tokenize_s_per_row", where), _number(m, "startup_s", where))
    if isinstance(data.get("ours"), dict) and "max_len" in data:
        packed = isinstance(data.get("packed"), dict)  # a decoder's bench: predict packs it by default
        ours = data["packed"] if packed else data["ours"]
        where = f"{path} {'packed' if packed else 'ours'}"
        if "tokens_per_s" not in ours or "length_quantiles" not in data:
            raise DataError(f"{path}: this bench output has no tokens_per_s",
                            hint="rerun `kaggle-kit bench predict --json` with this version")
        # bench times tokenising with the forward pass and loads nothing: both are inside tokens_per_s
        return Measurement(str(path), "bench", "bench", 1, int(_number(data, "max_len", path.name)),
                           _number(ours, "tokens_per_s", where), 1.0, [int(q) for q in data["length_quantiles"]],
                           0.0, 0.0, 0.0)
    raise DataError(f"{path}: no measured throughput in it",
                    hint="pass a `predict --time-budget --json` output, a kaggle_kit_run.json or a "
                         "`bench predict --json` output")


@dataclass
class Projection:
    tta: str
    max_len: int
    models: int
    seconds: float
    status: str  # fits (inside the budget), cut (a budgeted run drops part of it), over (past the limit)
    extrapolated: bool  # max_len beyond what was measured: attention makes long rows dearer per token
    note: str


def project(m: Measurement, rows: int, max_len: int, tta: str, models: int, budget_s: float,
            limit_s: float) -> Projection:
    forward = rows * m.tokens_per_row(max_len) / m.tokens_per_s * (SWAP_FACTOR if tta == "swap" else 1) * models
    setup = m.startup_s + models * (m.load_s + rows * m.tokenize_s_per_row)
    seconds = setup + forward
    status = "fits" if seconds <= budget_s else "cut" if seconds <= limit_s else "over"
    notes = []
    if models > 1:
        notes.append("further models assumed as fast as the measured one")
    extrapolated = max_len > m.max_len
    if extrapolated:
        notes.append(f"max_len above the measured {m.max_len}: optimistic")
    return Projection(tta, max_len, models, round(seconds, 1), status, extrapolated, "; ".join(notes))


GPU_REPLICAS = {"t4x2": 2, "l4": 1}  # one model replica per GPU (Kaggle's T4 x2; one L4)


def retarget(m: Measurement, gpus: str) -> Measurement:
    """The measurement as if run with one replica per GPU of `gpus`: throughput scales with the replicas; the
    per-GPU speed stays the measured one (a T4 measurement is no L4 measurement: the table says what it assumes)."""
    from dataclasses import replace

    replicas = GPU_REPLICAS[gpus]
    return replace(m, tokens_per_s=m.tokens_per_s * replicas / max(1, m.replicas), replicas=replicas,
                   device=f"{gpus} (per-GPU speed of {m.device} x{m.replicas})")


def plan_infer(m: Measurement, rows: int, budget_s: float, limit_s: float, max_lens: list[int],
               models: int) -> list[Projection]:
    """Every option set: TTA off/on x each max_len x 1..models models in the blend."""
    return [project(m, rows, max_len, tta, k, budget_s, limit_s)
            for k, max_len, tta in itertools.product(range(1, models + 1), max_lens, ("none", "swap"))]


def model_passes(model_dirs: list[Path]) -> list[dict]:
    """One pass over the test per model dir: an averaged model (`kaggle-kit average`) is one model, however many
    folds it was averaged from."""
    from kaggle_kit.model.model_dir import check_model_dir

    rows = []
    for model_dir in model_dirs:
        members = (check_model_dir(model_dir).get("average") or {}).get("members") or []
        rows.append({"model_dir": str(model_dir), "passes": 1, "averaged_members": len(members) or None})
    return rows


def describe_passes(rows: list[dict]) -> str:
    parts = [f"{r['model_dir']}" + (f" (averaged from {r['averaged_members']} models)" if r["averaged_members"] else "")
             for r in rows]
    return f"{len(rows)} model pass(es): " + ", ".join(parts)


def plan_table(m: Measurement, rows: int, budget_s: float, limit_s: float, projections: list[Projection]) -> str:
    head = (f"{rows:,} rows; measured {m.tokens_per_s:,.0f} tokens/s on {m.device} x{m.replicas} at max_len "
            f"{m.max_len} ({m.source}); budget {format_duration(budget_s)}, limit {format_duration(limit_s)}")
    lines = [head, f"{'tta':<5} {'max_len':>7} {'models':>6} {'projected':>10}  status"]
    for p in projections:
        flag = {"fits": "fits", "cut": "CUT: past the budget, a budgeted run does part of it",
                "over": "OVER the limit (a budgeted run does part of it)"}[p.status]
        lines.append(f"{p.tta:<5} {p.max_len:>7} {p.models:>6} {format_duration(p.seconds):>10}  {flag}"
                     + (f" ({p.note})" if p.note else ""))
    return "\n".join(lines)


def plan_dict(m: Measurement, rows: int, budget_s: float, limit_s: float, projections: list[Projection]) -> dict:
    return {"measurement": asdict(m), "rows": rows, "budget_s": budget_s, "limit_s": limit_s,
            "options": [asdict(p) for p in projections]}
