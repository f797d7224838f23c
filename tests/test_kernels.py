import base64
import io
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import one_line_error, run_cli
from kaggle_kit.cli import main
from kaggle_kit.config import config_from_dict, load_config
from kaggle_kit.errors import KitError, RemoteError
from kaggle_kit.kernel.build import build_kernel, kernel_metadata
from kaggle_kit.remote.client import call
from kaggle_kit.remote.kernels import pull_kernel, push_kernel, wait_for_kernel


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_build_is_reproducible_and_has_metadata(project):
    cfg = load_config()
    a = build_kernel("infer", cfg, project / "a")
    b = build_kernel("infer", cfg, project / "b")
    assert a.script.read_bytes() == b.script.read_bytes()
    meta = json.loads((project / "a" / "kernel-metadata.json").read_text())
    assert meta["id"] == "tester/lmsys-infer" and meta["enable_internet"] is False and meta["is_private"] is True
    assert meta["competition_sources"] == ["lmsys-chatbot-arena"]
    assert meta["kernel_sources"] == ["tester/lmsys-train"]  # infer reads train's output when no model dataset is set
    with pytest.raises(KitError, match="already holds a build"):
        build_kernel("infer", cfg, project / "a")


def test_bundle_carries_no_secrets(project, monkeypatch, tmp_path):
    monkeypatch.setenv("KAGGLE_KEY", "SECRET-KEY-123")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "SECRET-TOKEN-456")
    monkeypatch.setenv("WANDB_API_KEY", "SECRET-WANDB-789")
    (project / ".env").write_text("WANDB_API_KEY=SECRET-WANDB-789\n")
    (project / "kaggle.json").write_text('{"username": "tester", "key": "SECRET-KEY-123"}')
    cfg_dir = str(tmp_path / "kaggle-config")  # a config dir of this test's own: no kaggle.json left for others
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", cfg_dir)
    os.makedirs(cfg_dir, exist_ok=True)
    with open(os.path.join(cfg_dir, "kaggle.json"), "w") as fh:
        fh.write('{"username": "tester", "key": "SECRET-KEY-123"}')
    build = build_kernel("train", load_config(), project / "build")
    script = build.script.read_text()
    blob = script.split('ARCHIVE = "')[1].split('"')[0]
    names = zipfile.ZipFile(io.BytesIO(base64.b64decode(blob))).namelist()
    everything = script + "".join(zipfile.ZipFile(io.BytesIO(base64.b64decode(blob))).read(n).decode() for n in names)
    for secret in ("SECRET-KEY-123", "SECRET-TOKEN-456", "SECRET-WANDB-789", "0123456789abcdef"):
        assert secret not in everything
    data = {"kaggle_kit/competition/competitions.toml"}  # the specs and the recipes: data, read by the kernel
    assert all(n.startswith("kaggle_kit/") and n.endswith(".py") for n in names
               if n not in data and not (n.startswith("kaggle_kit/recipes/") and n.endswith(".toml")))


def test_metadata_validation_before_sending(project):
    cfg = load_config()
    cfg.kernel.train_slug = "abc"
    with pytest.raises(KitError, match="too short"):
        kernel_metadata("train", cfg)
    cfg = load_config()
    cfg.datasets.backbone = "not a ref"
    with pytest.raises(KitError, match=r"\[datasets\] backbone: input 'not a ref' has an empty or odd part"):
        kernel_metadata("train", cfg)
    cfg.datasets.backbone = "google/gemma-2/transformers/gemma-2-2b-it"
    with pytest.raises(KitError, match="has no version: kernel-metadata's model_sources need"):
        kernel_metadata("train", cfg)
    cfg.datasets.backbone, cfg.kernel.accelerator = "tester/tiny-deberta-v3", "NvidiaTeslaP100"
    with pytest.raises(KitError, match=r"P100 cannot run today's Kaggle image .*NvidiaTeslaT4 \(T4 x2\) or NvidiaL4"):
        kernel_metadata("train", cfg)


