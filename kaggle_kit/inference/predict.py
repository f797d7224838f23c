"""Plain prediction: a trained model dir (or several, averaged) over test pairs, on one or more GPUs, with swap TTA."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.data.encode import Encoder, EncodingSpec
from kaggle_kit.data.reading import Pairs
from kaggle_kit.errors import KitError
from kaggle_kit.model.batching import BatchStats, batching_for, predict_logits
from kaggle_kit.model.model_dir import TrainedModel
from kaggle_kit.model.side_head import pair_features


def gpu_replicas(model: torch.nn.Module, load: Callable[[str], torch.nn.Module] | None = None
                 ) -> list[torch.nn.Module] | None:
    """One model per visible GPU (Kaggle's T4 x2); None on CPU or a single GPU. `load(device)` loads each copy on
    its own device; a deep copy would first be built on cuda:0 (a 4-bit 9B copy would briefly fill most of it)."""
    count = torch.cuda.device_count()
    if count < 2 or int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under torchrun each rank keeps to its own GPU
        return None
    if len(set((getattr(model, "hf_device_map", None) or {}).values())) > 1:  # split over the GPUs already
        return None
    if load is None:
        return [model] + [copy.deepcopy(model).to(f"cuda:{k}") for k in range(1, count)]
    return [model] + [load(f"cuda:{k}") for k in range(1, count)]


def finite_or_prior(probs: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, int]:
    """Rows with a non-finite probability (fp16 overflow on a long row) get the class prior; returns how many."""
    bad = ~np.isfinite(probs).all(axis=1)
    if not bad.any():
        return probs, 0
    fixed = np.array(probs, dtype=np.float64, copy=True)
    fixed[bad] = prior
    return fixed, int(bad.sum())


def unswap(probs_of_swapped: np.ndarray, spec: CompetitionSpec) -> np.ndarray:
    """Probabilities predicted on A/B-swapped rows, mapped back to the original columns."""
    return probs_of_swapped[:, list(spec.label_swap)]


def encoder_for(trained: TrainedModel) -> Encoder:
    """The training encoding, at the inference length recorded by train (within the backbone's limit)."""
    spec = EncodingSpec.from_dict(trained.info["encoding"])
    tokens = (trained.info.get("max_len") or {}).get("predict")
    return Encoder(trained.tokenizer, replace(spec, max_len=int(tokens)) if tokens else spec)


def predict_probs(trained: TrainedModel, pairs: Pairs, spec: CompetitionSpec, max_tokens: int, tta: str = "none",
                  progress: bool = True, replicas: list[torch.nn.Module] | None = None, batching: str = "auto",
                  stats: BatchStats | None = None) -> np.ndarray:
    """`replicas`: the model's copies from gpu_replicas, one per GPU (loaded once by the caller, which predicts
    many row sets with them); None: the model alone. `batching`: auto, packed or padded (batching.batching_for);
    `stats` collects the tokens computed."""
    encoder = encoder_for(trained)
    tokens = encoder.tokenize_turns(pairs, progress=progress)
    fields = encoder.spec.fields
    encoded = [encoder.assemble([tokens[f][r] for f in fields]) for r in range(len(pairs))]
    pad_id = trained.tokenizer.pad_token_id
    n = trained.info["num_labels"]
    features = pair_features(pairs, spec) if trained.side_head else None
    how = batching_for(trained.model, batching)

    def logits_of(rows: list[list[int]]) -> np.ndarray:
        return predict_logits(trained.model, pad_id, rows, max_tokens, n, progress, replicas, how, stats)

    probs = trained.probs(logits_of(encoded), features)
    if tta == "swap":
        a, b = spec.swap_pairs[0]
        # The same turns, responses exchanged: no re-tokenising.
        swapped_fields = [{a: b, b: a}.get(f, f) for f in fields]
        swapped = [encoder.assemble([tokens[f][r] for f in swapped_fields]) for r in range(len(pairs))]
        swapped_features = pair_features(pairs.swapped(spec), spec) if trained.side_head else None
        swapped_probs = trained.probs(logits_of(swapped), swapped_features)
        probs = (probs + unswap(swapped_probs, spec)) / 2
    elif tta != "none":
        raise KitError(f"unknown --tta '{tta}'", hint="choose none or swap")
    return probs


def check_weights(weights: list[float] | None, n_models: int) -> list[float]:
    """One non-negative weight per model, not all zero (default: equal weights)."""
    weights = list(weights) if weights else [1.0] * n_models
    if len(weights) != n_models:
        raise KitError(f"{n_models} model(s) but {len(weights)} weights", hint="give one --weights value per --model")
    if any(not np.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise KitError(f"weights {weights} must be non-negative and not all zero")
    return weights


def blend(prob_sets: list[np.ndarray], weights: list[float] | None = None, how: str = "prob") -> np.ndarray:
    """Weighted average of probabilities, or of log-probabilities (geometric mean, renormalised)."""
    weights = check_weights(weights, len(prob_sets))
    w = np.asarray(weights, dtype=np.float64) / sum(weights)
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in prob_sets])
    if how == "prob":
        return np.tensordot(w, stack, axes=1)
    if how == "logprob":
        mixed = np.exp(np.tensordot(w, np.log(np.clip(stack, 1e-12, 1.0)), axes=1))
        return mixed / mixed.sum(axis=1, keepdims=True)
    raise KitError(f"unknown --blend '{how}'", hint="choose prob or logprob")
