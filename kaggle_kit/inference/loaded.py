"""One model loaded for budgeted prediction: its encodings, replicas and side-head features."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.data.encode import Encoder
from kaggle_kit.model.model_dir import TrainedModel


@dataclass
class Loaded:
    """One model ready to predict: encodings of every row, replicas (one per GPU) and a thread pool for them."""

    index: int
    trained: TrainedModel
    encoder: Encoder
    tokens: dict
    encoded: list[list[int]]
    replicas: list
    pool: ThreadPoolExecutor | None
    load_s: float
    tokenize_s: float
    features: np.ndarray | None = None  # side_head.pair_features of every row, when the model has a side head
    swap_features: np.ndarray | None = None
    swap_encoded: dict[int, list[int]] = field(default_factory=dict)

    @property
    def lengths(self) -> list[int]:
        return [len(e) for e in self.encoded]

    def swapped(self, rows: list[int], spec: CompetitionSpec) -> dict[int, list[int]]:
        """A/B-swapped encodings of `rows` (cached): the same turns with the responses exchanged, no re-tokenising."""
        a, b = spec.swap_pairs[0]
        fields = [{a: b, b: a}.get(f, f) for f in self.encoder.spec.fields]
        for r in rows:
            if r not in self.swap_encoded:
                self.swap_encoded[r] = self.encoder.assemble([self.tokens[f][r] for f in fields])
        return {r: self.swap_encoded[r] for r in rows}

    def probs(self, logits: np.ndarray, rows: list[int], swapped: bool = False) -> np.ndarray:
        features = self.swap_features if swapped else self.features
        return self.trained.probs(logits[rows], None if features is None else features[rows])

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
