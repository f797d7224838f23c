"""kaggle-kit as a user gets it: the sdist and the wheel (built once here, by the code `upload code` runs) hold every
file of the package, the metadata is complete, and the installed wheel works with no source checkout in sight."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.metadata import Metadata

import kaggle_kit
from kaggle_kit.kernel.own_wheel import build_distributions

ROOT = Path(kaggle_kit.__file__).resolve().parent.parent
# Every module and subpackage of the installed copy, imported with only that copy on the path.
IMPORT_ALL = """
import importlib, json, pkgutil, sys
import kaggle_kit
names = [m.name for m in pkgutil.walk_packages(kaggle_kit.__path__, "kaggle_kit.") if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"file": kaggle_kit.__file__, "modules": names, "path": sys.path}))
"""


def package_files() -> set[str]:
    """What the package consists of: git's files under kaggle_kit/, tracked or new (ignored ones are a mistake)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "kaggle_kit"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return {name for name in listed if (ROOT / name).is_file()}


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """(sdist, wheel) of this tree."""
    return build_distributions(ROOT, tmp_path_factory.mktemp("dist"))


def wheel_files(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_wheel_and_sdist_hold_every_package_file(dists):
    sdist, wheel = dists
    expected = package_files()
    in_wheel = wheel_files(wheel)
    with tarfile.open(sdist) as archive:
        prefix = archive.getnames()[0].split("/")[0] + "/"
        in_sdist = {m.name.removeprefix(prefix) for m in archive.getmembers() if m.isfile()}
    for kind, names in (("wheel", set(in_wheel)), ("sdist", in_sdist)):
        shipped = {n for n in names if n.startswith("kaggle_kit/")}
        assert (kind, sorted(expected - shipped), sorted(shipped - expected)) == (kind, [], [])
    assert {"kaggle_kit/data/reading.py", "kaggle_kit/kernel/bootstrap.py.tmpl"} <= expected
    assert {"LICENSE", "README.md", "setup.cfg", "pyproject.toml", "PKG-INFO"} <= in_sdist
    # The template travels as its content (the package holds a symlink to kernels/, its one copy).
    template = (ROOT / "kernels" / "bootstrap.py.tmpl").read_bytes()
    assert in_wheel["kaggle_kit/kernel/bootstrap.py.tmpl"] == template


def test_wheel_metadata_is_complete_and_valid(dists):
    _, wheel = dists
    files = wheel_files(wheel)
    info = next(n.split("/")[0] for n in files if n.endswith(".dist-info/METADATA"))
    text = files[f"{info}/METADATA"].decode()
    meta = Metadata.from_email(text, validate=True)  # the same core-metadata checks `twine check` runs
    assert (str(meta.name), str(meta.version)) == ("kaggle-kit", kaggle_kit.__version__)
    assert "Programming Language :: Python :: 3.12" in meta.classifiers
    assert meta.license_files == ["LICENSE"] and f"{info}/licenses/LICENSE" in files
    assert meta.description_content_type == "text/markdown"
    body = Parser().parsestr(text).get_payload()
    assert body.strip() == (ROOT / "README.md").read_text(encoding="utf-8").strip()
    assert "kaggle-kit = kaggle_kit.cli:main" in files[f"{info}/entry_points.txt"].decode()


def test_uploaded_code_wheel_installs_offline_and_runs_without_the_checkout(dists, project, fake, tmp_path):
    """`upload code` ships the checked wheel; a kernel's offline `pip install --no-index` of it imports every stage."""
    from click.testing import CliRunner

    from kaggle_kit.cli import main

    before = sorted(ROOT.iterdir())
    result = CliRunner().invoke(main, ["upload", "code", "--dataset", "tester/kaggle-kit-code"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(ROOT.iterdir()) == before  # no build/ or *.egg-info left in the source checkout
    names = [c["body"]["name"] for c in fake.calls("StartBlobUpload")]
    assert names == [dists[1].name]
    staged = tmp_path / "kaggle-kit-code"
    staged.mkdir()
    (staged / names[0]).write_bytes(next(iter(fake.blobs.values())))
    shipped = wheel_files(staged / names[0])
    assert shipped.keys() == wheel_files(dists[1]).keys()
    assert {k: v for k, v in shipped.items() if not k.endswith("RECORD")} == {
        k: v for k, v in wheel_files(dists[1]).items() if not k.endswith("RECORD")}

    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(staged),
                    "--no-deps", "--target", str(target), "kaggle-kit"], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert Path(found["file"]).resolve() == (target / "kaggle_kit" / "__init__.py").resolve()
    venv = str(Path(sys.prefix).resolve())  # the test's own environment may sit inside the checkout (.venv/)
    assert not any(str(ROOT) == p or (p.startswith(f"{ROOT}{os.sep}") and not p.startswith(venv))
                   for p in found["path"])
    stages = {name.split(".")[1] for name in found["modules"]}
    assert stages == {p.parent.name for p in (ROOT / "kaggle_kit").glob("*/__init__.py")} | {
        p.stem for p in (ROOT / "kaggle_kit").glob("*.py") if p.stem != "__init__"}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "kaggle_kit.cli", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True)

    version = cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"kaggle-kit, version {kaggle_kit.__version__}"
    # A venv inside some other git repository: its commit is not kaggle-kit's (the manifest records none).
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "user's repo"], check=True)
    assert cli("init", "--username", "tester").returncode == 0
    built = cli("build-kernel", "infer", "--backbone", "tester/tiny-deberta-v3", "--out", "kb", "--json")
    assert built.returncode == 0, built.stderr
    script = (elsewhere / "kb" / json.loads(built.stdout)["metadata"]["code_file"]).read_text()
    assert script.startswith("# kaggle-kit kernel (infer)") and '"commit": null' in script


def test_installed_copy_repacks_into_the_same_wheel(dists, tmp_path):
    """`upload code` from a pip-installed kaggle-kit (no checkout to build from) ships the wheel it came from."""
    _, wheel = dists
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import sys; from pathlib import Path; from kaggle_kit.kernel.own_wheel import build_own_wheel; "
            "print(build_own_wheel(Path(sys.argv[1])))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(target)})
    assert done.returncode == 0, done.stderr[-2000:]
    repacked = Path(done.stdout.strip().splitlines()[-1])
    assert repacked.name == wheel.name
    original, again = wheel_files(wheel), wheel_files(repacked)
    assert again.keys() == original.keys()
    assert {k: v for k, v in again.items() if not k.endswith("RECORD")} == {
        k: v for k, v in original.items() if not k.endswith("RECORD")}
    record = again[next(k for k in again if k.endswith(".dist-info/RECORD"))].decode().splitlines()
    assert len(record) == len(again)  # one line a member, RECORD's own included

    (target / "kaggle_kit" / "metrics.py").write_text("# edited after install\n")
    edited = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out2")], cwd=tmp_path, capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(target)})
    assert edited.returncode != 0 and "kaggle_kit/metrics.py differs from what was installed" in edited.stderr
