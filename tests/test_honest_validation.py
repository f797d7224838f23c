"""Honest validation: a prompt-grouped default holdout, cross-fitted holdout probabilities, and blend figures
measured out of fold."""

import numpy as np
import pandas as pd
import pytest

from conftest import quick_config
from kaggle_kit.data.reading import load_training_files
from kaggle_kit.inference.blending import choose_blend, combine, combine_folds, cross_validated_blend, fit_weights
from kaggle_kit.metrics import cross_fitted_temperature, fit_temperature, log_loss, softmax
from kaggle_kit.model.model_dir import HOLDOUT_FILE, read_model_info
from kaggle_kit.training.folds import prompt_groups
from kaggle_kit.training.train import split_holdout, train

LABELS = ["winner_model_a", "winner_model_b", "winner_tie"]


def repeated_prompts(src, dst, distinct: int):
    """A train file whose prompts repeat: row i asks the prompt of row i % distinct (labels and responses kept)."""
    frame = pd.read_csv(src, dtype=str, keep_default_na=False)
    frame["prompt"] = [frame["prompt"].iloc[i % distinct] for i in range(len(frame))]
    frame.to_csv(dst, index=False)
    return dst


def test_default_holdout_never_shares_a_prompt(tmp_path, sample_files, spec):
    path = repeated_prompts(sample_files.train, tmp_path / "train.csv", distinct=150)
    pairs = load_training_files([path], spec).pairs
    groups = prompt_groups(pairs, spec)
    for seed in (0, 1, 2):
        fit, valid = split_holdout(pairs.labels, 0.05, None, seed, groups, valid_rows=500)
        assert not set(groups[fit]) & set(groups[valid])
        assert 150 <= len(valid) <= 350 and len(fit) + len(valid) == len(pairs)  # about a quarter, as before
        counts = np.bincount(pairs.labels[valid], minlength=3) / len(valid)
        overall = np.bincount(pairs.labels, minlength=3) / len(pairs)
        assert np.abs(counts - overall).max() < 0.1  # stratified where the classes allow


def test_rare_class_falls_back_to_a_grouped_split():
    labels = np.array([0] * 60 + [1] * 57 + [2] * 3)
    groups = np.arange(120) // 2
    fit, valid = split_holdout(labels, 0.05, None, 0, groups, valid_rows=30)
    assert not set(groups[fit]) & set(groups[valid]) and 20 <= len(valid) <= 40


def test_cross_fitted_probability_ignores_its_own_label():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 3)) * 3
    labels = np.array([rng.choice(3, p=p) for p in softmax(logits, 2.0)])  # informative, over-confident logits
    base = cross_fitted_temperature(logits, labels, seed=5)
    flipped = labels.copy()
    flipped[17] = (labels[17] + 1) % 3
    again = cross_fitted_temperature(logits, flipped, seed=5)
    assert np.allclose(again[17], base[17])  # the row's own label never chose its temperature
    assert not np.allclose(again, base)  # but it did choose other rows'
    in_sample = softmax(logits, fit_temperature(logits, labels))
    assert not np.allclose(in_sample, base)


def test_train_holds_out_by_prompt_and_writes_cross_fitted_probabilities(tmp_path, sample_files, spec,
                                                                        tiny_backbone):
    path = repeated_prompts(sample_files.train, tmp_path / "train.csv", distinct=150)
    out = tmp_path / "model"
    cfg = quick_config(tiny_backbone, max_steps=12, eval_steps=6, learning_rate=5e-3, valid_rows=150)
    metrics = train([path], out, cfg, spec).metrics
    holdout = pd.read_csv(out / HOLDOUT_FILE, dtype={"id": str})
    pairs = load_training_files([path], spec).pairs
    groups = dict(zip(pairs.ids, prompt_groups(pairs, spec)))
    held = set(holdout["id"])
    trained_on = {groups[i] for i in pairs.ids if i not in held}
    assert not {groups[i] for i in held} & trained_on
    logits = holdout[[f"logit_{c}" for c in LABELS]].to_numpy(float)
    targets = holdout[[f"target_{c}" for c in LABELS]].to_numpy(float)
    probs = holdout[LABELS].to_numpy(float)
    temperature = read_model_info(out)["temperature"]
    crossfit = cross_fitted_temperature(logits, targets, seed=cfg.seed)
    if log_loss(targets, crossfit) < log_loss(targets, softmax(logits)):  # the temperature helps out of sample
        assert temperature != 1.0 and np.allclose(probs, crossfit, atol=1e-6)
        assert not np.allclose(probs, softmax(logits, temperature), atol=1e-6)  # not the in-sample scaling
    else:  # it does not: dropped, the raw probabilities are written
        assert temperature == 1.0 and np.allclose(probs, softmax(logits), atol=1e-6)
    assert metrics["temperature"] == pytest.approx(temperature)


def test_blend_is_judged_out_of_fold():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 40)
    truth = np.eye(3)[labels]
    noise = [softmax(rng.normal(0, 0.2, (40, 3))) for _ in range(6)]  # nothing to learn: any fit is overfitting
    weights, temperature, report, cv_probs = choose_blend(noise, truth)
    fitted = fit_weights(noise, truth)[2]["blend_log_loss"]
    assert fitted < min(report["single_log_loss"])  # in sample the fit always "helps"
    assert report["cv_blend_log_loss"] > min(report["single_log_loss"])  # out of fold it does not
    assert not report["fitted_blend_kept"] and temperature == 1.0 and sorted(weights) == [0, 0, 0, 0, 0, 1]
    assert np.allclose(cv_probs, noise[report["best_single"]])
    truth = np.eye(3)[rng.integers(0, 3, 200)]
    good = softmax(3 * truth + rng.normal(0, 1.5, (200, 3)))
    other = softmax(6 * truth + rng.normal(0, 4.5, (200, 3)))  # over-confident: a temperature helps
    weights, temperature, report, cv_probs = choose_blend([good, other], truth)
    assert report["fitted_blend_kept"] and report["cv_blend_log_loss"] == pytest.approx(log_loss(truth, cv_probs))
    assert np.allclose(cv_probs, cross_validated_blend([good, other], truth))


def test_fold_models_are_blended_one_fold_at_a_time():
    rng = np.random.default_rng(2)
    a0, a1, b0 = (softmax(rng.normal(0, 2, (30, 3))) for _ in range(3))
    blended = combine_folds([[a0, a1], [b0]], [0.6, 0.4], 0.7)
    expected = (combine([a0, b0], [0.6, 0.4], 0.7) + combine([a1, b0], [0.6, 0.4], 0.7)) / 2
    assert np.allclose(blended, expected)
    assert not np.allclose(blended, combine([(a0 + a1) / 2, b0], [0.6, 0.4], 0.7))  # what predict did before
