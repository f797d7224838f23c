"""The kernel-side input resolver: today's /kaggle/input layout, the legacy one, and one line when nothing matches."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaggle_kit.kernel.inputs import (
    InputNotFound,
    find_competition,
    find_input,
    find_source,
    metadata_sources,
    mounted_listing,
    parse_location,
    parse_source,
    source_problem,
)

MODEL = "google/gemma-2/transformers/gemma-2-2b-it/2"


def _mkdir(root: Path, *parts: str) -> Path:
    folder = root.joinpath("input", *parts)
    folder.mkdir(parents=True)
    return folder


def test_parse_source_kinds():
    assert parse_source("tester/extra-data").kind == "dataset"
    kernel = parse_source("kernel:tester/kaggle-kit-train")
    assert (kernel.kind, kernel.ref, kernel.metadata_key) == ("kernel", "tester/kaggle-kit-train", "kernel_sources")
    model = parse_source(MODEL)
    assert (model.kind, model.owner, model.slug, model.framework, model.variation, model.version) == (
        "model", "google", "gemma-2", "transformers", "gemma-2-2b-it", 2)
    assert parse_source(MODEL.rsplit("/", 1)[0]).version is None
    assert model.metadata_key == "model_sources"


@pytest.mark.parametrize("bad", ["slug", "a/b/c", "a//b", "kernel:a/b/c", f"{MODEL.rsplit('/', 1)[0]}/latest",
                                 "a/b/c/d/e/f", "a/b c"])
def test_parse_source_refuses_in_one_line(bad):
    problem = source_problem(bad)
    assert problem and "\n" not in problem


def test_today_layout_is_found_first(tmp_path):
    today = _mkdir(tmp_path, "datasets", "tester", "extra-data")
    legacy = _mkdir(tmp_path, "extra-data")
    assert find_source("tester/extra-data", tmp_path) == today
    today.rmdir()
    assert find_source("tester/extra-data", tmp_path) == legacy


@pytest.mark.parametrize("layout", ["today", "legacy"])
def test_every_kind_in_both_layouts(tmp_path, layout):
    for ref in ("tester/extra-data", "kernel:tester/kaggle-kit-train", MODEL):
        source = parse_source(ref)
        folder = source.layouts(tmp_path)[layout]
        folder.mkdir(parents=True)
        assert find_source(ref, tmp_path) == folder
    comp = "competitions/lmsys-chatbot-arena" if layout == "today" else "lmsys-chatbot-arena"
    folder = _mkdir(tmp_path, *comp.split("/"))
    assert find_competition("lmsys-chatbot-arena", tmp_path) == folder


def test_model_without_version_takes_the_newest_mounted(tmp_path):
    for version in ("1", "2", "10"):
        _mkdir(tmp_path, "models", *MODEL.split("/")[:4], version)
    assert find_source(MODEL.rsplit("/", 1)[0], tmp_path).name == "10"


def test_nothing_mounted_is_one_line_listing_two_levels(tmp_path):
    _mkdir(tmp_path, "competitions", "lmsys-chatbot-arena")
    _mkdir(tmp_path, "datasets", "someone", "other-data")
    with pytest.raises(InputNotFound) as caught:
        find_source("tester/extra-data", tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert "dataset tester/extra-data is not mounted" in message
    assert str(tmp_path / "input" / "datasets" / "tester" / "extra-data") in message
    assert "competitions/{lmsys-chatbot-arena}, datasets/{someone}" in message
    assert mounted_listing(tmp_path / "nowhere").endswith("does not exist")


def test_find_input_locations(tmp_path):
    folder = _mkdir(tmp_path, "notebooks", "tester", "kaggle-kit-train")
    (folder / "model").mkdir()
    assert parse_location("kernel:tester/kaggle-kit-train:model")[1] == "model"
    assert find_input("kernel:tester/kaggle-kit-train:model", tmp_path) == folder / "model"
    with pytest.raises(InputNotFound, match=r"kernel tester/kaggle-kit-train has no oof.csv \(it holds: model\)"):
        find_input("kernel:tester/kaggle-kit-train:oof.csv", tmp_path)
    with pytest.raises(InputNotFound, match="must be owner/slug"):
        find_input("nonsense", tmp_path)


def test_metadata_sources_split_by_kind():
    out = metadata_sources(["tester/model-data", MODEL, None, "kernel:tester/kaggle-kit-train", "tester/model-data"])
    assert out == {"dataset_sources": ["tester/model-data"], "model_sources": [MODEL],
                   "kernel_sources": ["tester/kaggle-kit-train"]}
    with pytest.raises(ValueError, match="has no version"):
        metadata_sources([MODEL.rsplit("/", 1)[0]])



@pytest.mark.parametrize("layout", ["today", "legacy"])
def test_bootstrap_finds_the_wheels_dataset_in_both_layouts(project, layout):
    from kaggle_kit.config import load_config
    from kaggle_kit.errors import KitError
    from kaggle_kit.kernel.build import build_kernel, run_kernel_locally

    (project / "kaggle-kit.toml").write_text((project / "kaggle-kit.toml").read_text().replace(
        "[datasets]\n", '[datasets]\nwheels = "tester/kk-wheels"\n'))
    build = build_kernel("train", load_config(), project / "kb")
    script = build.script.read_text()
    for key in ('"minimum": {', '"packages": {'):  # the lock now asks for a package this interpreter lacks
        assert script.count(key) == 1
        script = script.replace(key, key + '"kk-absent-pkg": "1.0", ')
    build.script.write_text(script)
    wheels = project / "kk-wheels"
    wheels.mkdir()
    with pytest.raises(KitError, match=r"the wheels dataset tester/kk-wheels has no kk-absent-pkg==1\.0"):
        run_kernel_locally(build.folder, {"kk-wheels": wheels}, project / "w", layout=layout)
    with pytest.raises(KitError, match=r"dataset tester/kk-wheels is not mounted \(looked in .*\); .* holds: nothing"):
        run_kernel_locally(build.folder, {}, project / "w2", layout=layout)


def test_run_kernel_input_names_match_the_kernels_sources():
    from kaggle_kit.errors import UsageProblem
    from kaggle_kit.kernel.build import kernel_sources_of, source_for_input

    sources = kernel_sources_of({"competition_sources": ["lmsys-chatbot-arena"], "dataset_sources": ["tester/data"],
                                 "model_sources": [MODEL], "kernel_sources": ["tester/data"]})
    assert source_for_input("lmsys-chatbot-arena", sources).kind == "competition"
    assert source_for_input(MODEL, sources).kind == "model"
    assert source_for_input("kernel:tester/data", sources).kind == "kernel"
    with pytest.raises(UsageProblem, match="--input data names several of its sources"):
        source_for_input("data", sources)  # a dataset and a kernel share the slug: name it in full
    with pytest.raises(UsageProblem, match=r"--input typo is not one of its sources \(this kernel's sources: "):
        source_for_input("typo", sources)


def test_run_kernel_refuses_two_inputs_on_one_mount(project, tmp_path):
    import json

    from kaggle_kit.errors import UsageProblem
    from kaggle_kit.kernel.build import run_kernel_locally

    build = tmp_path / "b"
    build.mkdir()
    (build / "kernel-metadata.json").write_text(json.dumps({"code_file": "k.py", "dataset_sources": ["tester/data"],
                                                            "competition_sources": ["data"]}))
    (build / "k.py").write_text("print('x')")
    with pytest.raises(UsageProblem, match=r"--input tester/data and data would be mounted at the same place"):
        run_kernel_locally(build, {"tester/data": tmp_path, "data": tmp_path}, tmp_path / "w", layout="legacy")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".w-root")] == []