def test_train_and_infer_kernels_run_locally(project, small_files, tiny_backbone):
    comp = small_files.train.parent
    assert run("build-kernel", "train", "--out", "kb/train").exit_code == 0
    train_out = run("run-kernel", "kb/train", "--input", f"lmsys-chatbot-arena={comp}", "--input",
                    f"tiny-deberta-v3={tiny_backbone}", "--working", "work-train", "--json")
    assert train_out.exit_code == 0, train_out.output
    assert (project / "work-train" / "model" / "kaggle_kit_model.json").exists()
    manifest = json.loads((project / "work-train" / "kaggle_kit_manifest.json").read_text())
    assert manifest["task"] == "train" and len(manifest["config_sha256"]) == 64
    assert run("build-kernel", "infer", "--out", "kb/infer").exit_code == 0
    infer_out = run("run-kernel", "kb/infer", "--input", f"lmsys-chatbot-arena={comp}", "--input",
                    f"tiny-deberta-v3={tiny_backbone}", "--input", f"lmsys-train={project / 'work-train'}",
                    "--working", "work-infer")
    assert infer_out.exit_code == 0, infer_out.output
    assert run("validate", "work-infer/submission.csv", "--test", small_files.test).exit_code == 0

    # The same infer kernel with the backbone as a Kaggle Model, in the legacy layout (input/<slug>, input/<model>/..)
    handle = "tester/tiny-deberta/transformers/default/1"
    built = run("build-kernel", "infer", "--out", "kb/infer-model", "--backbone", handle, "--json")
    assert built.exit_code == 0, built.output
    meta = json.loads(built.stdout)["metadata"]
    assert meta["model_sources"] == [handle] and meta["dataset_sources"] == []
    legacy = run("run-kernel", "kb/infer-model", "--legacy-layout", "--input", f"lmsys-chatbot-arena={comp}",
                 "--input", f"{handle}={tiny_backbone}", "--input", f"tester/lmsys-train={project / 'work-train'}",
                 "--working", "work-legacy")
    assert legacy.exit_code == 0, legacy.output
    assert run("validate", "work-legacy/submission.csv", "--test", small_files.test).exit_code == 0
    missing = run("run-kernel", "kb/infer-model", "--input", f"lmsys-chatbot-arena={comp}",
                  "--input", f"tester/lmsys-train={project / 'work-train'}", "--working", "work-missing")
    assert missing.exit_code == 1 and not (project / "work-missing" / "submission.csv").exists()
    assert (f"kaggle-kit: Kaggle Model {handle} is not mounted (looked in " in missing.output
            and "holds: competitions/{lmsys-chatbot-arena}, notebooks/{tester}" in missing.output), missing.output
    assert "Traceback" not in (project / "work-missing" / "kernel.log").read_text()


def test_infer_metadata_internet_off_image_pinned_and_accelerators(project):
    (project / "kaggle-kit.toml").write_text((project / "kaggle-kit.toml").read_text().replace(
        "[kernel]\n", '[kernel]\ntrain_internet = true\nimage_pinning = "latest"\naccelerator = "NvidiaL4"\n'))
    infer = kernel_metadata("infer", load_config())
    train = kernel_metadata("train", load_config())
    assert infer["enable_internet"] is False and train["enable_internet"] is True
    assert infer["docker_image_pinning_type"] == train["docker_image_pinning_type"] == "latest"
    assert infer["machine_shape"] == "NvidiaL4"
    assert kernel_metadata("infer", config_from_dict({"username": "tester"}))["docker_image_pinning_type"] == "original"
    (project / "kaggle-kit.toml").write_text((project / "kaggle-kit.toml").read_text().replace(
        'accelerator = "NvidiaL4"', 'accelerator = "NvidiaTeslaP100"'))
    result = run("build-kernel", "train")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert "NvidiaTeslaT4 (T4 x2) or NvidiaL4" in result.output and not (project / "kernels").exists()


