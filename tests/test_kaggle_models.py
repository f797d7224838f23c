"""`upload model DIR --kaggle-model`: the REAL kaggle client against the fake server's Kaggle Models calls."""

import json
import shutil

import pytest

from conftest import one_line_error, quick_config, run_cli
from kaggle_kit.config.kaggle_models import MODEL_FRAMEWORKS, kaggle_license, parse_handle

HANDLE = "tester/lmsys-arena/transformers/v1"
BASE = "tester/tiny-deberta-v3/transformers/default/1"  # the tiny backbone, as a Kaggle Model
CHANGES = ("CreateModel", "CreateModelInstance", "CreateModelInstanceVersion", "UpdateModelInstance",
           "StartBlobUpload", "PUT")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_files, tiny_backbone):
    """A quickly trained tiny model (conftest's `trained` runs the full acceptance training: too long here)."""
    from kaggle_kit.competition.spec import LMSYS
    from kaggle_kit.training.train import train

    out = tmp_path_factory.mktemp("quick") / "model"
    return train([small_files.train], out, quick_config(tiny_backbone, max_steps=4, eval_steps=2), LMSYS)


def _model_dir(project, trained, license_line: str | None = None):
    """A copy of the trained model with secrets beside it; with `license_line`, its backbone declares a licence."""
    model = project / "model"
    shutil.copytree(trained.out_dir, model)
    (model / ".env").write_text("WANDB_API_KEY=SECRET")
    (model / "kaggle.json").write_text('{"username": "tester", "key": "SECRET"}')
    if license_line is not None:
        info = json.loads((model / "kaggle_kit_model.json").read_text())
        backbone = project / "bb"
        shutil.copytree(info["backbone"], backbone)
        (backbone / "README.md").write_text(f"---\n{license_line}\nlibrary_name: transformers\n---\n# tiny\n")
        (model / "kaggle_kit_model.json").write_text(json.dumps({**info, "backbone": str(backbone)}))
    return model


def _config(project, models: str = "", backbone: str | None = None):
    text = (project / "kaggle-kit.toml").read_text()
    if backbone:
        text = text.replace('backbone = "tester/tiny-deberta-v3"', f'backbone = "{backbone}"')
    (project / "kaggle-kit.toml").write_text(text + "[models]\npoll_interval = 0.05\n" + models)


def _changes(fake):
    return [r["method"] for r in fake.requests if r["method"] in CHANGES]


def test_frameworks_are_the_clients():
    from kagglesdk.models.types.model_enums import ModelFramework

    names = {m.name.removeprefix("MODEL_FRAMEWORK_").replace("_", "").lower() for m in ModelFramework} - {"unspecified"}
    assert {f.lower() for f in MODEL_FRAMEWORKS} == names
    assert parse_handle("you/m/PyTorch/v1").framework == "PyTorch" and kaggle_license("apache-2.0") == "Apache 2.0"


def test_published_twice_one_model_one_variation_two_versions(project, fake, trained):
    model = _model_dir(project, trained)
    _config(project, backbone=BASE)
    first = run_cli("upload", "model", model, "--kaggle-model", HANDLE, "--license", "apache-2.0", "--json")
    assert first.exit_code == 0, first.output
    result = json.loads(first.stdout)
    assert (result["action"], result["created"], result["version"]) == ("create", ["model", "variation"], 1)
    assert result["mount"] == f"{HANDLE}/1" and result["license"] == "Apache 2.0"
    assert {".env", "kaggle.json", "checkpoints"} == set(result["left_out"])
    assert b"SECRET" not in b"".join(fake.blobs.values())
    created = fake.calls("CreateModel")[0]["body"]
    assert created["isPrivate"] is True and "Holdout log loss" in created["description"]
    instance_body = fake.calls("CreateModelInstance")[0]["body"]["body"]
    assert instance_body["licenseName"] == "Apache 2.0"
    assert instance_body["baseModelInstance"] == BASE.rsplit("/", 1)[0]  # lineage: the backbone's variation
    assert instance_body["modelInstanceType"] == "MODEL_INSTANCE_TYPE_KAGGLE_VARIANT"
    assert len(fake.calls("ListModelInstanceVersionFiles")) >= 2  # waited while Kaggle processed the version

    metrics = json.loads((model / "metrics.json").read_text())  # as if trained again: the card follows
    metrics["holdout"]["log_loss"] = 0.98765
    (model / "metrics.json").write_text(json.dumps(metrics))
    second = run_cli("upload", "model", model, "--kaggle-model", HANDLE, "--license", "Apache 2.0", "-m", "v2")
    assert second.exit_code == 0 and "warning" not in second.output, second.output
    assert f'[datasets] model = "{HANDLE}/2"' in second.stdout
    assert len(fake.models) == 1 and len(fake.models["tester/lmsys-arena"]["instances"]) == 1
    instance = fake.model_instance(HANDLE)
    assert len(instance["versions"]) == 2 and instance["versions"][1]["notes"] == "v2"
    assert [len(fake.calls(m)) for m in ("CreateModel", "CreateModelInstance", "CreateModelInstanceVersion")] == [
        1, 1, 1]
    assert "adapter/adapter_config.json" in instance["versions"][1]["files"]
    usage = instance["card"]["usage"]
    assert "Holdout log loss **0.9877**" in usage and f"{metrics['holdout']['rows']} rows" in usage
    assert "published under Apache 2.0" in usage and instance["card"]["licenseName"] == "Apache 2.0"
    assert f"{HANDLE}/${{VERSION_NUMBER}}" in usage and "PeftModel.from_pretrained" in usage
    assert not any(c in usage for c in "<>&")  # the client's bleach.clean would turn them into entities

    # build-kernel infer mounts the published version
    (project / "kaggle-kit.toml").write_text((project / "kaggle-kit.toml").read_text().replace(
        "[datasets]\n", f'[datasets]\nmodel = "{HANDLE}/2"\n'))
    built = run_cli("build-kernel", "infer", "--out", "kb/infer", "--json")
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout)["metadata"]["model_sources"] == [f"{HANDLE}/2", BASE]


