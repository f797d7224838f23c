"""Fetch the competition's files through KaggleApi, unzip, verify against the spec; a good file is never clobbered."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

from kaggle_kit.atomic import missing_folders, remove_empty
from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.data.reading import read_test, read_train
from kaggle_kit.errors import DataError, RemoteError
from kaggle_kit.remote.client import call, get_api, transfer_timeout
from kaggle_kit.submission import expected_ids


def verify(folder: Path, spec: CompetitionSpec) -> dict:
    train = read_train(folder / spec.train_file, spec)
    test = read_test(folder / spec.test_file, spec)
    ids = expected_ids(spec, sample_submission=folder / spec.sample_submission_file)
    if ids != test.ids:
        raise DataError(f"{folder}: sample_submission ids differ from test ids")
    balance = {c: int((train.labels == k).sum()) for k, c in enumerate(spec.label_columns)}
    return {"train_rows": len(train), "test_rows": len(test), "class_balance": balance}


def download(spec: CompetitionSpec, to: Path, dry_run: bool = False) -> dict:
    api = get_api()
    listing = call("list competition files", lambda: api.competition_list_files(spec.slug), competition=spec.slug)
    files = getattr(listing, "files", None) or []
    if dry_run:
        return {"dry_run": True, "files": [f.name for f in files], "to": str(to)}
    try:
        return {"skipped": True, **verify(to, spec)}
    except DataError:
        pass  # missing or bad: fetch
    created = missing_folders(to)
    to.parent.mkdir(parents=True, exist_ok=True)  # temp dir beside the target: the final renames stay on one filesystem
    tmp = Path(tempfile.mkdtemp(prefix=".kk-download-", dir=to.parent))
    try:
        total = sum(getattr(f, "total_bytes", 0) or 0 for f in files)
        call("download competition files", lambda: api.competition_download_files(spec.slug, path=str(tmp), quiet=True),
             competition=spec.slug, timeout=transfer_timeout(total), retries=2)
        archives = list(tmp.glob("*.zip"))
        unpacked = tmp / "unpacked"
        for archive in archives:
            try:
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(unpacked)
            except zipfile.BadZipFile:
                raise RemoteError(f"the downloaded archive {archive.name} is corrupt",
                                  hint="run download again") from None
        summary = verify(unpacked, spec)
        to.mkdir(parents=True, exist_ok=True)
        for path in unpacked.iterdir():
            path.replace(to / path.name)  # same filesystem: an atomic rename per verified file
        return {"skipped": False, **summary}
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_empty(created)  # the folders this download made, if it put nothing in them
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