def test_push_status_pull_against_fake(project, fake):
    build = build_kernel("train", load_config(), project / "b")
    result = push_kernel(build)
    assert result["version"] == 1
    body = fake.calls("SaveKernel")[0]["body"]
    assert body["slug"] == "tester/lmsys-train" and body["enableGpu"] is True and body["enableInternet"] is False
    assert body["datasetDataSources"] == ["tester/tiny-deberta-v3"]
    assert body["competitionDataSources"] == ["lmsys-chatbot-arena"]
    assert body["machineShape"] == "NvidiaTeslaT4"
    fake.kernel_status["tester/lmsys-train"] = [("QUEUED", ""), ("RUNNING", ""), ("COMPLETE", "")]
    seen = []
    status, _ = wait_for_kernel("tester/lmsys-train", interval=0.01, echo=seen.append, sleep=lambda s: None)
    assert status == "COMPLETE" and [s.split(": ")[1].split(" ")[0] for s in seen] == ["QUEUED", "RUNNING", "COMPLETE"]
    fake.kernel_outputs["tester/lmsys-train"] = [("submission.csv", b"id,x\n1,2\n"), ("../../evil.txt", b"pwned")]
    with pytest.raises((RemoteError, ValueError)):
        pull_kernel("tester/lmsys-train", project / "outputs")
    assert not (project / "evil.txt").exists() and not (project.parent / "evil.txt").exists()
    assert not (project / "outputs").exists()  # a failed pull leaves no folder it made
    fake.kernel_outputs["tester/lmsys-train"] = [("submission.csv", b"id,x\n1,2\n")]
    folder, files = pull_kernel("tester/lmsys-train", project / "outputs")
    assert (folder / "submission.csv").read_bytes() == b"id,x\n1,2\n" and folder.name == "lmsys-train"


def test_kernel_error_exits_1_with_message(project, fake):
    fake.kernel_status["tester/lmsys-train"] = [("ERROR", "CUDA out of memory")]
    result = run("status", "tester/lmsys-train")
    assert result.exit_code == 1 and "CUDA out of memory" in result.output


def test_push_error_field_and_dry_run(project, fake):
    fake.fail_next["SaveKernel"] = (200, {"error": "Notebook slug already taken"})
    result = run("push-kernel", "train")
    assert result.exit_code == 1 and "slug already taken" in result.output
    before = len(fake.requests)
    assert run("push-kernel", "train", "--dry-run").exit_code == 0
    assert len(fake.requests) == before


def test_429_then_success_and_401(project, fake):
    fake.kernel_status["tester/lmsys-train"] = [("COMPLETE", "")]  # a kernel that exists on Kaggle
    fake.fail_next["GetKernelSessionStatus"] = (429, {"code": 429, "message": "slow down"}, {"Retry-After": "0"})
    assert run("status", "tester/lmsys-train").exit_code == 0
    assert len(fake.calls("GetKernelSessionStatus")) == 2
    fake.fail_next["GetKernelSessionStatus"] = (503, {"code": 503, "message": "backend unavailable"})
    assert run("status", "tester/lmsys-train").exit_code == 0
    assert len(fake.calls("GetKernelSessionStatus")) == 4
    fake.fail_next["SaveKernel"] = (401, {"code": 401, "message": "Unauthenticated"})
    result = run("push-kernel", "train")
    assert result.exit_code == 1 and "credentials (401)" in result.output and "0123456789abcdef" not in result.output


def test_hanging_server_hits_our_timeout(fake):
    from kaggle_kit.remote.client import get_api

    fake.hang.add("GetKernelSessionStatus")
    api = get_api()
    with pytest.raises(RemoteError, match="no answer within 1s"):
        call("status", lambda: api.kernels_status("tester/lmsys-train"), timeout=1)


def test_notebook_build_is_reproducible_and_runs(project, small_files, tiny_backbone):
    cfg = load_config()
    a = build_kernel("train", cfg, project / "nb1", notebook=True)
    b = build_kernel("train", cfg, project / "nb2", notebook=True)
    assert a.script.suffix == ".ipynb" and a.script.read_bytes() == b.script.read_bytes()
    assert a.metadata["kernel_type"] == "notebook"
    comp = small_files.train.parent
    result = run("run-kernel", project / "nb1", "--input", f"lmsys-chatbot-arena={comp}", "--input",
                 f"tiny-deberta-v3={tiny_backbone}", "--working", "nb-work")
    assert result.exit_code == 0, result.output
    assert (project / "nb-work" / "model" / "metrics.json").exists()


def test_local_run_refuses_writes_into_inputs(project, tmp_path):
    from kaggle_kit.kernel.build import run_kernel_locally

    build = project / "evil"
    build.mkdir()
    (build / "kernel-metadata.json").write_text(json.dumps({"code_file": "k.py", "dataset_sources": ["tester/data"]}))
    (build / "k.py").write_text("import os\n"
                                "open(os.path.join(os.environ['KAGGLE_KIT_ROOT'], 'input', 'datasets', 'tester', "
                                "'data', 'x.txt'), 'w').write('x')\n")
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(KitError, match="wrote into input/datasets/tester/data"):
        run_kernel_locally(build, {"data": data}, project / "evil-work")


