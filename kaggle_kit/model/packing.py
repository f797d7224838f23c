"""Packed (padding-free) batches for decoder classifiers: several rows back to back in one sequence, `position_ids`
restarting at 0 for each, so transformers' masking builds a block-diagonal causal mask and no padding is computed;
the classification head is applied to each row's pooled token (the one the padded model would pool)."""

from __future__ import annotations

import bisect

# Decoder families whose transformers code builds its mask in masking_utils (create_causal_mask /
# create_sliding_window_causal_mask) and whose SequenceClassification pools the rightmost non-pad token with a
# `score` head: checked on tiny Llama, Gemma-2, Qwen2 and Mistral (tests/test_packed_batches.py).
PACKABLE_TYPES = ("llama", "mistral", "qwen2", "gemma2")
# sdpa and eager take the block-diagonal mask masking_utils builds; other kernels are not checked here.
PACKABLE_ATTENTION = ("sdpa", "eager")
# Tokens per pack (a longer row packs alone). Attention over a pack costs pack_len^2 whatever its rows, where separate
# rows cost the sum of their squares; packs shorter than the rows make many small passes. Measured on this CPU
# (docs/packed-inference.md: tiny Llama, rows up to 1024 tokens): 256 / 512 / 1024 / 2048-token packs ran 1.90 /
# 1.92 / 5.39 / 2.41 rows/s against 4.43 padded.
PACK_TOKENS = 1024
# A pack shares a forward pass only with packs at least this full relative to the widest, so padding stays under
# 1 - SAME_WIDTH of the tokens computed whatever the lengths; part-filled packs make passes of their own.
SAME_WIDTH = 0.995


def packing_problem(model) -> str | None:
    """Why this model cannot run packed batches (one line), or None when it can."""
    config = getattr(model, "config", None)
    kind = getattr(config, "model_type", None)
    if kind not in PACKABLE_TYPES:
        what = f"{kind} models have" if kind else "this model has"
        return f"{what} no packed-sequence path (packing is for {', '.join(PACKABLE_TYPES)} decoders)"
    attention = getattr(config, "_attn_implementation", None)
    if attention not in PACKABLE_ATTENTION:
        return f"{attention} attention is not checked with packed sequences (sdpa and eager are)"
    return library_problem()


def library_problem() -> str | None:
    """transformers 4.53 builds no mask from position_ids (4.54 added find_packed_sequence_indices, applied only on
    torch >= 2.6 there); without it the packed rows would attend to each other."""
    import transformers
    from transformers import masking_utils

    if not hasattr(masking_utils, "find_packed_sequence_indices"):
        return f"transformers {transformers.__version__} builds no block-diagonal mask from position_ids (4.54+ does)"
    if getattr(masking_utils, "_is_torch_greater_or_equal_than_2_6", True) is False:
        return f"transformers {transformers.__version__} applies packed-sequence masks only on torch >= 2.6"
    return None


def pack_rows(rows: list[int], lengths, capacity: int) -> list[list[int]]:
    """Best-fit decreasing: each row (longest first) into the fullest pack it still fits, else a new pack; a row longer
    than `capacity` packs alone. `lengths`: row -> tokens."""
    packs: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, pack), sorted: the tightest fit is found by bisection
    for i in sorted(rows, key=lambda r: -lengths[r]):
        n = lengths[i]
        at = bisect.bisect_left(free, (n, -1))
        if at == len(free):
            packs.append([i])
            k, room = len(packs) - 1, capacity - n
        else:
            room, k = free.pop(at)
            packs[k].append(i)
            room -= n
        if room > 0:
            bisect.insort(free, (room, k))
    return packs


def packed_width(packs: list[list[int]], lengths: list[int]) -> int:
    return max(sum(lengths[i] for i in p) for p in packs)


def packed_batches(lengths: list[int], max_tokens: int, capacity: int = PACK_TOKENS,
                   max_square: int | None = None) -> list[list[int]]:
    """Forward passes of whole packs, packs x widest <= max_tokens (and packs x widest^2 <= max_square under eager
    attention); each pass is its rows, pack after pack."""
    packs = pack_rows(list(range(len(lengths))), lengths, capacity)
    packs.sort(key=lambda p: -sum(lengths[i] for i in p))
    batches: list[list[int]] = []
    current: list[list[int]] = []
    for pack in packs:
        width = packed_width(current or [pack], lengths)
        too_many = (len(current) + 1) * width > max_tokens
        too_square = max_square is not None and (len(current) + 1) * width * width > max_square
        too_short = sum(lengths[i] for i in pack) < SAME_WIDTH * width  # the leftover packs: a pass of their own
        if current and (too_many or too_square or too_short):
            batches.append([i for p in current for i in p])
            current = []
        current.append(pack)
    if current:
        batches.append([i for p in current for i in p])
    return batches


def packed_tokens(batch: list[int], lengths: list[int], capacity: int = PACK_TOKENS) -> int:
    """Tokens one packed forward pass computes: packs x the widest pack."""
    packs = pack_rows(batch, lengths, capacity)
    return len(packs) * packed_width(packs, lengths)


def packed_inputs(rows: list[list[int]], pad_id: int,
                  capacity: int = PACK_TOKENS) -> tuple[dict, list[tuple[int, int]]]:
    """input_ids and position_ids of the packs of `rows`, and each row's (pack, start); a shorter pack's tail is
    padding with positions restarting too, so it is a sequence of its own that no row attends to."""
    import torch

    lengths = [len(r) for r in rows]
    packs = pack_rows(list(range(len(rows))), lengths, capacity)
    width = packed_width(packs, lengths)
    ids = torch.full((len(packs), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(packs), width), dtype=torch.long)
    where: list[tuple[int, int]] = [(0, 0)] * len(rows)
    for p, pack in enumerate(packs):
        start = 0
        for i in pack:
            n = lengths[i]
            ids[p, start:start + n] = torch.tensor(rows[i], dtype=torch.long)
            positions[p, start:start + n] = torch.arange(n)
            where[i] = (p, start)
            start += n
        positions[p, start:] = torch.arange(width - start)
    return {"input_ids": ids, "position_ids": positions}, where


def pooled_index(row: list[int], pad_id: int | None) -> int:
    """The token a padded SequenceClassification model pools: the rightmost one that is not the config's pad token
    (0 if all are), or the last one when the config has no pad token."""
    if pad_id is None:
        return len(row) - 1
    return next((k for k in range(len(row) - 1, -1, -1) if row[k] != pad_id), 0)


def classifier_parts(model):
    """(decoder, score head) of a SequenceClassification model, under a peft wrapper too (LoRA layers stay active;
    the saved head copy is the one called)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, base.base_model_prefix), base.score


def packed_logits(model, rows: list[list[int]], pad_id: int, capacity: int = PACK_TOKENS):
    """Logits of `rows` (token id lists) from one packed forward pass, in the order given (a tensor)."""
    import torch

    decoder, head = classifier_parts(model)
    inputs, where = packed_inputs(rows, pad_id, capacity)
    device = next(model.parameters()).device
    # attention_mask=None and no cache: masking_utils looks for packed sequences only then
    hidden = decoder(input_ids=inputs["input_ids"].to(device), position_ids=inputs["position_ids"].to(device),
                     attention_mask=None, use_cache=False).last_hidden_state
    config_pad = getattr(getattr(model, "config", None), "pad_token_id", None)
    pick_pack = torch.tensor([p for p, _ in where], device=hidden.device)
    pick_token = torch.tensor([start + pooled_index(r, config_pad) for r, (_, start) in zip(rows, where)],
                              device=hidden.device)
    return head(hidden[pick_pack, pick_token])
