"""The length side head: fitted on the holdout only when it beats temperature scaling, applied alike by every
predict path (plain, swap TTA, time-budgeted)."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import quick_config
from kaggle_kit.data.reading import read_train
from kaggle_kit.inference.predict import predict_probs, unswap
from kaggle_kit.inference.run import predict_to_submission
from kaggle_kit.metrics import log_loss
from kaggle_kit.model.model_dir import HOLDOUT_FILE, MODEL_FILE, load_trained
from kaggle_kit.model.side_head import MIN_ROWS, fit_side_head, head_problem, head_probs, pair_features


def _length_driven(n: int, seed: int, soft: bool = False):
    """Uninformative logits; labels driven by one feature column (the signed word-count difference)."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 13))
    logits = rng.normal(size=(n, 3)) * 0.1
    z = np.stack([features[:, 10], -features[:, 10], np.zeros(n)], axis=1)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    targets = p if soft else np.eye(3)[[rng.choice(3, p=row) for row in p]]
    return logits, features, targets


def test_head_is_kept_when_lengths_carry_the_signal():
    logits, features, targets = _length_driven(450, seed=0)
    head, cv_probs, report = fit_side_head(logits, features, targets, seed=0)
    assert report["used"] and head is not None
    assert report["cv_log_loss"] < report["temperature_cv_log_loss"] - 0.1
    assert log_loss(targets, cv_probs) == pytest.approx(report["cv_log_loss"])
    as_read = fit_side_head(logits, features, targets.astype(int), seed=0)[2]  # integer columns of a holdout CSV
    assert as_read["cv_log_loss"] == pytest.approx(report["cv_log_loss"])
    new_logits, new_features, new_targets = _length_driven(450, seed=1)  # fresh rows: it generalises
    assert log_loss(new_targets, head_probs(head, new_logits, new_features)) < 1.0


def test_head_learns_from_soft_targets():
    logits, features, targets = _length_driven(300, seed=2, soft=True)
    head, _, report = fit_side_head(logits, features, targets, seed=0)
    assert report["used"] and head is not None


def test_head_is_dropped_when_lengths_say_nothing():
    logits, _, targets = _length_driven(450, seed=0)
    noise = np.random.default_rng(5).normal(size=(450, 13))
    head, cv_probs, report = fit_side_head(logits, noise, targets, seed=0)
    assert head is None and cv_probs is None and not report["used"]
    assert "no better than temperature scaling" in report["reason"]


def test_too_few_holdout_rows_keep_the_temperature():
    logits, features, targets = _length_driven(MIN_ROWS - 1, seed=0)
    head, _, report = fit_side_head(logits, features, targets, seed=0)
    assert head is None and f"at least {MIN_ROWS}" in report["reason"]


def test_a_holdout_without_ties_keeps_the_temperature():
    logits, features, targets = _length_driven(450, seed=0)
    no_tie = targets[:, 2] == 0
    head, _, report = fit_side_head(logits[no_tie], features[no_tie], targets[no_tie], seed=0)
    assert head is None and "a class has fewer than 5 holdout rows" in report["reason"]


def test_rare_classes_are_spread_over_the_folds():
    """One class with 5 rows and another with 6 among 100: every fold's fit part still holds all three."""
    logits, features, _ = _length_driven(100, seed=0)
    labels = np.array([1] * 5 + [2] * 6 + [0] * 89)
    head, cv_probs, report = fit_side_head(logits, features, np.eye(3)[labels], seed=0)
    assert "cv_log_loss" in report and np.isfinite(cv_probs if cv_probs is not None else report["cv_log_loss"]).all()


def test_a_cross_validation_fold_with_two_classes_still_fits():
    """A fold may miss a rare class: sklearn's one-row binary model must become two class rows."""
    from kaggle_kit.model.side_head import _fit

    logits, features, targets = _length_driven(450, seed=0)
    two = targets[:, 2] == 0
    head = _fit(np.hstack([logits, features])[two], targets[two], seed=0)
    probs = head_probs(head, logits[two], features[two])
    assert np.array_equal(np.asarray(head["coef"])[2], np.zeros(16)) and head["intercept"][2] == 0
    assert log_loss(targets[two][:, :2], probs[:, :2] / probs[:, :2].sum(axis=1, keepdims=True)) < 0.6


def test_pair_features_of_swapped_rows_exchange_the_responses(small_files, spec):
    pairs = read_train(small_files.train, spec)
    straight, swapped = pair_features(pairs, spec), pair_features(pairs.swapped(spec), spec)
    assert straight.shape == (len(pairs), 13) and np.isfinite(straight).all()
    assert np.array_equal(swapped[:, :5], straight[:, 5:10]) and np.array_equal(swapped[:, 5:10], straight[:, :5])
    assert np.array_equal(swapped[:, 10], -straight[:, 10])
    assert straight[:, 10].std() > 0  # the sample responses differ in length


@pytest.fixture(scope="module")
def head_model(tmp_path_factory, sample_files, tiny_backbone, spec):
    from kaggle_kit.training.train import train

    out = tmp_path_factory.mktemp("head") / "model"
    return train([sample_files.train], out, quick_config(tiny_backbone, length_head=True), spec)


def test_train_keeps_the_head_and_its_out_of_fold_holdout(head_model, spec):
    report = head_model.metrics["side_head"]
    # A 6-step tiny model knows little; the sample responses' lengths tell good answers from refusals.
    assert report["used"], report
    info = json.loads((head_model.out_dir / MODEL_FILE).read_text())
    assert info["side_head"] and len(info["side_head"]["coef"]) == spec.num_labels
    holdout = pd.read_csv(head_model.out_dir / HOLDOUT_FILE, dtype={"id": str})
    probs = holdout[list(spec.label_columns)].to_numpy()
    targets = holdout[[f"target_{c}" for c in spec.label_columns]].to_numpy()
    assert log_loss(targets, probs) == pytest.approx(report["cv_log_loss"], abs=1e-6)
    assert head_model.metrics["holdout"]["log_loss_calibrated"] == pytest.approx(report["cv_log_loss"])


