"""A pull or download that fails leaves no folder it made behind (empty or half-filled): not the versioned folder,
not --to, not the parents it created for --to; folders that existed before, and what is in them, stay."""

from __future__ import annotations

import pytest

from conftest import run_cli
from kaggle_kit.competition.spec import LMSYS


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("to", ["outputs", "runs/new/deep", "existing/sub"])
def test_a_failed_pull_leaves_no_folder(project, fake, to):
    """An unknown kernel's output list is a 403 (`kernels_output`): the pull fails in one line."""
    (project / "existing").mkdir()
    (project / "existing" / "mine.txt").write_text("kept")
    before = _tree(project)
    result = run_cli("pull", "tester/no-such-kernel", "--to", to)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert _tree(project) == before


def test_a_successful_pull_still_makes_its_folders(project, fake):
    """A kernel with one version (the shape `SaveKernel` leaves in the fake): its outputs land in new folders."""
    fake.kernels["tester/lmsys-train"] = {"versions": 1, "statuses": ["COMPLETE"]}
    result = run_cli("pull", "tester/lmsys-train", "--to", "runs/new")
    assert result.exit_code == 0, result.output
    assert (project / "runs" / "new" / "lmsys-train").is_dir()


@pytest.mark.parametrize("to", ["data", "comp/data/lmsys"])
def test_a_failed_download_leaves_no_folder(project, fake, to):
    """A corrupt archive (`competition_download_files` returns whatever bytes the server sent)."""
    fake.competitions[LMSYS.slug] = {"files": {"train.csv": b"x"}, "zip": b"not a zip archive",
                                     "deadline": "2026-12-31T23:59:00Z"}
    before = _tree(project)
    result = run_cli("download", "--to", to)
    assert result.exit_code == 1 and "corrupt" in result.output, result.output
    assert _tree(project) == before
