"""Rank-sharded, resumable prediction: the rows are cut into shards of `shard_rows`, each (model, shard) is predicted
by one rank and written as its own file in OUT.parts/, and the shards are merged into input order once all exist.

Under torchrun (WORLD_SIZE > 1, one machine or several) each rank takes shards balanced by token count; one process
is world size 1 and goes through the same shards, so a stopped run of either kind resumes where it stopped.
Shards hold the models' probabilities before any post-processing: rules, --min-confidence, the non-finite fix and
validation run once, on the merged rows, exactly as without shards."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np

from kaggle_kit.atomic import atomic_path, file_sha256, write_text_atomic
from kaggle_kit.errors import KitError, UsageProblem

log = logging.getLogger(__name__)

PARTS_SUFFIX = ".parts"
MANIFEST = "manifest.json"
SHARD_FORMAT = 1
BARRIER_TIMEOUT = timedelta(hours=6)  # ranks finish together when balanced; a resumed rank may wait on the others
HASHED_WHOLE = 16 << 20  # model files up to 16 MiB are hashed; bigger ones (weights) by name, size and mtime


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def sharded(self) -> bool:
        return self.size > 1


def current_world(env: dict[str, str] | None = None) -> World:
    """This process's rank and the world size as torchrun sets them (one process: rank 0 of 1)."""
    env = os.environ if env is None else env
    try:
        return World(rank=int(env.get("RANK", "0")), size=int(env.get("WORLD_SIZE", "1")))
    except ValueError:
        raise KitError(f"RANK={env.get('RANK')!r} / WORLD_SIZE={env.get('WORLD_SIZE')!r} are not integers",
                       hint="start the command with torchrun, or unset RANK and WORLD_SIZE") from None


@dataclass(frozen=True, order=True)
class Unit:
    """One model's predictions for one shard: the file a rank writes."""

    model: int
    shard: int

    @property
    def name(self) -> str:
        return f"m{self.model:02d}-s{self.shard:05d}.npz"


def parts_dir(out_path: Path) -> Path:
    return out_path.with_name(out_path.name + PARTS_SUFFIX)


def shard_ranges(rows: int, shard_rows: int) -> list[range]:
    """Consecutive input rows, `shard_rows` at a time: fixed by the input alone, so any world size resumes them."""
    return [range(start, min(start + shard_rows, rows)) for start in range(0, rows, shard_rows)]


def assign(costs: dict[Unit, int], size: int) -> list[list[Unit]]:
    """Units to ranks, longest first to the least-loaded rank (by tokens), so the ranks finish together.
    Deterministic: every rank computes the same answer from the same costs."""
    shares: list[list[Unit]] = [[] for _ in range(size)]
    load = [0] * size
    for unit in sorted(costs, key=lambda u: (-costs[u], u.model, u.shard)):
        rank = min(range(size), key=lambda r: (load[r], r))
        shares[rank].append(unit)
        load[rank] += costs[unit]
    return [sorted(share, key=lambda u: (u.model, u.shard)) for share in shares]


