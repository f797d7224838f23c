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
