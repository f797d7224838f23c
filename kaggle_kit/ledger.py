"""The runs ledger: which run (model dir, settings, data, commit, CV figure) produced which file, kernel version and
submission, and what Kaggle scored it. Embedded SQLite in the project's .kaggle-kit/ (no server).

Two commands at once lose nothing: WAL journal plus a busy timeout, and every write is one short transaction. The
schema is versioned (`user_version`) and marked as ours (`application_id`); a newer, foreign or corrupt database is
a one-line KitError and is never deleted or rewritten. Reading never creates the file; the first record does."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from kaggle_kit.atomic import file_sha256
from kaggle_kit.errors import KitError

LEDGER_FILE = Path(".kaggle-kit") / "runs.sqlite"  # in the project (where kaggle-kit runs), beside kernels.json
LEDGER_ENV = "KAGGLE_KIT_LEDGER"  # a path to keep the ledger elsewhere (one for several project folders; the tests)
APPLICATION_ID = 0x4B4B5255  # "KKRU": this file is a kaggle-kit runs ledger
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0  # another command writing: wait this long for the lock before giving up
SCORED = ("COMPLETE", "ERROR")  # a submission in one of these states is never asked about again
MOVE_ASIDE = "move it aside (kaggle-kit never deletes it); the next record starts a new ledger"

# Each entry migrates from the version before it; a released entry is never edited, only appended.
MIGRATIONS = {
    1: """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY, kind TEXT NOT NULL, model_dir TEXT NOT NULL, model_digest TEXT,
        config_digest TEXT, data_digest TEXT, git_commit TEXT, competition TEXT,
        metric TEXT, score REAL, score_kind TEXT, figures TEXT NOT NULL DEFAULT '{}', created TEXT NOT NULL);
    CREATE TABLE outputs (
        id INTEGER PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT NOT NULL, created TEXT NOT NULL);
    CREATE TABLE output_models (
        output_id INTEGER NOT NULL REFERENCES outputs(id), run_id INTEGER REFERENCES runs(id),
        model_dir TEXT NOT NULL, model_digest TEXT, direct INTEGER NOT NULL DEFAULT 1);
    CREATE TABLE uploads (
        id INTEGER PRIMARY KEY, model_dir TEXT NOT NULL, model_digest TEXT, target TEXT NOT NULL,
        created TEXT NOT NULL);
    CREATE TABLE pushes (
        id INTEGER PRIMARY KEY, kernel TEXT NOT NULL, version INTEGER NOT NULL, mounts TEXT NOT NULL,
        created TEXT NOT NULL);
    CREATE TABLE submissions (
        id INTEGER PRIMARY KEY, competition TEXT NOT NULL, ref INTEGER, file TEXT, file_sha256 TEXT,
        kernel TEXT, kernel_version INTEGER, message TEXT, status TEXT, public_score TEXT, created TEXT NOT NULL,
        scored TEXT);
    CREATE INDEX outputs_sha ON outputs(sha256);
    CREATE UNIQUE INDEX submissions_ref ON submissions(competition, ref);
    """,
}


def ledger_file() -> Path:
    """$KAGGLE_KIT_LEDGER, else .kaggle-kit/runs.sqlite in the current folder."""
    return Path(os.environ.get(LEDGER_ENV) or LEDGER_FILE)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def files_digest(paths: Iterable[Path]) -> str | None:
    """One sha256 over the files' contents, in the given order; None for no files."""
    paths = list(paths)
    if not paths:
        return None
    return hashlib.sha256("".join(file_sha256(p) for p in paths).encode()).hexdigest()


def config_digest(settings: dict | None) -> str | None:
    if settings is None:
        return None
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def model_digest(model_dir: Path) -> str | None:
    """What identifies one training's output: its descriptor files (a new training into the same folder changes
    them); a file (blend.json) is its own digest."""
    if model_dir.is_file():
        return file_sha256(model_dir)
    names = ("kaggle_kit_model.json", "metrics.json", "cv.json")
    found = [model_dir / n for n in names if (model_dir / n).is_file()]
    return files_digest(found)