def model_fingerprint(model_dir: Path) -> str:
    """What a model dir holds: small files by content, weight files by name, size and modification time."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(model_dir).rglob("*") if p.is_file() and "checkpoints" not in p.parts):
        stat = path.stat()
        digest.update(str(path.relative_to(model_dir)).encode())
        digest.update(file_sha256(path).encode() if stat.st_size <= HASHED_WHOLE
                      else f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def fingerprint(input_path: Path, model_dirs: list[Path], settings: dict) -> dict:
    return {"input": file_sha256(input_path), "models": [model_fingerprint(d) for d in model_dirs],
            "settings": settings}


@dataclass
class ShardJob:
    """What to predict: `predict(model_index, rows)` returns the model's probabilities for those input rows (it loads
    the model on first use); `costs()` each row's token count (the balancing weight; computed by rank 0 only, and
    only under torchrun); `fingerprint()` what the shards depend on (hashed files: computed by rank 0 only)."""

    kind: str
    rows: int
    num_labels: int
    shard_rows: int
    fingerprint: Callable[[], dict]
    model_count: int
    predict: Callable[[int, list[int]], np.ndarray]
    release: Callable[[], None]
    costs: Callable[[], np.ndarray]
    cost_per_row: int = 1  # 2 with swap TTA
    progress: bool = True
    echo: Callable[[str], None] = field(default=lambda message: None)


def _problem_with(manifest: dict, wanted: dict) -> str | None:
    old = manifest.get("fingerprint", {})
    if manifest.get("format") != SHARD_FORMAT or manifest.get("kind") != wanted["kind"]:
        return "were written by another command or kaggle-kit version"
    if old.get("input") != wanted["fingerprint"]["input"]:
        return "are of another input file"
    if old.get("models") != wanted["fingerprint"]["models"]:
        return "are of other models"
    changed = sorted(k for k in {*old.get("settings", {}), *wanted["fingerprint"]["settings"]}
                     if old.get("settings", {}).get(k) != wanted["fingerprint"]["settings"].get(k))
    if changed:
        return "were predicted with other settings (" + ", ".join(changed) + ")"
    return None


def own_files(folder: Path) -> list[Path]:
    """kaggle-kit's files in OUT.parts/ (shards, the manifest, unfinished temp files): all --overwrite removes."""
    return [p for p in folder.iterdir() if p.is_file() and (
        p.name == MANIFEST or (p.name.startswith("m") and p.suffix == ".npz") or p.name.endswith(".tmp"))]


def remove_parts(folder: Path) -> None:
    for path in own_files(folder):
        path.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:  # someone else's file is in it: leave the folder, and that file, alone
        pass


def prepare_parts(folder: Path, job: ShardJob, overwrite: bool) -> set[Unit]:
    """Create or check OUT.parts/; returns the units already finished there. Shards of another input, other models
    or other settings are refused (or removed with --overwrite)."""
    manifest = {"format": SHARD_FORMAT, "kind": job.kind, "rows": job.rows, "shard_rows": job.shard_rows,
                "fingerprint": job.fingerprint()}
    if folder.exists() and not folder.is_dir():
        raise KitError(f"{folder} is a file; kaggle-kit keeps the shards of this output there",
                       hint="move that file away")
    if (folder / MANIFEST).exists():
        try:
            old = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            old = {}
        problem = _problem_with(old, manifest)
        if problem is not None and not overwrite:
            raise UsageProblem(f"the shards in {folder} {problem}",
                               hint="pass --overwrite to discard them, or rerun with the same input, models and "
                                    "settings to finish that run")
        if problem is not None:
            remove_parts(folder)
    elif folder.is_dir() and own_files(folder) and not overwrite:
        raise UsageProblem(f"{folder} holds shard files but no {MANIFEST}", hint="pass --overwrite to discard them")
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / MANIFEST).exists():
        for stale in own_files(folder):
            stale.unlink()
        write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=2))
    ranges = shard_ranges(job.rows, job.shard_rows)
    return {Unit(m, s) for m in range(job.model_count) for s in range(len(ranges))
            if _readable_shard(folder / Unit(m, s).name, ranges[s], job.num_labels)}


def _readable_shard(path: Path, rows: range, num_labels: int) -> bool:
    """A shard counts as finished only if it is whole: the right rows, finite-shaped probabilities."""
    if not path.exists():
        return False
    try:
        with np.load(path) as data:
            return (np.array_equal(data["rows"], np.arange(rows.start, rows.stop))
                    and data["probs"].shape == (len(rows), num_labels))
    except (OSError, ValueError, KeyError):
        return False


def write_shard(path: Path, rows: range, probs: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, rows=np.arange(rows.start, rows.stop), probs=np.asarray(probs, dtype=np.float64))


def merge(folder: Path, job: ShardJob) -> list[np.ndarray]:
    """Every model's probabilities in input order, each row exactly once (checked, not assumed)."""
    prob_sets = []
    for m in range(job.model_count):
        probs = np.full((job.rows, job.num_labels), np.nan)
        seen = np.zeros(job.rows, dtype=np.int64)
        for s in range(len(shard_ranges(job.rows, job.shard_rows))):
            path = folder / Unit(m, s).name
            if not path.exists():
                raise KitError(f"shard {path} is missing after every rank finished",
                               hint="under torchrun over several nodes the output must be on a filesystem they all "
                                    "share; rerun to predict the missing shards")
            with np.load(path) as data:
                probs[data["rows"]] = data["probs"]
                np.add.at(seen, data["rows"], 1)
        if not (seen == 1).all():
            raise KitError(f"the shards in {folder} cover {int((seen == 0).sum())} row(s) never and "
                           f"{int((seen > 1).sum())} more than once", hint="rerun with --overwrite")
        prob_sets.append(probs)
    return prob_sets


