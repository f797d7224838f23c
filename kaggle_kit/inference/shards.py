"""Rank-sharded, resumable prediction: the rows are cut into shards of `shard_rows`, each (model, shard) is predicted
by one rank and written as its own file in OUT.parts/, and the shards are merged into input order once all exist.

Under torchrun (WORLD_SIZE > 1, one machine or several) each rank takes shards balanced by token count; one process
is world size 1 and goes through the same shards, so a stopped run of either kind resumes where it stopped.
Shards hold the models' probabilities before any post-processing: rules, --min-confidence, the non-finite fix and
validation run once, on the merged rows, exactly as without shards."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np

from kaggle_kit.atomic import atomic_path, write_text_atomic
from kaggle_kit.errors import KitError, UsageProblem
from kaggle_kit.inference.fingerprints import run_id
from kaggle_kit.inference.output_lock import ACTIVE, LOCK, PARTS_SUFFIX, acquire_lock, drop_lock_file, release_lock

log = logging.getLogger(__name__)


MANIFEST = "manifest.json"
WRITER = "kaggle-kit"  # in every manifest: what tells kaggle-kit's OUT.parts/ from a folder of someone else's
SHARD_FORMAT = 2  # 1: no run id or checksum in the shards (kaggle-kit 0.x before the shard checks)
BARRIER_TIMEOUT = timedelta(hours=6)  # ranks finish together when balanced; a resumed rank may wait on the others
SHARD_NAME = re.compile(r"m\d{2,}-s\d{5,}\.npz")
# atomic_path's temp files for our names: ".<name>.<mkstemp's random part>.tmp"
TEMP_NAME = re.compile(r"\.(m\d{2,}-s\d{5,}\.npz|manifest\.json)\.[A-Za-z0-9_]+\.tmp")
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)  # np.load of a cut file


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


@dataclass
class ShardJob:
    """What to predict: `predict(model_index, rows)` returns the model's probabilities for those input rows (it loads
    the model on first use); `costs()` each row's token count (the balancing weight; computed by rank 0 only, and
    only under torchrun); `fingerprint()` what the shards depend on (hashed files: computed by rank 0 only)."""

    kind: str
    rows: int
    num_labels: int
    shard_rows: int
    fingerprint: Callable[[], dict]  # {"input", "models", "backbones", "settings"}: all the shards' numbers hang on
    model_count: int
    predict: Callable[[int, list[int]], np.ndarray]
    release: Callable[[], None]
    costs: Callable[[], np.ndarray]
    cost_per_row: int = 1  # 2 with swap TTA
    progress: bool = True
    echo: Callable[[str], None] = field(default=lambda message: None)


def _problem_with(manifest: dict, wanted: dict) -> str | None:
    old = manifest.get("fingerprint", {})
    new = wanted["fingerprint"]
    if manifest.get("format") != SHARD_FORMAT or manifest.get("kind") != wanted["kind"]:
        return "were written by another command or kaggle-kit version"
    if old.get("input") != new["input"]:
        return "are of another input (other rows or texts)"
    if old.get("models") != new["models"]:
        return "are of other models (files of a model dir changed)"
    if old.get("backbones") != new["backbones"]:
        return "are of another backbone (the folder a model dir uses holds other files: a new version?)"
    changed = sorted(k for k in {*old.get("settings", {}), *new["settings"]}
                     if old.get("settings", {}).get(k) != new["settings"].get(k))
    if changed:
        return "were predicted with other settings (" + ", ".join(changed) + ")"
    return None


def _ours(manifest: object) -> bool:
    """A manifest kaggle-kit wrote, by its content (format 1 had no writer field)."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("fingerprint"), dict):
        return False
    if manifest.get("writer") == WRITER:
        return True
    return manifest.get("format") == 1 and manifest.get("kind") in ("predict", "pseudo-label")


def read_manifest(folder: Path) -> dict | None:
    """OUT.parts/'s manifest, None if there is none; KitError if that file is not kaggle-kit's (then nothing in the
    folder is taken for ours)."""
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        manifest = None
    if not _ours(manifest):
        raise KitError(f"{path} was not written by kaggle-kit, so {folder} is not kaggle-kit's to use or clean",
                       hint="move that folder away, or write the output under another name")
    return manifest


