"""`kaggle-kit average`: K fold models into one adapter whose merged weights are the weighted mean of the members'
merged weights (checked against merge_and_unload() of each member, computed here without `average`), predicted in one
pass, loaded over a 4-bit base, refused in one line for members that do not share what their weights mean."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import one_line_error, quick_config, run_cli
from kaggle_kit.competition.spec import LMSYS
from kaggle_kit.errors import UsageProblem
from kaggle_kit.model.averaging import parse_weights
from kaggle_kit.model.backbone import Precision, load_backbone_model, quantize_on_cpu
from kaggle_kit.model.model_dir import ADAPTER_DIR, MODEL_FILE, load_trained
from kaggle_kit.model.tiny_backbone import build_tiny_backbone
from kaggle_kit.submission import validate_file
from kaggle_kit.training.cv import run_cv
from kaggle_kit.training.train import train

LABELS = list(LMSYS.label_columns)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return build_tiny_backbone(tmp_path_factory.mktemp("avg-bb") / "tiny-llama", arch="llama")


@pytest.fixture(scope="module")
def members(tmp_path_factory, small_files, llama):
    """A 3-fold cv on the tiny Llama (r 16, alpha 32), and one more model of other rank and rsLoRA (r 8, alpha 16):
    ranks and scalings differ, so only exact per-member scaling gives the mean."""
    root = tmp_path_factory.mktemp("avg-members")
    cfg = quick_config(llama, max_steps=4, eval_steps=2, max_len=96, learning_rate=2e-3)
    run_cv([small_files.train], root / "cv", 3, cfg, LMSYS, echo=lambda m: None)
    train([small_files.train], root / "rs", quick_config(llama, max_steps=4, eval_steps=2, max_len=96, lora_r=8,
                                                         lora_alpha=16, rslora=True, fold="1/3", learning_rate=2e-3),
          LMSYS)
    return root


@pytest.fixture(scope="module")
def averaged(members):
    out = members / "avg"
    result = run_cli("average", members / "cv", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def merged_state(model_dir, backbone) -> dict[str, torch.Tensor]:
    """The member's merge_and_unload() weights, straight from peft (no kaggle-kit averaging code)."""
    from peft import PeftModel

    base, _ = load_backbone_model(backbone, Precision("fp32"), None, num_labels=3, training=False, device="cpu")
    merged = PeftModel.from_pretrained(base, model_dir / ADAPTER_DIR).merge_and_unload()
    return {k: v.detach().double() for k, v in merged.state_dict().items()}


def assert_weighted_mean(dirs, weights, out, backbone) -> int:
    """The averaged model's merged weights equal the weighted mean of the members' within 1e-5 relative; returns how
    many tensors the mean moved away from the first member's (a mean of equal members would prove nothing)."""
    states = [merged_state(d, backbone) for d in dirs]
    mean = {k: sum(w * s[k] for w, s in zip(weights, states)) / sum(weights) for k in states[0]}
    got = merged_state(out, backbone)
    assert set(got) == set(mean)
    for key, expected in mean.items():
        scale = expected.abs().max().item() or 1.0
        assert (got[key] - expected).abs().max().item() <= 1e-5 * scale, key
    return sum(not torch.allclose(expected, states[0][key], atol=1e-7) for key, expected in mean.items())


def test_average_equals_the_weighted_mean_of_the_members_merged_weights(members, llama):
    dirs = [members / "cv" / f"fold-{i}" for i in range(3)] + [members / "rs"]
    weights = [1.0, 2.0, 0.5, 1.5]
    out = members / "weighted"
    result = run_cli("average", *dirs, "--out", out, "--weights", ",".join(map(str, weights)), "--json")
    assert result.exit_code == 0, result.output
    assert assert_weighted_mean(dirs, weights, out, llama) >= 15  # the LoRA'd projections and the head moved
    adapter = json.loads((out / ADAPTER_DIR / "adapter_config.json").read_text())
    assert adapter["r"] == 3 * 16 + 8 and adapter["lora_alpha"] == adapter["r"] and not adapter["use_rslora"]
    info = json.loads((out / MODEL_FILE).read_text())
    recorded = info["average"]["members"]
    assert [m["weight"] for m in recorded] == pytest.approx([w / sum(weights) for w in weights])
    assert [m["model_dir"] for m in recorded] == [str(d.resolve()) for d in dirs]
    assert info["train_config"]["fold"] is None  # cv --gather must never take the average for a fold


