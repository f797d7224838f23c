"""Honest validation: a prompt-grouped default holdout, cross-fitted holdout probabilities, and blend figures
measured out of fold."""

import numpy as np
import pandas as pd
import pytest

from conftest import quick_config
from kaggle_kit.data.reading import load_training_files
from kaggle_kit.metrics import cross_fitted_temperature, fit_temperature, softmax
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
    assert temperature != 1.0  # else the in-sample and cross-fitted probabilities could coincide
    assert np.allclose(probs, cross_fitted_temperature(logits, targets, seed=cfg.seed), atol=1e-6)
    assert not np.allclose(probs, softmax(logits, temperature), atol=1e-6)
    assert metrics["temperature"] == pytest.approx(temperature)