def own_files(folder: Path) -> list[Path]:
    """kaggle-kit's files in its OUT.parts/ by their exact names: shards, the manifest, the lock, our temp files."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_file() and not p.is_symlink() and (
        p.name in (MANIFEST, LOCK) or SHARD_NAME.fullmatch(p.name) or TEMP_NAME.fullmatch(p.name))]


def remove_parts(folder: Path) -> None:
    """Once OUT is written: our files and the folder go (a folder holding anything else stays), the lock last."""
    if not folder.is_dir():
        release_lock(folder)
        return
    if (folder / MANIFEST).exists():
        read_manifest(folder)  # never clean a folder whose manifest is not ours
    _remove_own(folder)
    drop_lock_file(folder)
    try:
        folder.rmdir()
    except OSError:  # someone else's file is in it: leave the folder, and that file, alone
        pass


def prepare_parts(folder: Path, job: ShardJob, overwrite: bool, echo: Callable[[str], None] | None = None
                  ) -> tuple[set[Unit], str]:
    """Create or check OUT.parts/ (the lock held); returns the units already finished there and the run id their
    shards must carry. Shards of another input, other models, another backbone or other settings are refused (or
    removed with --overwrite); a shard that is cut short, unreadable or another run's is predicted again. A changed
    --shard-rows alone keeps the shards: the earlier cut is used (job.shard_rows is set to it)."""
    manifest = {"writer": WRITER, "format": SHARD_FORMAT, "kind": job.kind, "rows": job.rows,
                "shard_rows": job.shard_rows, "fingerprint": job.fingerprint()}
    old = read_manifest(folder)
    if old is not None:
        problem = _problem_with(old, manifest)
        if problem is not None and not overwrite:
            raise UsageProblem(f"the shards in {folder} {problem}",
                               hint="pass --overwrite to discard them, or rerun with the same input, models and "
                                    "settings to finish that run")
        if problem is not None:
            _remove_own(folder)
            old = None
        elif old.get("shard_rows") != job.shard_rows and isinstance(old.get("shard_rows"), int) \
                and old["shard_rows"] > 0:
            (echo or log.warning)(f"kaggle-kit: resuming the shards of {old['shard_rows']} rows in {folder} (the "
                                  f"earlier run's --shard-rows; {job.shard_rows} applies to a new run)")
            job.shard_rows = manifest["shard_rows"] = old["shard_rows"]
    else:
        shards = [p for p in own_files(folder) if SHARD_NAME.fullmatch(p.name)]  # temp files alone go quietly
        foreign = [p.name for p in shards if _shard_run(p) is None]
        if foreign:
            raise KitError(f"{folder} holds {', '.join(sorted(foreign)[:3])} but no {MANIFEST}: not kaggle-kit's "
                           "shards, so not used nor removed", hint="move those files away, or choose another --out")
        if shards and not overwrite:
            raise UsageProblem(f"{folder} holds shard files but no {MANIFEST}", hint="pass --overwrite to discard them")
        _remove_own(folder)
    if old is None:
        write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=2, allow_nan=False))
    run = run_id(manifest["fingerprint"])
    ranges = shard_ranges(job.rows, job.shard_rows)
    done = set()
    for m in range(job.model_count):
        for s, rows in enumerate(ranges):
            path = folder / Unit(m, s).name
            if path.exists() and _load_shard(path, rows, job.num_labels, run) is None:
                (echo or log.warning)(f"kaggle-kit: {path.name} is cut short, unreadable or not this run's: "
                                      "predicting it again")
            elif path.exists():
                done.add(Unit(m, s))
    return done, run


def _remove_own(folder: Path) -> None:
    """Our files in OUT.parts/ but the lock (which goes last, when the run lets go)."""
    for path in own_files(folder):
        if path.name != LOCK:
            path.unlink(missing_ok=True)


def _shard_digest(run: str, rows: np.ndarray, probs: np.ndarray) -> str:
    return hashlib.sha256(run.encode() + np.ascontiguousarray(rows, dtype=np.int64).tobytes()
                          + np.ascontiguousarray(probs, dtype=np.float64).tobytes()).hexdigest()


def _shard_run(path: Path) -> str | None:
    """The run id a shard file carries if it is a whole kaggle-kit shard (its checksum holds), else None."""
    try:
        with np.load(path, allow_pickle=False) as data:
            run, rows, probs = str(data["run"]), data["rows"], data["probs"]
            return run if str(data["digest"]) == _shard_digest(run, rows, probs) else None
    except UNREADABLE:
        return None


def _load_shard(path: Path, rows: range, num_labels: int, run: str) -> np.ndarray | None:
    """The shard's probabilities if it is whole and this run's: its rows, its shape, its checksum, its run id."""
    try:
        with np.load(path, allow_pickle=False) as data:
            got_rows, probs = data["rows"], data["probs"]
            whole = (str(data["run"]) == run and np.array_equal(got_rows, np.arange(rows.start, rows.stop))
                     and probs.shape == (len(rows), num_labels)
                     and str(data["digest"]) == _shard_digest(run, got_rows, probs))
            return np.array(probs) if whole else None
    except UNREADABLE:
        return None


def write_shard(path: Path, rows: range, probs: np.ndarray, run: str) -> None:
    """One shard, atomically, with the run id and a checksum of its rows and probabilities."""
    index = np.arange(rows.start, rows.stop, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, rows=index, probs=probs, run=np.str_(run), digest=np.str_(_shard_digest(run, index, probs)))


def merge(folder: Path, job: ShardJob, run: str, world: World) -> list[np.ndarray]:
    """Every model's probabilities in input order, each shard checked whole and of this run again as it is read."""
    prob_sets = []
    ranges = shard_ranges(job.rows, job.shard_rows)
    for m in range(job.model_count):
        parts = []
        for s, rows in enumerate(ranges):
            path = folder / Unit(m, s).name
            probs = _load_shard(path, rows, job.num_labels, run) if path.exists() else None
            if probs is None:
                where = ("under torchrun over several nodes the output must be on a filesystem they all share"
                         if world.sharded else "something else changed that folder while this run wrote it")
                raise KitError(f"shard {path} is {'not whole' if path.exists() else 'missing'} after every rank "
                               "finished", hint=f"{where}; rerun to predict it again")
            parts.append(probs)
        prob_sets.append(np.concatenate(parts) if parts else np.zeros((0, job.num_labels)))
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
                if folder.exists() and not folder.is_dir():
                    raise KitError(f"{folder} is a file; kaggle-kit keeps the shards of this output there",
                                   hint="move that file away")
                if (folder / MANIFEST).exists():
                    read_manifest(folder)  # someone else's folder: not even a lock file goes in
                acquire_lock(folder)
                ACTIVE.add(folder.resolve())
                done, run = prepare_parts(folder, job, overwrite, job.echo)
                row_costs = job.costs() if world.sharded else np.ones(job.rows, dtype=np.int64)
                plan = {"done": sorted((u.model, u.shard) for u in done), "costs": row_costs, "run": run,
                        "shard_rows": job.shard_rows}
            except KitError as exc:  # sent as parts: an exception's hint does not survive pickling
                plan = {"error": (isinstance(exc, UsageProblem), exc.message, exc.hint)}
        plan = group.share(plan)
        if "error" in plan:
            usage, message, hint = plan["error"]
            raise (UsageProblem if usage else KitError)(message, hint=hint)
        job.shard_rows, run = plan["shard_rows"], plan["run"]
        done = {Unit(m, s) for m, s in plan["done"]}
        ranges = shard_ranges(job.rows, job.shard_rows)
        costs = {Unit(m, s): int(plan["costs"][r.start:r.stop].sum()) * job.cost_per_row + 1
                 for m in range(job.model_count) for s, r in enumerate(ranges) if Unit(m, s) not in done}
        mine = assign(costs, world.size)[world.rank]
        mine_report = _predict_share(job, folder, ranges, mine, world, run)
        reports = group.gather(mine_report)
        if world.rank != 0:
            return None, {**mine_report, "world_size": world.size}
        prob_sets = merge(folder, job, run, world)
        report = {"world_size": world.size, "shards": len(ranges) * job.model_count,
                  "shards_reused": len(done), "ranks": reports}
        return prob_sets, report
    except BaseException:
        if world.rank == 0:  # the shards stay for a rerun; the lock (and an empty folder) go
            drop_lock_file(folder)
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    finally:
        ACTIVE.discard(folder.resolve())
        group.close()


def _predict_share(job: ShardJob, folder: Path, ranges: list[range], mine: list[Unit], world: World, run: str
                   ) -> dict:
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
                write_shard(folder / unit.name, shard, probs, run)
                bar.update(len(shard))
            job.release()
    return {"rank": world.rank, "rows": rows, "shards": len(mine), "seconds": round(time.perf_counter() - start, 2)}