def test_deberta_pooler_and_classifier_are_averaged(tmp_path, small_files, tiny_backbone):
    """An encoder saves two modules beside LoRA (classifier and the pooler DeBERTa-v3 lacks): both are means too."""
    cfg = quick_config(tiny_backbone, max_steps=2, eval_steps=2, max_len=64, learning_rate=5e-3)
    run_cv([small_files.train], tmp_path / "cv", 2, cfg, LMSYS, echo=lambda m: None)
    result = run_cli("average", tmp_path / "cv", "--out", tmp_path / "avg", "--weights", "3,1")
    assert result.exit_code == 0, result.output
    dirs = [tmp_path / "cv" / "fold-0", tmp_path / "cv" / "fold-1"]
    assert assert_weighted_mean(dirs, [3.0, 1.0], tmp_path / "avg", tiny_backbone) >= 3


def test_averaged_model_predicts_in_one_pass(averaged, members, small_files, tmp_path, monkeypatch):
    import kaggle_kit.model.model_dir as model_dir

    out, _ = averaged
    loads = []
    real = model_dir.load_trained
    monkeypatch.setattr(model_dir, "load_trained", lambda d, *a, **kw: loads.append(d) or real(d, *a, **kw))
    sub = tmp_path / "avg.csv"
    result = run_cli("predict", "--model", out, "--test", small_files.test, "--out", sub, "--json")
    assert result.exit_code == 0, result.output
    assert loads == [out]  # one model loaded, one pass over the rows
    assert validate_file(sub, pd.read_csv(small_files.test)["id"].astype(str).tolist(), LMSYS).ok
    loads.clear()
    folds = [members / "cv" / f"fold-{i}" for i in range(3)]
    blend = run_cli("predict", *[x for d in folds for x in ("--model", d)], "--test", small_files.test,
                    "--out", tmp_path / "blend.csv", "--json")
    assert blend.exit_code == 0, blend.output
    assert loads == folds  # the K-model blend it replaces: K passes


def test_averaged_model_blends_like_any_model_dir(averaged, members, small_files, tmp_path):
    out, _ = averaged
    sub = tmp_path / "mix.csv"
    result = run_cli("predict", "--model", out, "--model", members / "rs", "--weights", "2,1", "--test",
                     small_files.test, "--out", sub, "--json")
    assert result.exit_code == 0, result.output
    probs = pd.read_csv(sub)[LABELS].to_numpy()
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.skipif(not quantize_on_cpu("4bit"), reason="this bitsandbytes has no CPU 4-bit backend")
def test_averaged_adapter_loads_over_a_4bit_base(averaged, small_files):
    import bitsandbytes as bnb

    from kaggle_kit.data.reading import read_test
    from kaggle_kit.inference.predict import predict_probs

    out, _ = averaged
    trained = load_trained(out, quantize="4bit")
    assert sum(isinstance(m, bnb.nn.Linear4bit) for m in trained.model.modules()) == 14  # 2 layers x 7 projections
    probs = predict_probs(trained, read_test(small_files.test, LMSYS), LMSYS, 4096, progress=False)
    assert probs.shape == (24, 3) and np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1.0)


def test_calibration_is_refit_on_the_members_holdout_rows_and_says_they_were_seen(averaged, small_files):
    out, result = averaged
    info = json.loads((out / MODEL_FILE).read_text())
    calibration = info["calibration"]
    assert calibration["rows"] == len(pd.read_csv(small_files.train))  # every fold's holdout: every training row
    assert calibration["held_out"] is False and "not held out" in calibration["note"]
    assert info["temperature"] == result["temperature"] and math.isfinite(info["temperature"])
    assert calibration["log_loss_calibrated"] <= calibration["log_loss_uncalibrated"] + 1e-12


