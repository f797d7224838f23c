"""The LMSYS winning recipes: soft labels and distillation, grouped k-fold OOF, fitted blends, pseudo-labels,
truncation modes and post-processing rules, on the tiny backbone and sample data."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import quick_config, run_cli
from kaggle_kit.cli import main
from kaggle_kit.cli.app import COMMAND_SECTIONS
from kaggle_kit.competition.spec import LMSYS
from kaggle_kit.data.encode import Encoder, EncodingSpec, field_budgets, fit_field
from kaggle_kit.data.reading import Pairs, load_training_files, read_train
from kaggle_kit.errors import DataError
from kaggle_kit.inference.blending import combine, fit_weights
from kaggle_kit.inference.rules import IDENTICAL, apply_rules, evaluate_rules
from kaggle_kit.metrics import log_loss, softmax
from kaggle_kit.model.model_dir import CHECKPOINTS, MODEL_FILE
from kaggle_kit.training.cv import OOF_FILE, run_cv
from kaggle_kit.training.folds import fold_splits, prompt_groups
from kaggle_kit.training.train import split_holdout, train

LABELS = ["winner_model_a", "winner_model_b", "winner_tie"]
TEACHER = [0.15, 0.15, 0.70]  # far from the sample data's class prior (tie ~0.3): easy to tell who learned it


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_line_error(result, message, code=1):
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    return result.output.strip()


def with_targets(src, dst, rows):
    """A copy of a train file whose winner_* columns hold `rows` (an array, or one row for all)."""
    frame = pd.read_csv(src, dtype=str, keep_default_na=False)
    values = np.broadcast_to(np.asarray(rows, dtype=float), (len(frame), 3))
    for k, c in enumerate(LABELS):
        frame[c] = [f"{v:.6f}" for v in values[:, k]]
    frame.to_csv(dst, index=False)
    return dst


# ---- soft targets in training files
def test_soft_and_hard_rows_mix_and_bad_rows_are_rejected(tmp_path, small_files, spec):
    frame = pd.read_csv(small_files.train, dtype=str, keep_default_na=False)
    frame.loc[0, LABELS] = ["0.2", "0.3", "0.5"]
    frame.loc[1, LABELS] = ["0.3333", "0.3333", "0.3334"]
    frame.to_csv(tmp_path / "mixed.csv", index=False)
    pairs = read_train(tmp_path / "mixed.csv", spec)
    assert np.allclose(pairs.targets[0], [0.2, 0.3, 0.5]) and pairs.labels[0] == 2
    assert np.allclose(pairs.targets[2].sum(), 1) and set(pairs.targets[2]) <= {0.0, 1.0}  # hard rows stay one-hot
    swapped = pairs.swapped(spec)
    assert np.allclose(swapped.targets[0], [0.3, 0.2, 0.5])
    for bad, row_id in ((["0.2", "0.3", "0.4"], 0), (["1.2", "-0.2", "0"], 1)):
        broken = frame.copy()
        broken.loc[row_id, LABELS] = bad
        broken.to_csv(tmp_path / "bad.csv", index=False)
        with pytest.raises(DataError, match=f"neither one-hot nor probabilities summing to 1.*{frame.id[row_id]}"):
            read_train(tmp_path / "bad.csv", spec)


def test_distill_loss_is_cross_entropy_without_teacher_weight():
    import torch
    import torch.nn.functional as F

    from kaggle_kit.training.targets import distill_loss

    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    hard = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert torch.allclose(distill_loss(logits, hard, hard, 0.0, 1.0), F.cross_entropy(logits, torch.tensor([0, 2])))
    teacher = F.softmax(logits, dim=-1)  # a student equal to its teacher pays no KL
    assert distill_loss(logits, hard, teacher, 1.0, 2.0).abs() < 1e-6


def test_distill_loss_pins_kl_direction_and_temperature_squared():
    """A student unlike its teacher: (1-W) CE + W T^2 KL(teacher_T || student_T), written out by hand."""
    import torch

    from kaggle_kit.training.targets import distill_loss

    student = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]], dtype=torch.float64)
    teacher = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]], dtype=torch.float64)
    hard = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    w, t = 0.25, 3.0
    p_s = torch.softmax(student, dim=-1)
    ce = -(hard * p_s.log()).sum(-1).mean()
    p_t = torch.softmax(teacher.log() / t, dim=-1)
    q_s = torch.softmax(student / t, dim=-1)
    kl_forward = (p_t * (p_t.log() - q_s.log())).sum(-1).mean()  # KL(teacher || student)
    kl_reverse = (q_s * (q_s.log() - p_t.log())).sum(-1).mean()
    got = distill_loss(student, hard, teacher, w, t).double()
    assert torch.allclose(got, (1 - w) * ce + w * t * t * kl_forward, atol=1e-5)
    assert not torch.allclose(got, (1 - w) * ce + w * t * t * kl_reverse, atol=1e-3)  # the direction matters here
    assert not torch.allclose(got, (1 - w) * ce + w * kl_forward, atol=1e-3)  # and so does T^2


def test_full_swap_collator_puts_the_swap_in_the_same_batch():
    from kaggle_kit.training.targets import PairCollator

    rows = [{"input_ids": [5, 6, 7], "labels": [1, 0, 0, 1, 0, 0], "swap_input_ids": [5, 7, 6],
             "swap_labels": [0, 1, 0, 0, 1, 0]}]
    batch = PairCollator(pad_id=0, num_labels=3)(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 7, 6]]
    assert batch["labels"][:, :3].tolist() == [[1, 0, 0], [0, 1, 0]]


def _kl_to_teacher(model_dir) -> float:
    holdout = pd.read_csv(model_dir / "holdout_predictions.csv")
    probs = softmax(holdout[[f"logit_{c}" for c in LABELS]].to_numpy(float))
    teacher = np.asarray(TEACHER)
    return float((teacher * (np.log(teacher) - np.log(probs))).sum(axis=1).mean())


def test_soft_labels_and_teacher_lower_kl_to_the_teacher(tmp_path, small_files, tiny_backbone, spec):
    cfg = quick_config(tiny_backbone, max_steps=8, learning_rate=5e-3, calibrate=False)
    hard = train([small_files.train], tmp_path / "hard", cfg, spec)
    soft_file = with_targets(small_files.train, tmp_path / "soft.csv", TEACHER)
    soft = train([soft_file], tmp_path / "soft", cfg, spec)
    teacher_file = with_targets(small_files.train, tmp_path / "teacher.csv", TEACHER)
    distilled = train([small_files.train], tmp_path / "distilled",
                      replace(cfg, teacher=str(teacher_file), distill_weight=1.0, distill_temperature=2.0), spec)
    kl_hard, kl_soft, kl_distilled = (_kl_to_teacher(r.out_dir) for r in (hard, soft, distilled))
    assert kl_soft < kl_hard and kl_distilled < kl_hard, (kl_hard, kl_soft, kl_distilled)
    assert soft.metrics["soft_rows"]["train"] > 0 and distilled.metrics["teacher_rows"] == 120
    # the holdout log loss of soft rows is measured against their probabilities, not their argmax
    holdout = pd.read_csv(tmp_path / "soft" / "holdout_predictions.csv")
    assert np.allclose(holdout[[f"target_{c}" for c in LABELS]].to_numpy(), TEACHER)


def test_bad_teacher_and_soft_rows_fail_in_one_line_before_training(tmp_path, small_files, tiny_backbone):
    teacher = pd.read_csv(small_files.train, dtype=str)[["id"]].assign(
        winner_model_a=0.2, winner_model_b=0.2, winner_tie=0.6)
    teacher.loc[0, "id"] = "no-such-id"
    teacher.to_csv(tmp_path / "teacher.csv", index=False)
    base = ["train", "--train", small_files.train, "--backbone", tiny_backbone, "--max-len", 64]
    one_line_error(run(*base, "--out", tmp_path / "a", "--set", f"train.teacher={tmp_path / 'teacher.csv'}",
                       "--set", "train.distill_weight=0.5"),
                   "1 id(s) are not training rows: no-such-id")
    one_line_error(run(*base, "--out", tmp_path / "b", "--set", f"train.teacher={tmp_path / 'teacher.csv'}"),
                   "--distill-weight is 0")
    bad = with_targets(small_files.train, tmp_path / "bad.csv", [0.5, 0.3, 0.1])
    one_line_error(run("train", "--train", bad, "--backbone", tiny_backbone, "--out", tmp_path / "c"),
                   "neither one-hot nor probabilities summing to 1")
    assert not (tmp_path / "a" / "adapter").exists() and not (tmp_path / "c" / "adapter").exists()


# ---- truncation
def test_left_right_and_prompt_budget_truncation():
    turns = [list(range(10)), list(range(100, 110))]
    assert fit_field(turns, [-1], 12, "left") == [9, -1, *range(100, 110)]  # the end of the conversation
    assert fit_field(turns, [-1], 4, "right") == [0, 1, 2, 3]
    assert fit_field(turns, [-1], 6, "head-tail") == [0, 9, -1, 100, 101, 109]  # today's default, unchanged
    assert field_budgets([500, 300, 100], 400, prompt_budget=50) == [50, 250, 100]  # the longer answer cut first
    assert field_budgets([20, 300, 100], 400, prompt_budget=50) == [20, 280, 100]
    assert field_budgets([500, 300, 100], 400) == [150, 150, 100]


def test_left_truncation_keeps_the_last_tokens_end_to_end(tiny_backbone, spec):
    from kaggle_kit.model.backbone import load_tokenizer

    tokenizer = load_tokenizer(tiny_backbone)
    words = [f"w{k}" for k in range(400)]
    pairs = Pairs(ids=["1"], texts={"prompt": [["a question"]], "response_a": [[" ".join(words)]],
                                    "response_b": [["short answer"]]})
    ends = tokenizer(" ".join(words[-5:]), add_special_tokens=False)["input_ids"]
    starts = tokenizer(" ".join(words[:5]), add_special_tokens=False)["input_ids"]
    for truncate, kept, lost in (("left", ends, starts), ("right", starts, ends)):
        spec_ = EncodingSpec(max_len=64, template="encoder", fields=spec.text_columns, truncate=truncate)
        ids = Encoder(tokenizer, spec_).encode(pairs)[0]
        text = " ".join(map(str, ids))
        assert " ".join(map(str, kept)) in text and " ".join(map(str, lost)) not in text, truncate
    old = {"max_len": 64, "template": "encoder", "fields": list(spec.text_columns)}  # a model dir of before
    assert EncodingSpec.from_dict(old) == EncodingSpec(max_len=64, template="encoder", fields=spec.text_columns)


# ---- folds
def test_grouped_folds_never_split_a_prompt_and_fold_flag_agrees(sample_files, spec):
    pairs = load_training_files([sample_files.train], spec).pairs
    groups = prompt_groups(pairs, spec)
    assert len(np.unique(groups)) < len(pairs)  # sample prompts repeat, so grouping matters
    splits = fold_splits(pairs.labels, groups, 5, seed=7)
    seen = np.concatenate([valid for _, valid in splits])
    assert sorted(seen.tolist()) == list(range(len(pairs)))
    for (fit, valid), i in zip(splits, range(5)):
        assert not set(groups[fit]) & set(groups[valid])
        assert np.array_equal(split_holdout(pairs.labels, 0.05, f"{i}/5", 7, groups)[1], valid)


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory, small_files, tiny_backbone):
    out = tmp_path_factory.mktemp("cv") / "cvA"
    from kaggle_kit.competition.spec import LMSYS

    summary = run_cv([small_files.train], out, 2, quick_config(tiny_backbone, max_steps=4), LMSYS,
                     echo=lambda m: None)
    return out, summary


def test_cv_oof_covers_every_row_once_and_gathers_the_same(cv_run, small_files, spec, tmp_path):
    out, summary = cv_run
    oof = pd.read_csv(out / OOF_FILE, dtype={"id": str})
    ids = load_training_files([small_files.train], spec).pairs.ids
    assert sorted(oof["id"]) == sorted(ids) and oof["id"].is_unique
    assert np.allclose(oof[LABELS].sum(axis=1), 1)
    cv = json.loads((out / "cv.json").read_text())
    assert [f["fold"] for f in cv["per_fold"]] == [0, 1] and cv["rows"] == len(ids)
    assert cv["mean_log_loss"] == pytest.approx(np.mean([f["log_loss"] for f in cv["per_fold"]]))
    # the fan-out path: fold outputs pulled from two kernels, gathered into the same oof.csv
    result = run("cv", "--gather", out / "fold-1", "--gather", out / "fold-0", "--out", tmp_path / "gathered")
    assert result.exit_code == 0, result.output
    assert result.output.count("OOF log loss") == 1, result.output  # once, not again as "the competition's metric"
    gathered = pd.read_csv(tmp_path / "gathered" / OOF_FILE, dtype={"id": str})
    assert gathered.equals(oof)
    one_line_error(run("cv", "--gather", out / "fold-1", "--out", tmp_path / "g2"), "fold(s) 0 of 2 missing")
    one_line_error(run("cv", "--gather", out / "fold-1", "--gather", out / "fold-1", "--out", tmp_path / "g3"),
                   "fold 1 appears twice")
    refused = run("cv", "--train", small_files.train, "--folds", 2, "--out", out)
    one_line_error(refused, "already holds fold(s) 0, 1")
    assert f"`cv --gather {out} --out {out}`" in refused.output  # the hint's command works as written:
    assert run("cv", "--gather", out, "--out", out, "--overwrite").exit_code == 0


# ---- blends
def test_fitted_blend_is_never_worse_than_the_best_single():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    truth = np.eye(3)[labels]
    good = softmax(3 * truth + rng.normal(0, 1.5, (400, 3)))
    other = softmax(2 * truth + rng.normal(0, 1.5, (400, 3)))
    noise = softmax(rng.normal(0, 2, (400, 3)))
    for sets in ([good, other], [good, noise], [noise, good, other], [good]):
        weights, temperature, report = fit_weights(sets, truth)
        blended = log_loss(truth, combine(sets, weights, temperature))
        assert blended == pytest.approx(report["blend_log_loss"])
        assert blended <= min(log_loss(truth, p) for p in sets) + 1e-12
        assert min(weights) >= 0 and sum(weights) == pytest.approx(1)
    weights, _, _ = fit_weights([good, noise], truth)
    assert weights[1] < 0.1  # pure noise earns (almost) nothing


def test_rules_fire_on_empty_and_identical_and_are_kept_only_when_they_help(spec):
    texts = {"prompt": [["q"]] * 4, "response_a": [[""], ["same"], ["x"], ["y"]],
             "response_b": [["fine"], [" same "], ["z"], [""]]}
    pairs = Pairs(ids=list("abcd"), texts=texts)
    flat = np.full((4, 3), 1 / 3)
    ruled, fired = apply_rules(flat, pairs, spec)
    assert fired == {"empty": 2, "identical": 1}
    assert ruled[0].tolist() == [0.04, 0.88, 0.08] and ruled[3].tolist() == [0.88, 0.04, 0.08]
    assert ruled[1].tolist() == list(IDENTICAL) and ruled[2].tolist() == flat[2].tolist()
    helpful = np.eye(3)[[1, 2, 0, 0]]  # the empty side lost, identical tied
    harmful = np.eye(3)[[0, 0, 0, 1]]
    assert {r["rule"]: r["kept"] for r in evaluate_rules(flat, helpful, pairs, spec)} == {"empty": True,
                                                                                       "identical": True}
    assert {r["rule"]: r["kept"] for r in evaluate_rules(flat, harmful, pairs, spec)} == {"empty": False,
                                                                                       "identical": False}


def test_blend_cli_predict_with_blend_and_rules(cv_run, small_files, tmp_path):
    out, _ = cv_run
    # a second "model": the same folds' OOF made worse, named explicitly FILE=MODEL_DIR,...
    oof = pd.read_csv(out / OOF_FILE, dtype={"id": str})
    worse = oof.copy()
    worse[LABELS] = 0.5 * oof[LABELS].to_numpy() + 0.5 * np.array([0.8, 0.1, 0.1])
    worse.to_csv(tmp_path / "worse.csv", index=False)
    blend_json = tmp_path / "blend.json"
    result = run("blend", "--oof", out / OOF_FILE, "--oof", f"{tmp_path / 'worse.csv'}={out / 'fold-0'}",
                 "--train", small_files.train, "--out", blend_json, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["blend_log_loss"] <= min(m["oof_log_loss"] for m in report["members"]) + 1e-12
    assert {r["rule"] for r in report["rules"]} == {"empty", "identical"}
    judged_on = report["cv_blend_log_loss"] if report["fitted_blend_kept"] else report["best_single"]["log_loss"]
    assert all(r["log_loss_before"] == pytest.approx(judged_on) for r in report["rules"])  # out of fold
    saved = json.loads(blend_json.read_text())
    assert saved["rules"] == [r["rule"] for r in report["rules"] if r["kept"]]
    one_line_error(run("blend", "--oof", out / OOF_FILE, "--out", blend_json), "already exists")
    text = run("blend", "--oof", out / OOF_FILE, "--out", tmp_path / "text.json").output
    said = [line for line in text.splitlines() if line.startswith("blend:") and "log loss" in line]
    assert len(said) == 1 and "cross-validated" in said[0] and "in-sample" in said[0], text  # LMSYS: log loss once

    sub = tmp_path / "sub.csv"
    result = run("predict", "--test", small_files.test, "--blend", blend_json, "--rules", "--out", sub, "--json")
    assert result.exit_code == 0, result.output
    assert np.allclose(pd.read_csv(sub)[LABELS].sum(axis=1), 1)

    saved["members"][0]["model_dirs"].append("missing-fold")
    saved["members"][0]["weight"] = 1.0
    (tmp_path / "broken.json").write_text(json.dumps(saved))
    one_line_error(run("predict", "--test", small_files.test, "--blend", tmp_path / "broken.json",
                       "--out", tmp_path / "x.csv"), "which does not exist")
    assert not (tmp_path / "x.csv").exists()


def test_pseudo_labels_train_as_soft_rows(cv_run, small_files, tiny_backbone, spec, tmp_path):
    out, _ = cv_run
    pl = tmp_path / "pl.csv"
    result = run("pseudo-label", "--model", out / "fold-0", "--model", out / "fold-1", "--input", small_files.test,
                 "--out", pl, "--json")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(pl, dtype={"id": str})
    assert list(frame.columns) == spec.train_columns and len(frame) == 24
    assert np.allclose(frame[LABELS].sum(axis=1), 1, atol=1e-5)
    one_line_error(run("pseudo-label", "--model", out / "fold-0", "--input", small_files.test, "--out", pl),
                   "already exists")
    nothing = run("pseudo-label", "--model", out / "fold-0", "--input", small_files.test, "--out",
                  tmp_path / "none.csv", "--min-confidence", 1.0)  # known after predicting: says so, writes nothing
    assert nothing.exit_code == 1 and "Traceback" not in nothing.output
    assert nothing.output.strip().splitlines()[-1].startswith("Error: no row reached --min-confidence 1.0")
    assert not (tmp_path / "none.csv").exists()
    result = train([small_files.train, pl], tmp_path / "student",
                   quick_config(tiny_backbone, max_steps=4, full_swap=True, truncate="left", prompt_budget=16), spec)
    assert result.metrics["soft_rows"]["train"] + result.metrics["soft_rows"]["holdout"] == 24
    encoding = json.loads((tmp_path / "student" / "kaggle_kit_model.json").read_text())["encoding"]
    assert encoding["truncate"] == "left" and encoding["prompt_budget"] == 16


def test_fold_kernels_and_command_sections(project):
    result = run("build-kernel", "train", "--fold", "2/5", "--out", project / "k2")
    assert result.exit_code == 0, result.output
    meta = json.loads((project / "k2" / "kernel-metadata.json").read_text())
    assert meta["id"] == "tester/lmsys-train-fold-2"
    script = (project / "k2" / meta["code_file"]).read_text()
    assert '"fold": "2/5"' in script
    one_line_error(run("build-kernel", "train", "--fold", "5/5", "--out", project / "k5"), "0 <= i < k")
    placed = {name for names in COMMAND_SECTIONS.values() for name in names}
    assert set(main.commands) <= placed


@pytest.mark.parametrize("setting,value", [("truncate", "left"), ("prompt_budget", 16), ("full_swap", True),
                                           ("max_len", 64)])
def test_gather_refuses_folds_trained_on_other_inputs(cv_run, tmp_path, setting, value):
    """Issue 24: folds of two runs that differ only in how rows are encoded would merge into one meaningless OOF."""
    import shutil

    out, _ = cv_run
    other = tmp_path / "fold-1"
    shutil.copytree(out / "fold-1", other)
    info_path = other / "kaggle_kit_model.json"
    info = json.loads(info_path.read_text())
    info["train_config"][setting] = value
    info_path.write_text(json.dumps(info))
    one_line_error(run("cv", "--gather", out / "fold-0", "--gather", other, "--out", tmp_path / "g"),
                   f"was trained with another {setting}")
    assert not (tmp_path / "g" / OOF_FILE).exists()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_blend_refuses_non_finite_oof_probabilities(cv_run, tmp_path, bad):
    """Issue 24: a NaN OOF row printed 'nan' losses and wrote blend.json with a bare NaN (not JSON)."""
    out, _ = cv_run
    oof = pd.read_csv(out / OOF_FILE, dtype={"id": str})
    oof.loc[3, LABELS[0]] = bad
    oof.to_csv(tmp_path / "bad.csv", index=False, na_rep="nan")  # as numpy writes it: float() reads it back
    result = run("blend", "--oof", f"{tmp_path / 'bad.csv'}={out / 'fold-0'}", "--out", tmp_path / "blend.json")
    one_line_error(result, "NaN or infinite")
    assert not (tmp_path / "blend.json").exists()


def test_cv_refuses_a_folder_of_other_files(tiny_backbone, small_files, tmp_path):
    out = tmp_path / "work"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    one_line_error(run_cli("cv", "--train", small_files.train, "--folds", 2, "--out", out, "--backbone", tiny_backbone,
                       "--max-steps", 1), "already holds files that kaggle-kit did not write")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_blend_refuses_oof_labels_outside_the_classes(tmp_path):
    from kaggle_kit.inference.blending import read_oof

    rows = 12
    oof = pd.DataFrame({"id": [str(i) for i in range(rows)], "label": [0, 1, 2] * 3 + [5, 2, 1]})
    for column in LMSYS.label_columns:
        oof[column] = 1 / 3
    oof.to_csv(tmp_path / "oof.csv", index=False)
    with pytest.raises(DataError, match=r"1 row\(s\) with a label outside 0..2 .*e.g. 5 at id 9"):
        read_oof(tmp_path / "oof.csv", LMSYS)
    oof["label"] = 0
    oof.loc[2, LMSYS.label_columns[0]] = 1.5
    oof.to_csv(tmp_path / "oof.csv", index=False)
    with pytest.raises(DataError, match=r"probabilities are not in \[0, 1\] summing to 1 .*first id 2"):
        read_oof(tmp_path / "oof.csv", LMSYS)


def test_an_interrupted_cv_fold_is_resumed_with_train_not_a_cv_flag(tmp_path, small_files, tiny_backbone):
    """A fold folder holding checkpoints but no finished model is what a killed `cv` leaves (made by hand here)."""
    out = tmp_path / "cv"
    (out / "fold-0" / CHECKPOINTS / "checkpoint-2").mkdir(parents=True)
    line = one_line_error(run_cli("cv", "--train", small_files.train, "--folds", 2, "--out", out, "--backbone",
                              tiny_backbone), "holds interrupted fold(s) 0")
    assert f"`train --fold 0/2 --resume --out {out / 'fold-0'}`" in line and "pass --resume" not in line
    assert not (out / "fold-1").exists()  # refused before any fold trained


def test_cv_help_offers_no_time_budget_that_promises_resume():
    text = run_cli("cv", "--help").output
    assert "--time-budget" not in text and "--resume" not in text


def test_finished_folds_hint_names_cv_gather(tmp_path, small_files, tiny_backbone):
    """A MODEL_FILE in fold-0 stands in for a finished fold (the real gather is run in test_cv_blend)."""
    out = tmp_path / "cv"
    (out / "fold-0").mkdir(parents=True)
    (out / "fold-0" / MODEL_FILE).write_text("{}")
    line = one_line_error(run_cli("cv", "--train", small_files.train, "--folds", 2, "--out", out, "--backbone",
                              tiny_backbone), "already holds fold(s) 0")
    assert "`cv --gather" in line and "`cv gather`" not in line
