"""How many tokens a backbone can take, read from its config.json and tokenizer_config.json (no weights loaded)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# transformers' "no limit" sentinel for tokenizers (int(1e30)); anything this large is not a real limit.
NO_TOKENIZER_LIMIT = 1_000_000
# RoBERTa-style position ids start after the padding index, so max_position_embeddings 514 means 512 tokens.
PADDING_OFFSET_TYPES = {"roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text", "xlm-roberta-xl"}


@dataclass(frozen=True)
class TokenLimit:
    tokens: int | None  # None: no hard limit known
    reason: str


def json_object(path: Path) -> dict:
    """A JSON file's object, or {} when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def relative_positions_only(config: dict) -> bool:
    """DeBERTa-v2/v3: relative attention without absolute position embeddings runs past max_position_embeddings."""
    return (config.get("model_type") in ("deberta-v2", "deberta") and bool(config.get("relative_attention"))
            and not config.get("position_biased_input", True))


def model_limit(config: dict) -> TokenLimit:
    """The position limit of the model itself."""
    kind = config.get("model_type", "?")
    positions = config.get("max_position_embeddings")
    if relative_positions_only(config):
        return TokenLimit(None, f"{kind} uses relative positions only")
    if not isinstance(positions, int) or positions <= 0:
        return TokenLimit(None, f"{kind} declares no max_position_embeddings")
    if kind in PADDING_OFFSET_TYPES:
        offset = int(config.get("pad_token_id") or 1) + 1
        return TokenLimit(positions - offset, f"{kind} max_position_embeddings {positions} minus padding offset")
    return TokenLimit(positions, f"{kind} max_position_embeddings {positions}")


def tokenizer_limit(backbone: Path) -> int | None:
    value = json_object(backbone / "tokenizer_config.json").get("model_max_length")
    return int(value) if isinstance(value, (int, float)) and 0 < value < NO_TOKENIZER_LIMIT else None


def backbone_limit(backbone: Path) -> TokenLimit:
    """The smaller of the model's position limit and the tokenizer's model_max_length.

    A relative-position DeBERTa ignores its tokenizer's 512: that is the pretraining length, not a limit, and the
    LMSYS solutions ran it at 1024+."""
    config = json_object(backbone / "config.json")
    model = model_limit(config)
    tok = tokenizer_limit(backbone)
    if tok is not None and not relative_positions_only(config) and (model.tokens is None or tok < model.tokens):
        return TokenLimit(tok, f"tokenizer model_max_length {tok}")
    return model


def fit_max_len(requested: int, backbone: Path) -> tuple[int, TokenLimit]:
    """The max_len to use: `requested`, lowered to the backbone's limit when that is smaller."""
    limit = backbone_limit(backbone)
    if limit.tokens is not None and requested > limit.tokens:
        return limit.tokens, limit
    return requested, limit