def test_calibration_is_identity_where_the_training_rows_are_gone(members, tmp_path):
    copies = []
    for i in range(2):
        copy = shutil.copytree(members / "cv" / f"fold-{i}", tmp_path / f"fold-{i}")
        info = json.loads((copy / MODEL_FILE).read_text())
        info["train_config"]["train_files"] = [str(tmp_path / "gone.csv")]
        (copy / MODEL_FILE).write_text(json.dumps(info))
        copies.append(copy)
    result = run_cli("average", *copies, "--out", tmp_path / "avg", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "avg" / MODEL_FILE).read_text())
    assert info["temperature"] == 1.0 and info["side_head"] is None
    assert info["calibration"]["fitted_on"] is None and "gone.csv" in info["calibration"]["reason"]


def _edited(members, tmp_path, name, edit, adapter=False):
    """A copy of fold 1 whose info (or adapter config) differs in one thing."""
    copy = shutil.copytree(members / "cv" / "fold-1", tmp_path / name)
    path = copy / (ADAPTER_DIR + "/adapter_config.json" if adapter else MODEL_FILE)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return copy


REFUSALS = {
    "backbone": (lambda d: d.update(backbone="/elsewhere/tiny-qwen2", model_type="qwen2"), False),
    "LoRA targets": (lambda d: d.update(target_modules=["q_proj", "v_proj"]), True),
    "label space": (lambda d: d.update(label_columns=["winner_model_a", "winner_model_b", "tie"]), False),
    "encoding": (lambda d: d["encoding"].update(truncate="left"), False),
    "quantisation": (lambda d: d["train_config"].update(quantize="4bit"), False),
}


@pytest.mark.parametrize("what", list(REFUSALS))
def test_members_that_differ_are_refused_in_one_line_before_work(members, tmp_path, what):
    edit, in_adapter = REFUSALS[what]
    odd = _edited(members, tmp_path, "odd", edit, in_adapter)
    result = run_cli("average", members / "cv" / "fold-0", odd, "--out", tmp_path / "avg")
    one_line_error(result, f"differs from {members / 'cv' / 'fold-0'} in {what}")
    assert not (tmp_path / "avg").exists() and not list(tmp_path.glob(".avg*"))


def test_dora_is_refused(members, tmp_path):
    odd = _edited(members, tmp_path, "dora", lambda d: d.update(use_dora=True), adapter=True)
    one_line_error(run_cli("average", members / "cv" / "fold-0", odd, "--out", tmp_path / "avg"), "uses DoRA")


@pytest.mark.parametrize("weights, message", [
    ("1,2", "gives 2 weight(s) for 3 model(s)"),
    ("1,-1,1", "finite number >= 0"),
    ("1,nan,1", "finite number >= 0"),
    ("1,inf,1", "finite number >= 0"),
    ("0,0,0", "not all zero"),
    ("1,a,1", "not a comma-separated list of numbers"),
])
def test_bad_weights_are_refused(members, tmp_path, weights, message):
    result = run_cli("average", members / "cv", "--out", tmp_path / "avg", "--weights", weights)
    one_line_error(result, message, code=2)
    assert not (tmp_path / "avg").exists()


def test_weights_parsing():
    assert parse_weights(None, 4) == [0.25] * 4
    assert parse_weights("1,3", 2) == [0.25, 0.75]
    assert parse_weights("0, 2", 2) == [0.0, 1.0]  # a zero weight keeps its member's place
    with pytest.raises(UsageProblem):
        parse_weights("1e400,1", 2)  # float overflow: inf


