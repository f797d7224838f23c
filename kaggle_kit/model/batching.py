"""The batching engine that training's holdout pass and every prediction share: length-sorted token-budget
batches, dynamic padding, inference_mode, batches shared round-robin between replicas."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from kaggle_kit.progress import progress_bar


def token_budget_batches(lengths: list[int], max_tokens: int, max_square: int | None = None) -> list[list[int]]:
    """Rows sorted longest first, packed so rows x longest <= max_tokens and, under eager attention (`max_square`),
    rows x longest^2 <= max_square; a single longer row gets a batch alone."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        too_many = (len(current) + 1) * longest > max_tokens
        too_square = max_square is not None and (len(current) + 1) * longest * longest > max_square
        if current and (too_many or too_square):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


# Eager attention (Gemma-2) holds one layer's fp32 scores, rows x heads x len^2 x 4 bytes, several times over
# (scores, soft-capped, masked, softmax): capped here at 1 GiB each, whatever --max-tokens allows.
EAGER_SCORES_BYTES = 2 ** 30


def attention_square_budget(model: torch.nn.Module) -> int | None:
    """rows x len^2 allowed per batch when the model attends eagerly; None for sdpa/flash (memory linear in len)."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) != "eager":
        return None
    heads = int(getattr(config, "num_attention_heads", 1) or 1)
    return EAGER_SCORES_BYTES // (4 * heads)


def pad_batch(rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def run_batches(model, batches: list[list[int]], encoded: list[list[int]], pad_id: int, out: np.ndarray, bar) -> None:
    device = model_device(model)
    with torch.inference_mode():
        for batch in batches:
            inputs = {k: v.to(device) for k, v in pad_batch([encoded[i] for i in batch], pad_id).items()}
            logits = model(**inputs).logits.float().cpu().numpy()
            out[batch] = logits
            bar.update(len(batch))


def predict_logits(model, pad_id: int, encoded: list[list[int]], max_tokens: int, num_labels: int,
                   progress: bool = True, replicas: list[torch.nn.Module] | None = None) -> np.ndarray:
    """Logits in the input order; sorted batches are shared round-robin between replicas (one per GPU)."""
    batches = token_budget_batches([len(e) for e in encoded], max_tokens, attention_square_budget(model))
    logits = np.zeros((len(encoded), num_labels), dtype=np.float32)
    models = replicas or [model]
    with progress_bar(len(encoded), "predict", "row", enabled=progress) as bar:
        if len(models) == 1:
            run_batches(models[0], batches, encoded, pad_id, logits, bar)
        else:
            with ThreadPoolExecutor(len(models)) as pool:
                jobs = [pool.submit(run_batches, m, batches[k::len(models)], encoded, pad_id, logits, bar)
                        for k, m in enumerate(models)]
                for job in jobs:
                    job.result()
    return logits