def test_without_a_license_nothing_is_sent(project, fake, trained):
    model = _model_dir(project, trained, license_line="license: apache-2.0")
    _config(project)
    result = run_cli("upload", "model", model, "--kaggle-model", HANDLE)
    line = one_line_error(result, "no licence", code=2)
    assert "its backbone declares apache-2.0: e.g. --license 'Apache 2.0'" in line
    assert fake.requests == []
    bad = run_cli("upload", "model", model, "--kaggle-model", HANDLE, "--license", "WTFPL")
    one_line_error(bad, "--license 'WTFPL' is not a Kaggle model licence", code=2)
    assert fake.requests == []


def test_dry_run_prints_the_card_and_the_calls_and_sends_nothing(project, fake, trained):
    model = _model_dir(project, trained)
    _config(project, models=f'handle = "{HANDLE}"\nlicense = "MIT"\npublic = true\n')
    result = run_cli("upload", "model", model, "--dry-run")
    assert result.exit_code == 0, result.output
    assert fake.requests == []
    out = result.stdout
    assert f"{trained.metrics['holdout']['log_loss']:.4f}" in out and "published under MIT" in out
    assert "model_get tester/lmsys-arena; on 403/404: model_create_new (public" in out
    assert "model_instance_version_create" in out and "dry run: nothing sent" in out
    assert "left out: " in result.output and "kaggle.json" in result.output


def test_a_refused_create_is_one_line(project, fake, trained):
    model = _model_dir(project, trained)
    _config(project)
    other = run_cli("upload", "model", model, "--kaggle-model", "someone/arena/pyTorch/v1", "--license", "MIT")
    one_line_error(other, "create model someone/arena: Kaggle refused it (You do not have permission")
    assert _changes(fake) == ["CreateModel"]  # nothing uploaded after the refusal
    fake.requests.clear()
    fake.fail_next["CreateModelInstance"] = (200, {"error": "Model instance slug is reserved", "errorCode": 400})
    refused = run_cli("upload", "model", model, "--kaggle-model", HANDLE, "--license", "MIT")
    one_line_error(refused, f"create variation {HANDLE}: Kaggle refused it (Model instance slug is reserved)")
    assert "tester/lmsys-arena" in fake.models and fake.model_instance(HANDLE) is None


def test_handles_and_config_are_checked_before_anything(project, fake, trained):
    model = _model_dir(project, trained)
    _config(project)
    for handle, message in [("tester/Bad_Model/transformers/v1", "model slug 'Bad_Model' must be lowercase"),
                            ("tester/m/tensorflow9/v1", "framework 'tensorflow9' is not one of Kaggle's"),
                            (f"{HANDLE}/3", "names a version")]:
        result = run_cli("upload", "model", model, "--kaggle-model", handle, "--license", "MIT")
        one_line_error(result, message, code=2)
    one_line_error(run_cli("upload", "code", "--kaggle-model", HANDLE), "publishes a model dir", code=2)
    one_line_error(run_cli("upload", "model", model, "--dataset", "tester/lmsys-model", "--license", "MIT"),
                   "--license and --public are for --kaggle-model", code=2)
    (project / "kaggle-kit.toml").write_text((project / "kaggle-kit.toml").read_text() + 'license = "Gemma"\n')
    one_line_error(run_cli("upload", "model", model, "--kaggle-model", HANDLE), "license", code=1)
    assert fake.requests == []


def test_lineage_from_the_backbone(tmp_path):
    from kaggle_kit.remote.model_card import lineage

    mounted = lineage({"backbone": "/kaggle/input/models/google/gemma-2/transformers/gemma-2-9b-it/2"}, None)
    assert (mounted.instance_type, mounted.base_model_instance) == ("KaggleVariant",
                                                                    "google/gemma-2/transformers/gemma-2-9b-it")
    folder = tmp_path / "gemma-2-9b-it"
    folder.mkdir()
    (folder / "config.json").write_text('{"_name_or_path": "google/gemma-2-9b-it"}')
    (folder / "README.md").write_text("---\nlicense: other\nlicense_name: gemma\n---\n")
    hub = lineage({"backbone": str(folder)}, "someone/other-backbone")  # not this folder: ignored
    assert (hub.instance_type, hub.external_url, hub.license) == (
        "ExternalVariant", "https://huggingface.co/google/gemma-2-9b-it", "gemma")


def test_the_wait_gives_up_naming_what_kaggle_has_not_listed(project, fake, trained):
    model = _model_dir(project, trained)
    _config(project, models="wait_timeout = 1.0\n")
    fake.model_processing_polls = 10**6  # Kaggle never finishes unpacking
    result = run_cli("upload", "model", model, "--kaggle-model", HANDLE, "--license", "MIT")
    one_line_error(result, f"{HANDLE}/1 still PROCESSING after 1s: no files listed yet")
    assert fake.model_instance(HANDLE)["current"] == 1  # the version is there; only its processing is unknown
