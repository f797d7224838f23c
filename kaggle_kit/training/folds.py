"""Prompt-grouped folds: rows that share a prompt never sit on both sides of a split (cv, --fold and the holdout)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.data.reading import Pairs
from kaggle_kit.errors import KitError


def prompt_groups(pairs: Pairs, spec: CompetitionSpec) -> np.ndarray:
    """One group id per distinct prompt: rows sharing a prompt always land in the same fold."""
    keys = [json.dumps(turns, ensure_ascii=False) for turns in pairs.texts[spec.text_columns[0]]]
    return pd.factorize(pd.Series(keys))[0]


def fold_splits(labels: np.ndarray, groups: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """StratifiedGroupKFold: classes balanced across folds, no prompt on both sides. The same for `cv` and --fold."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(np.unique(groups))
    present = np.bincount(labels)
    if n_groups < k or present[present > 0].min() < k:  # a class absent from soft rows' argmax is no obstacle
        raise KitError(f"{len(labels)} training rows ({n_groups} distinct prompts) are too few for {k} folds",
                       hint="use more rows or fewer folds")
    index = np.arange(len(labels))
    splits = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(index, labels, groups)
    return [(np.sort(train), np.sort(valid)) for train, valid in splits]


def grouped_holdout(labels: np.ndarray, groups: np.ndarray, n_valid: int,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """About n_valid rows held out with no prompt on both sides: the first of k ~ n/n_valid StratifiedGroupKFold folds
    (the grouping `cv` uses), or a GroupShuffleSplit where a class is too rare to stratify."""
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    n = len(labels)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise KitError(f"all {n} training rows share one prompt: no holdout can keep prompts apart",
                       hint="use data with more than one prompt")
    k = min(n_groups, max(2, round(n / max(1, n_valid))))
    present = np.bincount(labels)
    index = np.arange(n)
    if present[present > 0].min() >= k:
        train, valid = next(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(index, labels,
                                                                                                     groups))
    else:
        splitter = GroupShuffleSplit(n_splits=1, test_size=min(0.5, max(1, n_valid) / n), random_state=seed)
        train, valid = next(splitter.split(index, labels, groups))
    return np.sort(train), np.sort(valid)