class _Group:
    """torch.distributed over gloo (CPU collectives, also between GPU ranks): the plan broadcast by rank 0, and the
    ranks' reports gathered once all have written their shards (the barrier before the merge)."""

    def __init__(self, world: World):
        self.world = world
        self.created = False
        if world.sharded:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
                self.created = True

    def share(self, value):
        """Rank 0's value on every rank."""
        if not self.world.sharded:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value) -> list:
        if not self.world.sharded:
            return [value]
        import torch.distributed as dist

        out = [None] * self.world.size
        dist.all_gather_object(out, value)
        return out

    def close(self) -> None:
        if self.created:
            import torch.distributed as dist

            dist.destroy_process_group()


def run_sharded(job: ShardJob, out_path: Path, overwrite: bool, world: World | None = None
                ) -> tuple[list[np.ndarray] | None, dict]:
    """Predict this rank's share of the missing shards, then merge on rank 0. Returns (probabilities of each model in
    input order, or None on the other ranks; the report). Rank 0 checks OUT.parts/ and plans; a problem there stops
    every rank with the same one line."""
    world = world or current_world()
    folder = parts_dir(out_path)
    group = _Group(world)
    try:
        plan = None
        if world.rank == 0:
            try:
                done = prepare_parts(folder, job, overwrite)
                row_costs = job.costs() if world.sharded else np.ones(job.rows, dtype=np.int64)
                plan = {"done": sorted((u.model, u.shard) for u in done), "costs": row_costs}
            except KitError as exc:  # sent as parts: an exception's hint does not survive pickling
                plan = {"error": (isinstance(exc, UsageProblem), exc.message, exc.hint)}
        plan = group.share(plan)
        if "error" in plan:
            usage, message, hint = plan["error"]
            raise (UsageProblem if usage else KitError)(message, hint=hint)
        done = {Unit(m, s) for m, s in plan["done"]}
        ranges = shard_ranges(job.rows, job.shard_rows)
        costs = {Unit(m, s): int(plan["costs"][r.start:r.stop].sum()) * job.cost_per_row + 1
                 for m in range(job.model_count) for s, r in enumerate(ranges) if Unit(m, s) not in done}
        mine = assign(costs, world.size)[world.rank]
        mine_report = _predict_share(job, folder, ranges, mine, world)
        reports = group.gather(mine_report)
        if world.rank != 0:
            return None, {**mine_report, "world_size": world.size}
        prob_sets = merge(folder, job)
        report = {"world_size": world.size, "shards": len(ranges) * job.model_count,
                  "shards_reused": len(done), "ranks": reports}
        return prob_sets, report
    finally:
        group.close()


def _predict_share(job: ShardJob, folder: Path, ranges: list[range], mine: list[Unit], world: World) -> dict:
    from kaggle_kit.progress import progress_bar

    start = time.perf_counter()
    rows = sum(len(ranges[u.shard]) for u in mine)
    label = f"rank {world.rank}/{world.size}" if world.sharded else "predict"
    if world.sharded:
        job.echo(f"kaggle-kit: {label}: {len(mine)} shard(s), {rows} row(s) to predict")
    with progress_bar(rows, label, "row", enabled=job.progress, position=world.rank if world.sharded else None) as bar:
        for model in sorted({u.model for u in mine}):
            for unit in (u for u in mine if u.model == model):
                shard = ranges[unit.shard]
                probs = job.predict(model, list(shard))
                write_shard(folder / unit.name, shard, probs)
                bar.update(len(shard))
            job.release()
    return {"rank": world.rank, "rows": rows, "shards": len(mine), "seconds": round(time.perf_counter() - start, 2)}