def test_train_kernel_relaunches_under_torchrun(project, small_files, tiny_backbone, monkeypatch):
    monkeypatch.setenv("KAGGLE_KIT_NPROC", "2")  # stands in for Kaggle's two T4s
    assert run("build-kernel", "train", "--out", "kb/ddp").exit_code == 0
    result = run("run-kernel", "kb/ddp", "--input", f"lmsys-chatbot-arena={small_files.train.parent}", "--input",
                 f"tiny-deberta-v3={tiny_backbone}", "--working", "work-ddp")
    assert result.exit_code == 0, result.output
    metrics = json.loads((project / "work-ddp" / "model" / "metrics.json").read_text())
    assert metrics["world_size"] == 2


def test_push_reports_invalid_sources(project, fake):
    fake.fail_next["SaveKernel"] = (200, {"ref": "/code/tester/lmsys-train", "versionNumber": 1, "error": "",
                                          "invalidDatasetSources": ["tester/tiny-deberta-v3"]})
    result = run("push-kernel", "train")
    assert result.exit_code == 1 and "invalid sources" in result.output and "tester/tiny-deberta-v3" in result.output


def test_bundle_never_contains_the_remote_package():
    from kaggle_kit.kernel.build import PACKAGE_DIR, package_archive

    assert (PACKAGE_DIR / "remote" / "kernels.py").exists()
    names = zipfile.ZipFile(io.BytesIO(package_archive())).namelist()
    assert "kaggle_kit/kernel/build.py" in names and not [n for n in names if n.startswith("kaggle_kit/remote/")]


def test_push_refuses_while_a_version_runs(project, fake):
    for state in ("QUEUED", "RUNNING"):
        fake.kernel_status["tester/lmsys-train"] = [(state, "")]
        result = run("push-kernel", "train")
        assert result.exit_code == 1 and f"still {state}" in result.output and "--force" in result.output
        assert len(result.output.strip().splitlines()) == 1 and fake.calls("SaveKernel") == []
    forced = run("push-kernel", "train", "--force")
    assert forced.exit_code == 0, forced.output
    fake.fail_next["GetKernelSessionStatus"] = (404, {"code": 404, "message": "Not found"})  # a kernel never pushed
    assert run("push-kernel", "train").exit_code == 0 and len(fake.calls("SaveKernel")) == 2
    saved = json.loads((project / ".kaggle-kit" / "kernels.json").read_text())["tester/lmsys-train"]["versions"]
    assert [v["version"] for v in saved] == [1, 2]


