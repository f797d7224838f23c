"""The batching engine that training's holdout pass and every prediction share: length-sorted token-budget
batches, dynamic padding or packed rows (packing.py), inference_mode, batches shared round-robin between replicas."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from kaggle_kit.errors import UsageProblem
from kaggle_kit.model.packing import PACK_TOKENS, packed_batches, packed_logits, packed_tokens, packing_problem
from kaggle_kit.progress import progress_bar

log = logging.getLogger(__name__)
BATCHING_CHOICES = ("auto", "packed", "padded")


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


@dataclass(frozen=True)
class Batching:
    """How rows become forward passes: padded to the longest row of each batch, or packed (packing.py)."""

    packed: bool = False
    square: int | None = None  # eager attention's cap on rows x len^2 per pass (attention_square_budget)
    capacity: int = PACK_TOKENS  # tokens per pack

    @property
    def name(self) -> str:
        return "packed" if self.packed else "padded"

    def batches(self, lengths: list[int], max_tokens: int) -> list[list[int]]:
        if self.packed:
            return packed_batches(lengths, max_tokens, self.capacity, self.square)
        return token_budget_batches(lengths, max_tokens, self.square)

    def tokens(self, batch: list[int], lengths: list[int]) -> int:
        """Tokens one forward pass over `batch` computes, padding included."""
        if self.packed:
            return packed_tokens(batch, lengths, self.capacity)
        return len(batch) * max(lengths[i] for i in batch)

    def logits(self, model, rows: list[list[int]], pad_id: int) -> torch.Tensor:
        if self.packed:
            return packed_logits(model, rows, pad_id, self.capacity)
        device = model_device(model)
        return model(**{k: v.to(device) for k, v in pad_batch(rows, pad_id).items()}).logits


@dataclass
class BatchStats:
    """What the forward passes computed: real tokens, tokens computed (padding included), the batching used."""

    tokens: int = 0
    computed: int = 0
    used: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, batching: Batching, real: int, computed: int) -> None:
        with self.lock:
            self.tokens, self.computed = self.tokens + real, self.computed + computed
            self.used.add(batching.name)

    @property
    def padding_fraction(self) -> float:
        return round(1 - self.tokens / self.computed, 6) if self.computed else 0.0

    def report(self) -> dict:
        return {"batching": "+".join(sorted(self.used)) or None, "padding_fraction": self.padding_fraction}


_said: set[str] = set()


def say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.warning(message)


def check_batching(requested: str, model_types: list[str]) -> str | None:
    """Before anything loads: refuse `packed` where a model cannot pack (its type, or this transformers); for `auto`,
    the note saying why the batches are padded (None when every model packs, or padding was asked for)."""
    from kaggle_kit.model.packing import PACKABLE_TYPES, library_problem

    if requested not in BATCHING_CHOICES:
        raise UsageProblem(f"unknown batching '{requested}'", hint=f"choose {', '.join(BATCHING_CHOICES)}")
    if requested == "padded":
        return None
    other = sorted({t for t in model_types if t not in PACKABLE_TYPES})
    problem = (f"{', '.join(other)} models have no packed-sequence path (packing is for "
               f"{', '.join(PACKABLE_TYPES)} decoders)" if other else library_problem())
    if problem and requested == "packed":
        raise UsageProblem(f"--batching packed: {problem}", hint="use --batching padded (or auto)")
    return f"padded batches: {problem}" if problem else None


def batching_for(model, requested: str = "auto") -> Batching:
    """packed where the model supports it (auto or packed), else padded. Why an auto run pads is said by
    check_batching before loading; a reason only the loaded model shows (its attention kernel) is said here, once."""
    square = attention_square_budget(model)
    if requested == "padded":
        return Batching(False, square)
    problem = packing_problem(model)
    if problem is None:
        return Batching(True, square)
    if requested == "packed":
        raise UsageProblem(f"--batching packed: {problem}", hint="use --batching padded (or auto)")
    if "attention" in problem:
        say_once(f"note: padded batches: {problem}")
    return Batching(False, square)


def run_batches(model, batches: list[list[int]], encoded: list[list[int]], pad_id: int, out: np.ndarray, bar,
                batching: Batching | None = None, stats: BatchStats | None = None) -> None:
    batching = batching or Batching(False, attention_square_budget(model))
    with torch.inference_mode():
        for batch in batches:
            rows = [encoded[i] for i in batch]
            out[batch] = batching.logits(model, rows, pad_id).float().cpu().numpy()
            if stats is not None:
                lengths = {i: len(encoded[i]) for i in batch}
                stats.add(batching, sum(lengths.values()), batching.tokens(batch, lengths))
            bar.update(len(batch))


def predict_logits(model, pad_id: int, encoded: list[list[int]], max_tokens: int, num_labels: int,
                   progress: bool = True, replicas: list[torch.nn.Module] | None = None,
                   batching: Batching | None = None, stats: BatchStats | None = None) -> np.ndarray:
    """Logits in the input order; sorted batches are shared round-robin between replicas (one per GPU).
    `batching`: padded (default) or packed (batching_for)."""
    batching = batching or Batching(False, attention_square_budget(model))
    batches = batching.batches([len(e) for e in encoded], max_tokens)
    logits = np.zeros((len(encoded), num_labels), dtype=np.float32)
    models = replicas or [model]
    with progress_bar(len(encoded), "predict", "row", enabled=progress) as bar:
        if len(models) == 1:
            run_batches(models[0], batches, encoded, pad_id, logits, bar, batching, stats)
        else:
            with ThreadPoolExecutor(len(models)) as pool:
                jobs = [pool.submit(run_batches, m, batches[k::len(models)], encoded, pad_id, logits, bar, batching,
                                    stats) for k, m in enumerate(models)]
                for job in jobs:
                    job.result()
    return logits