def test_output_and_member_refusals(members, averaged, tmp_path):
    fold0 = members / "cv" / "fold-0"
    one_line_error(run_cli("average", fold0, "--out", tmp_path / "x"), "averaging needs at least two", code=2)
    one_line_error(run_cli("average", fold0, fold0, "--out", tmp_path / "x"), "is given twice", code=2)
    one_line_error(run_cli("average", members / "cv", "--out", members / "cv"), "is, holds or lies inside a member",
                   code=2)
    out, _ = averaged
    one_line_error(run_cli("average", members / "cv", "--out", out), "already holds a trained model")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    one_line_error(run_cli("average", members / "cv", "--out", foreign, "--overwrite"),
                   "already holds files that kaggle-kit did not write")
    assert (foreign / "notes.txt").read_text() == "mine"
    partial = tmp_path / "partial-cv"
    for i in (0, 2):
        shutil.copytree(members / "cv" / f"fold-{i}", partial / f"fold-{i}")
    one_line_error(run_cli("average", partial, "--out", tmp_path / "y"), "fold(s) 1 of 3 are missing")


def test_overwrite_replaces_only_the_averaged_model(members, tmp_path):
    out = tmp_path / "avg"
    assert run_cli("average", members / "cv", "--out", out).exit_code == 0
    first = (out / ADAPTER_DIR / "adapter_model.safetensors").read_bytes()
    again = run_cli("average", members / "cv", "--out", out, "--weights", "1,1,2", "--overwrite", "--json")
    assert again.exit_code == 0, again.output
    assert (out / ADAPTER_DIR / "adapter_model.safetensors").read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["avg"]  # no staging folder left beside it


def test_plan_infer_counts_an_averaged_model_as_one_pass(averaged, members, tmp_path):
    out, _ = averaged
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"max_len": 256, "ours": {"tokens_per_s": 5000.0},
                                 "length_quantiles": list(range(20, 251, 11))}))
    result = run_cli("plan", "infer", "--from", bench, "--rows", 1000, "--limit", "9h", "--model", out, "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["passes"] == 1 and {o["models"] for o in plan["options"]} == {1}
    assert plan["model_passes"][0]["averaged_members"] == 3
    folds = [x for i in range(3) for x in ("--model", members / "cv" / f"fold-{i}")]
    three = json.loads(run_cli("plan", "infer", "--from", bench, "--rows", 1000, "--limit", "9h", *folds,
                               "--json").stdout)
    assert three["passes"] == 3 and max(o["models"] for o in three["options"]) == 3


def test_infer_kernel_runs_an_averaged_model(averaged, llama, small_files, tmp_path, monkeypatch):
    out, _ = averaged
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text(
        'username = "tester"\n[datasets]\nbackbone = "tester/tiny-llama"\nmodel = "tester/lmsys-avg"\n'
        '[kernel]\ntrain_slug = "lmsys-train"\ninfer_slug = "lmsys-infer"\n')
    built = run_cli("build-kernel", "infer", "--out", "kb/infer", "--json")
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout)["metadata"]["dataset_sources"][:2] == ["tester/lmsys-avg", "tester/tiny-llama"]
    ran = run_cli("run-kernel", "kb/infer", "--input", f"lmsys-chatbot-arena={small_files.train.parent}",
                  "--input", f"tester/tiny-llama={llama}", "--input", f"tester/lmsys-avg={out}", "--working", "work")
    assert ran.exit_code == 0, ran.output
    assert run_cli("validate", "work/submission.csv", "--test", small_files.test).exit_code == 0


def test_average_is_recorded_in_the_runs_ledger_without_a_headline_score(averaged):
    """The ledger keeps the averaged model dir with its members; no held-out figure is claimed for it."""
    from kaggle_kit.ledger import runs_table

    out, result = averaged
    runs = [row["run"] for row in runs_table() if row["run"] and row["run"]["kind"] == "average"]
    mine = [run for run in runs if Path(run["model_dir"]).resolve() == out.resolve()]
    assert len(mine) == 1 and mine[0]["score"] is None and mine[0]["score_kind"] is None
    assert mine[0]["figures"]["members"] == result["members"]