def test_push_dry_run_writes_nothing(project, fake):
    result = run("push-kernel", "train", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["would_build"] == "kernels/build/lmsys-train"
    assert not (project / "kernels").exists() and not (project / ".kaggle-kit").exists()
    assert run("build-kernel", "train").exit_code == 0
    script = project / "kernels" / "build" / "lmsys-train" / "lmsys-train.py"
    script.write_text(script.read_text() + "# a hand edit\n")
    edited = run("push-kernel", "train", "--dry-run")  # says what the real push would: refused (issue 30)
    assert edited.exit_code == 1 and "differs outside its embedded parts" in edited.output, edited.output
    assert script.read_text().endswith("# a hand edit\n") and fake.requests == []
    assert list(Path(tempfile.gettempdir()).iterdir()) == []  # the temp build is gone too


def test_push_wait_records_the_final_status(project, fake):
    fake.kernel_status["tester/lmsys-train"] = [("COMPLETE", ""), ("RUNNING", ""), ("COMPLETE", "")]
    result = run("push-kernel", "train", "--wait", "--interval", "0.01")
    assert result.exit_code == 0, result.output
    saved = json.loads((project / ".kaggle-kit" / "kernels.json").read_text())["tester/lmsys-train"]["versions"]
    assert saved[-1]["version"] == 1 and saved[-1]["status"] == "COMPLETE"


def test_bad_kaggle_kit_timeout_is_one_line(project):
    import subprocess
    import sys

    env = {**os.environ, "KAGGLE_KIT_TIMEOUT": "abc"}
    proc = subprocess.run([sys.executable, "-m", "kaggle_kit.cli", "doctor", "--offline"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "KAGGLE_KIT_TIMEOUT: KAGGLE_KIT_TIMEOUT='abc' is not a finite positive number" in proc.stdout


def test_run_kernel_refuses_a_working_folder_with_files_and_streams_an_ordered_log(project, small_files, tmp_path):
    from kaggle_kit.kernel.build import _run_logged, run_kernel_locally

    build = tmp_path / "b"
    build.mkdir()
    (build / "kernel-metadata.json").write_text('{"code_file": "k.py"}')
    (build / "k.py").write_text("print('x')")
    working = tmp_path / "w"
    working.mkdir()
    (working / "submission.csv").write_text("precious")
    with pytest.raises(KitError, match="already holds files"):
        run_kernel_locally(build, {}, working)
    assert (working / "submission.csv").read_text() == "precious"
    seen = []
    code = ("import sys\nfor i in range(3):\n    print(f'out {i}', flush=True)\n"
            "    print(f'err {i}', file=sys.stderr, flush=True)\n")
    returncode, last = _run_logged([sys.executable, "-c", code], tmp_path, dict(os.environ), 60, seen.append)
    assert returncode == 0 and last == "err 2"
    assert seen == ["out 0", "err 0", "out 1", "err 1", "out 2", "err 2"]
    assert (tmp_path / "kernel.log").read_text().splitlines() == seen
    assert not list(tmp_path.glob(".w-root*"))  # the simulated /kaggle root is removed after a run


def test_train_kernel_applies_its_recipe(project, small_files, tiny_backbone):
    """The kernel embeds every key; only what kaggle-kit.toml set may win over the recipe (as on the command line)."""
    toml = project / "kaggle-kit.toml"
    toml.write_text(toml.read_text() + 'recipe = "cpu-smoke"\n')
    shown = json.loads(run("config", "--json").stdout)
    assert shown["train"]["learning_rate"] == 3e-4 and shown["sources"]["train.learning_rate"] == "recipe cpu-smoke"
    assert shown["train"]["max_len"] == 128 and shown["sources"]["train.max_len"] == "kaggle-kit.toml"
    assert shown["sources"]["train.seed"] == "default"
    built = run("build-kernel", "train", "--out", "kb/recipe", "--set", "train.seed=7", "--set", "train.warmup=0.2")
    assert built.exit_code == 0, built.output
    result = run("run-kernel", "kb/recipe", "--input", f"lmsys-chatbot-arena={small_files.train.parent}", "--input",
                 f"tiny-deberta-v3={tiny_backbone}", "--working", "work-recipe")
    assert result.exit_code == 0, result.output
    info = json.loads((project / "work-recipe" / "model" / "kaggle_kit_model.json").read_text())
    used = info["train_config"]
    assert (used["learning_rate"], used["batch_size"], used["length_head"]) == (3e-4, 4, True)
    assert (used["max_len"], used["max_steps"]) == (128, 4)  # kaggle-kit.toml still wins
    assert (used["seed"], used["warmup"]) == (7, 0.2)  # --set at build time, over the recipe's warmup 0.1
    assert info["recipe"]["applied"]["learning_rate"] == 3e-4 and "max_len" not in info["recipe"]["applied"]
    assert info["recipe"]["sources"]["max_steps"] == "kaggle-kit.toml"
    assert info["recipe"]["sources"]["warmup"] == "--set" and info["recipe"]["sources"]["backbone"] == "kernel input"


def test_run_kernel_on_a_folder_that_is_not_a_build(tmp_path):
    (tmp_path / "notes").mkdir()
    one_line_error(run_cli("run-kernel", tmp_path / "notes"), "is not a kernel build")


def test_kernel_failure_ends_in_one_clean_line(tmp_path):
    """The streamed log keeps the kernel's traceback; the command's last line says what failed."""
    build = tmp_path / "kb"
    build.mkdir()
    (build / "kernel-metadata.json").write_text(json.dumps({"id": "tester/x", "code_file": "k.py"}))
    (build / "k.py").write_text('raise RuntimeError("the model dir is missing:\\n  /kaggle/input/m\\n  (pulled?)")\n')
    result = run_cli("run-kernel", build, "--working", tmp_path / "w")
    assert result.exit_code == 1 and "| Traceback" in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: kernel failed (exit 1): RuntimeError: the model dir is missing"), last
    assert "Traceback" in (tmp_path / "w" / "kernel.log").read_text()


def test_build_kernel_train_without_a_backbone_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text('username = "tester"\n')
    one_line_error(run_cli("build-kernel", "train", "--out", tmp_path / "kb"), "needs a backbone", code=2)
    assert not (tmp_path / "kb").exists()


def test_push_kernel_pushes_the_tested_build_or_names_what_differs(project, fake):
    """build -> run -> push: what was built (and run) is what is pushed; a build the config no longer makes is refused
    with what differs, and replaced only with --rebuild."""
    fake.session_polls = 0  # each pushed version ends at once: this test is about which bytes go out, not waiting
    build = project / "kernels" / "build" / "lmsys-train"
    assert run_cli("build-kernel", "train").exit_code == 0
    built = (build / "lmsys-train.py").read_text()
    pushed = run_cli("push-kernel", "train")
    assert pushed.exit_code == 0, pushed.output
    assert fake.kernels["tester/lmsys-train"]["last"]["text"] == built  # the tested bytes went to Kaggle

    (build / "lmsys-train.py").write_text(built + "# tried a fix here\n")
    line = one_line_error(run_cli("push-kernel", "train"), "lmsys-train.py differs outside its embedded parts")
    assert "--rebuild" in line and (build / "lmsys-train.py").read_text().endswith("# tried a fix here\n")

    assert run_cli("build-kernel", "train", "--overwrite").exit_code == 0
    meta = json.loads((build / "kernel-metadata.json").read_text())
    (build / "kernel-metadata.json").write_text(json.dumps({**meta, "is_private": False}))
    one_line_error(run_cli("push-kernel", "train", "--dry-run"), "kernel-metadata.json is_private is False, the config "
                                                             "gives True")

    assert run_cli("build-kernel", "train", "--overwrite").exit_code == 0
    toml = (project / "kaggle-kit.toml").read_text()
    (project / "kaggle-kit.toml").write_text(toml.replace("max_steps = 4", "max_steps = 5"))
    one_line_error(run_cli("push-kernel", "train"), "the embedded config differs in train.max_steps")
    assert len(fake.calls("SaveKernel")) == 1
    rebuilt = run_cli("push-kernel", "train", "--rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output
    (build / "kernel-metadata.json").write_text("{")  # a corrupt build: one line, replaced only with --rebuild
    one_line_error(run_cli("push-kernel", "train"), "kernel-metadata.json is not valid JSON")
    assert run_cli("push-kernel", "train", "--rebuild").exit_code == 0
    assert '"max_steps": 5' in fake.kernels["tester/lmsys-train"]["last"]["text"]


def test_run_kernel_with_a_corrupt_metadata_file_is_one_line(tmp_path):
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "kernel-metadata.json").write_text('{"code_file": "k.py", ')
    one_line_error(run_cli("run-kernel", tmp_path / "build"), "kernel-metadata.json is not valid JSON")
    (tmp_path / "build" / "kernel-metadata.json").write_text('["k.py"]')
    one_line_error(run_cli("run-kernel", tmp_path / "build"), "is not a kernel-metadata object")


def _simulated_kaggle(project, competition, backbone, monkeypatch):
    """/kaggle as a kernel sees it (today's layout) under project/kaggle, for the kernel's entry point in-process."""
    from kaggle_kit.kernel.inputs import competition_source, parse_source

    root = project / "kaggle"
    for source, folder in {competition_source("lmsys-chatbot-arena"): competition,
                           parse_source("tester/tiny-deberta-v3"): backbone}.items():
        where = source.layouts(root)["today"]
        where.parent.mkdir(parents=True, exist_ok=True)
        where.symlink_to(folder, target_is_directory=True)
    monkeypatch.setenv("KAGGLE_KIT_ROOT", str(root))
    monkeypatch.setenv("KAGGLE_KIT_ACCEPT_OTHER_ACCELERATOR", "1")  # a CPU here, a GPU on Kaggle
    return root


def _run_kernel_entry(cfg, capsys) -> str:
    """kernel/main.py main, as the built script calls it; returns the line it exits with."""
    from kaggle_kit.kernel.build import kernel_config
    from kaggle_kit.kernel.main import main as kernel_main
    from kaggle_kit.kernel.wheels import load_lock

    with pytest.raises(SystemExit) as stopped:
        kernel_main("train", kernel_config(cfg), {"task": "train", "lock": load_lock().to_dict()})
    assert "Traceback" not in capsys.readouterr().err
    return str(stopped.value.code)


def test_kernel_data_errors_are_one_kaggle_kit_line(project, small_files, tiny_backbone, monkeypatch, capsys):
    """Inside a kernel: a duplicate id in train.csv, and resuming an earlier session whose kaggle_kit_model.json is
    corrupt, each end the kernel with one `kaggle-kit:` line (SystemExit: no traceback), as mount errors do."""
    from kaggle_kit.config import load_config
    from kaggle_kit.kernel.inputs import parse_source

    comp = project / "comp"
    comp.mkdir()
    frame = pd.read_csv(small_files.train, dtype=str)
    frame.loc[1, "id"] = frame.loc[0, "id"]
    frame.to_csv(comp / "train.csv", index=False)
    root = _simulated_kaggle(project, comp, tiny_backbone, monkeypatch)
    line = _run_kernel_entry(load_config(), capsys)
    assert line.startswith("kaggle-kit: ") and "duplicate id(s)" in line, line

    earlier = parse_source("kernel:tester/lmsys-train").layouts(root)["today"] / "model"
    (earlier / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (earlier / "kaggle_kit_model.json").write_text('{"num_labels": 3, ')
    assert not (root / "working" / "model").exists()  # the refused run left no model dir behind to resume into
    cfg = load_config()
    cfg.kernel.resume_from = "tester/lmsys-train"
    line = _run_kernel_entry(cfg, capsys)
    assert line.startswith("kaggle-kit: ") and "kaggle_kit_model.json is corrupt" in line, line


@pytest.mark.parametrize("accelerator, enable_gpu, message", [
    ("None", True, 'accelerator "None" is the CPU but enable_gpu = true'),
    ("TpuV5E8", True, "accelerator TpuV5E8 is a TPU"),
    ("TpuV6E8", False, "accelerator TpuV6E8 is a TPU"),
    ("NvidiaTeslaT4", False, "enable_gpu = false with the GPU accelerator NvidiaTeslaT4"),
])
def test_build_kernel_refuses_an_accelerator_no_kaggle_kit_kernel_can_use(project, accelerator, enable_gpu, message):
    toml = (project / "kaggle-kit.toml").read_text()
    (project / "kaggle-kit.toml").write_text(toml.replace(
        "[kernel]\n", f'[kernel]\naccelerator = "{accelerator}"\nenable_gpu = {str(enable_gpu).lower()}\n'))
    one_line_error(run_cli("build-kernel", "train"), message, code=2)
    assert not (project / "kernels").exists()


def test_a_cpu_kernel_still_builds(project):
    toml = (project / "kaggle-kit.toml").read_text()
    (project / "kaggle-kit.toml").write_text(toml.replace("[kernel]\n", '[kernel]\naccelerator = "None"\n'
                                                                        'enable_gpu = false\n'))
    built = run_cli("build-kernel", "train", "--json")
    assert built.exit_code == 0, built.output
    assert json.loads(built.output)["metadata"]["machine_shape"] == "None"


def test_a_kaggle_model_without_version_is_refused_where_it_is_given(tmp_path, monkeypatch):
    line = one_line_error(run_cli("blend", "--oof", tmp_path / "missing.csv", "--out", tmp_path / "b.json",
                              "--backbone-source", "bb=google/gemma-2/transformers/gemma-2-2b-it"), "has no version",
                          code=2)
    assert "--backbone-source" in line  # before the OOF file is even read
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text('[datasets]\nbackbone = "google/gemma-2/transformers/gemma-2-2b-it"\n')
    one_line_error(run_cli("config"), "a Kaggle Model without its version")


def test_run_kernel_refuses_a_twice_given_input_and_a_run_that_did_nothing(project, small_files):
    assert run_cli("build-kernel", "train", "--out", "kb/train").exit_code == 0
    comp = small_files.train.parent
    twice = run_cli("run-kernel", "kb/train", "--input", f"lmsys-chatbot-arena={comp}", "--input",
                f"lmsys-chatbot-arena={project}")
    one_line_error(twice, "lmsys-chatbot-arena is given twice", code=2)
    nothing = run_cli("run-kernel", "kb/train", "--python", "/bin/true", "--working", "w")
    line = one_line_error(nothing, "the kernel produced nothing")
    assert "without running kaggle-kit" in line