def git_commit(where: Path = Path(".")) -> str | None:
    """HEAD's commit when `where` is in a git work tree (with '+dirty' when it has changes); quietly None else."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def _problem(path: Path, exc: sqlite3.Error) -> KitError:
    """One line for what SQLite said: another command holding the lock too long, else a file we cannot use."""
    if "locked" in str(exc) or "busy" in str(exc):
        return KitError(f"{path} stayed locked by another command for {BUSY_TIMEOUT_S:.0f}s",
                        hint="retry when the other kaggle-kit command has finished")
    return KitError(f"{path} is not a readable kaggle-kit runs ledger ({exc})", hint=MOVE_ASIDE)


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION under a write lock, so two first records cannot both create it."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        _check_ours(db, path)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[step].split(";"):
                if statement.strip():
                    db.execute(statement)
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _check_ours(db: sqlite3.Connection, path: Path) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    app = db.execute("PRAGMA application_id").fetchone()[0]
    tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if app != APPLICATION_ID and (tables or version):
        raise KitError(f"{path} is an SQLite database that kaggle-kit did not write", hint=MOVE_ASIDE)
    if version > SCHEMA_VERSION:
        raise KitError(f"{path} was written by a newer kaggle-kit (ledger schema {version}; this one reads up to "
                       f"{SCHEMA_VERSION})", hint="upgrade kaggle-kit (pip install -U kaggle-kit)")


@contextmanager
def connect(path: Path | None = None, create: bool = True) -> Iterator[sqlite3.Connection | None]:
    """The ledger, checked and migrated; None when it does not exist and `create` is False (reading)."""
    path = path or ledger_file()
    if not path.exists() and not create:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    db.row_factory = sqlite3.Row
    try:
        try:
            _check_ours(db, path)
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            _migrate(db, path)
        except sqlite3.DatabaseError as exc:
            raise _problem(path, exc) from None
        yield db
    finally:
        db.close()


@contextmanager
def _write(path: Path | None) -> Iterator[sqlite3.Connection]:
    path = path or ledger_file()
    with connect(path) as db:
        assert db is not None
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise _problem(path, exc) from None
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


def _where(path: Path) -> str:
    return str(path.resolve())


def record_run(kind: str, model_dir: Path, *, competition: str | None = None, metric: str | None = None,
               score: float | None = None, score_kind: str | None = None, figures: dict | None = None,
               settings: dict | None = None, data_files: Iterable[Path] = (), ledger: Path | None = None) -> int:
    """One run of train/cv/blend/average: its output (a model dir, or a file such as blend.json), the digests of its
    settings and data, the git commit, its headline CV/holdout figure (`score`, `score_kind` e.g. "holdout") and
    any other figures. Returns the run's id."""
    row = (kind, _where(model_dir), model_digest(model_dir), config_digest(settings), files_digest(data_files),
           git_commit(), competition, metric, None if score is None else float(score), score_kind,
           json.dumps(figures or {}, sort_keys=True, default=str), now())
    with _write(ledger) as db:
        return db.execute("INSERT INTO runs (kind, model_dir, model_digest, config_digest, data_digest, git_commit, "
                          "competition, metric, score, score_kind, figures, created) VALUES "
                          "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row).lastrowid


def _run_for(db: sqlite3.Connection, model_dir: Path, digest: str | None) -> int | None:
    """The newest run that wrote this model dir as it is now; a fold dir of a `cv` run belongs to that run."""
    where = _where(model_dir)
    found = db.execute("SELECT id FROM runs WHERE model_dir = ? AND (model_digest IS ? OR ? IS NULL) "
                       "ORDER BY id DESC LIMIT 1", (where, digest, digest)).fetchone()
    if found is None:
        found = db.execute("SELECT id FROM runs WHERE kind = 'cv' AND model_dir = ? ORDER BY id DESC LIMIT 1",
                           (_where(model_dir.parent),)).fetchone()
    return found["id"] if found else None


def record_output(path: Path, model_dirs: Iterable[Path], ledger: Path | None = None,
                  members: Iterable[Path] = ()) -> int:
    """A file `predict` wrote (by sha256) and the model dirs (or blend.json) that produced it, each linked to its
    run when the ledger has one; `members` (a blend's model dirs) are kept too, but the submission is the blend's."""
    sha = file_sha256(path)
    models = [(Path(m), model_digest(Path(m)), 1) for m in model_dirs]
    models += [(Path(m), model_digest(Path(m)), 0) for m in members]
    with _write(ledger) as db:
        output = db.execute("INSERT INTO outputs (path, sha256, created) VALUES (?, ?, ?)",
                            (_where(path), sha, now())).lastrowid
        for model_dir, digest, direct in models:
            db.execute("INSERT INTO output_models (output_id, run_id, model_dir, model_digest, direct) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (output, _run_for(db, model_dir, digest), _where(model_dir), digest, direct))
    return output


def record_upload(model_dir: Path, target: str, ledger: Path | None = None) -> None:
    """A model dir sent to Kaggle as `target` (a dataset owner/slug or a Kaggle Model handle), so a kernel that
    mounts it leads back to the run."""
    with _write(ledger) as db:
        db.execute("INSERT INTO uploads (model_dir, model_digest, target, created) VALUES (?, ?, ?, ?)",
                   (_where(model_dir), model_digest(model_dir), target, now()))


def record_push(kernel: str, version: int, mounts: Iterable[str], ledger: Path | None = None) -> None:
    """A kernel version Kaggle accepted and the sources (datasets, models, kernels, competitions) it mounts."""
    with _write(ledger) as db:
        db.execute("INSERT INTO pushes (kernel, version, mounts, created) VALUES (?, ?, ?, ?)",
                   (kernel, int(version), json.dumps(sorted(set(mounts))), now()))


def record_submission(competition: str, ref: int | None, message: str, *, file: Path | None = None,
                      kernel: str | None = None, kernel_version: int | None = None,
                      ledger: Path | None = None) -> None:
    """A submission Kaggle accepted: a file (by sha256) or a kernel version."""
    sha = file_sha256(file) if file is not None else None
    with _write(ledger) as db:
        db.execute("INSERT OR IGNORE INTO submissions (competition, ref, file, file_sha256, kernel, kernel_version, "
                   "message, status, created) VALUES (?, ?, ?, ?, ?, ?, ?, 'PENDING', ?)",
                   (competition, ref, _where(file) if file else None, sha, kernel, kernel_version, message, now()))


def record_scores(competition: str, subs: Iterable[dict], ledger: Path | None = None) -> int:
    """Status and public score of submissions Kaggle listed ({"ref", "status", "public_score"}), for those the
    ledger holds; returns how many changed. Nothing is created when there is no ledger."""
    subs = [s for s in subs if s.get("ref") is not None]
    if not subs or not (ledger or ledger_file()).exists():
        return 0
    changed = 0
    with _write(ledger) as db:
        for s in subs:
            changed += db.execute(
                "UPDATE submissions SET status = ?, public_score = ?, scored = ? WHERE competition = ? AND ref = ? "
                "AND (status IS NOT ? OR public_score IS NOT ?)",
                (s["status"], s.get("public_score") or None, now(), competition, int(s["ref"]), s["status"],
                 s.get("public_score") or None)).rowcount
    return changed


def pending_refs(competition: str, ledger: Path | None = None) -> list[int]:
    """Refs of this competition's submissions not scored yet (what `runs` asks Kaggle about)."""
    with connect(ledger, create=False) as db:
        if db is None:
            return []
        rows = db.execute("SELECT ref FROM submissions WHERE competition = ? AND ref IS NOT NULL AND "
                          f"(status IS NULL OR status NOT IN {SCORED})", (competition,)).fetchall()
    return [r["ref"] for r in rows]


def _run_dict(row: sqlite3.Row) -> dict:
    run = dict(row)
    run["figures"] = json.loads(run["figures"] or "{}")
    return run


def _mounted(mounts: list[str], target: str) -> bool:
    """A mount names the upload target, with or without a version (owner/slug[/N], model handle[/N])."""
    return any(m == target or m.startswith(target + "/") for m in mounts)


def runs_table(ledger: Path | None = None) -> list[dict]:
    """Every run with each submission it led to (a run with none, and a submission no run is known for, appear
    alone), newest first. Links: file submission -> predict output (sha256) -> model dirs -> runs; kernel
    submission -> pushed version's mounts -> uploaded model dirs -> runs."""
    with connect(ledger, create=False) as db:
        if db is None:
            return []
        runs = {r["id"]: _run_dict(r) for r in db.execute("SELECT * FROM runs")}
        outputs = {}
        for row in db.execute("SELECT o.sha256, o.path, m.run_id FROM outputs o JOIN output_models m "
                              "ON m.output_id = o.id WHERE m.direct = 1 ORDER BY o.id"):
            outputs.setdefault(row["sha256"], {"path": row["path"], "runs": set()})
            if row["run_id"] is not None:
                outputs[row["sha256"]]["runs"].add(row["run_id"])
        pushes = {(p["kernel"], p["version"]): json.loads(p["mounts"]) for p in db.execute("SELECT * FROM pushes")}
        uploads = [dict(u) for u in db.execute("SELECT * FROM uploads ORDER BY id")]
        subs = [dict(s) for s in db.execute("SELECT * FROM submissions ORDER BY id")]
        for u in uploads:
            u["run"] = _run_for(db, Path(u["model_dir"]), u["model_digest"])
    rows, linked = [], set()
    for sub in subs:
        if sub["file_sha256"]:
            run_ids = outputs.get(sub["file_sha256"], {}).get("runs", set())
        else:
            mounts = pushes.get((sub["kernel"], sub["kernel_version"]), [])
            run_ids = {u["run"] for u in uploads if u["run"] is not None and _mounted(mounts, u["target"])}
        submission = {k: sub[k] for k in ("competition", "ref", "message", "status", "public_score", "created",
                                          "file", "file_sha256", "kernel", "kernel_version")}
        for run_id in sorted(run_ids) or [None]:
            rows.append({"run": runs.get(run_id), "submission": submission, "date": sub["created"]})
            linked.add(run_id)
    rows += [{"run": run, "submission": None, "date": run["created"]} for i, run in runs.items() if i not in linked]
    return sorted(rows, key=lambda r: (r["date"], (r["run"] or {}).get("id", 0)), reverse=True)