def test_predict_applies_the_head_to_each_rows_lengths(head_model, sample_files, spec):
    holdout = pd.read_csv(head_model.out_dir / HOLDOUT_FILE, dtype={"id": str})
    pairs = read_train(sample_files.train, spec)
    rows = pairs.subset([pairs.ids.index(i) for i in holdout["id"]])
    model = load_trained(head_model.out_dir)
    logits = holdout[[f"logit_{c}" for c in spec.label_columns]].to_numpy()
    expected = head_probs(model.side_head, logits, pair_features(rows, spec))
    assert np.abs(predict_probs(model, rows, spec, max_tokens=2048, progress=False) - expected).max() < 1e-5
    with pytest.raises(ValueError, match="side head"):
        model.probs(logits, None)


def test_swap_tta_reads_the_swapped_rows_lengths(head_model, small_files, spec):
    model = load_trained(head_model.out_dir)
    pairs = read_train(small_files.train, spec)
    straight = predict_probs(model, pairs, spec, max_tokens=2048, progress=False)
    swapped = predict_probs(model, pairs.swapped(spec), spec, max_tokens=2048, progress=False)
    both = predict_probs(model, pairs, spec, max_tokens=2048, tta="swap", progress=False)
    assert np.abs(both - (straight + unswap(swapped, spec)) / 2).max() < 1e-6


def test_budgeted_predict_gives_the_same_bytes_with_a_head(head_model, small_files, spec, tmp_path):
    from kaggle_kit.config import PredictConfig

    plain, budgeted = tmp_path / "plain.csv", tmp_path / "budget.csv"
    predict_to_submission([head_model.out_dir], small_files.test, plain, spec,
                          PredictConfig(max_tokens=2048, tta="swap"), progress=False)
    predict_to_submission([head_model.out_dir], small_files.test, budgeted, spec,
                          PredictConfig(max_tokens=2048, tta="swap", time_budget="1h"), progress=False)
    assert plain.read_bytes() == budgeted.read_bytes()


@pytest.mark.parametrize("damage, message", [
    (lambda head: head.update(coef=[[1.0, 2.0]]), "side_head coef has shape (1, 2), expected (3, 16)"),
    (lambda head: head.pop("scale"), "lacks mean/scale/coef/intercept"),
    (lambda head: head.update(intercept=[0.0, float("nan"), 0.0]), "intercept holds non-finite numbers"),
    (lambda head: head.update(scale=[0.0] * 16), "scale holds numbers <= 0"),
])
def test_a_damaged_side_head_is_a_one_line_error(head_model, small_files, tmp_path, damage, message):
    from click.testing import CliRunner

    from kaggle_kit.cli import main

    model = tmp_path / "model"
    shutil.copytree(head_model.out_dir, model)
    info = json.loads((model / MODEL_FILE).read_text())
    assert head_problem(info["side_head"], 3) is None
    damage(info["side_head"])
    (model / MODEL_FILE).write_text(json.dumps(info))
    result = CliRunner().invoke(main, ["predict", "--test", str(small_files.test), "--model", str(model),
                                       "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "p.csv").exists()


def test_holdout_is_scored_at_the_inference_length(tmp_path, sample_files, tiny_backbone, spec):
    """A recipe that predicts longer than it trains (Gemma-2: 1024 -> 2048): the holdout pass, and so the head fitted
    on it and the holdout file, use the inference length, so predict reproduces the holdout file."""
    from kaggle_kit.training.train import train

    note = {"recipe": "llama3-8b-qlora", "auto": False, "applied": {"max_len": 32}}  # llama3-8b-qlora predicts at 1280
    trained = train([sample_files.train], tmp_path / "model", quick_config(tiny_backbone, max_len=32,
                                                                           length_head=True), spec, recipe_note=note)
    info = json.loads((trained.out_dir / MODEL_FILE).read_text())
    assert info["max_len"]["used"] == 32 and info["max_len"]["predict"] > 32
    holdout = pd.read_csv(trained.out_dir / HOLDOUT_FILE, dtype={"id": str})
    pairs = read_train(sample_files.train, spec)
    rows = pairs.subset([pairs.ids.index(i) for i in holdout["id"]])
    model = load_trained(trained.out_dir)
    logits = holdout[[f"logit_{c}" for c in spec.label_columns]].to_numpy()
    expected = model.probs(logits, pair_features(rows, spec) if model.side_head else None)
    assert np.abs(predict_probs(model, rows, spec, max_tokens=8192, progress=False) - expected).max() < 1e-5


def test_resume_may_switch_the_head(tmp_path):
    """The head is fitted after training: turning it on at --resume (or resuming a run from before it existed) is
    allowed, while a setting that shapes training still is not."""
    from kaggle_kit.errors import KitError
    from kaggle_kit.model.model_dir import CHECKPOINTS, RUN_CONFIG, check_resume_settings

    (tmp_path / CHECKPOINTS).mkdir()
    (tmp_path / CHECKPOINTS / RUN_CONFIG).write_text(json.dumps({"max_len": 256}))
    check_resume_settings(tmp_path, {"max_len": 256, "length_head": True})
    with pytest.raises(KitError, match="max_len"):
        check_resume_settings(tmp_path, {"max_len": 128, "length_head": True})
