"""A backbone's shape for `plan train --backbone-config`: the sizes the memory plans read from a transformers
config.json, each a positive whole number within what any published model has, so a plan is never made from `{}`,
a negative size or a typo a thousand times too big."""

from __future__ import annotations

import json
from pathlib import Path

from kaggle_kit.config.recipes import estimated_params
from kaggle_kit.errors import UsageProblem

# key: (required, largest accepted); beyond every published model by a wide margin (Llama-3-405B: hidden 16384,
# 126 layers, 128 heads, intermediate 53248; Gemma: vocab 256000).
SIZES = {
    "hidden_size": (True, 65536),
    "num_hidden_layers": (True, 1024),
    "num_attention_heads": (True, 1024),
    "vocab_size": (True, 4_194_304),
    "intermediate_size": (False, 1_048_576),
    "num_key_value_heads": (False, 1024),
    "head_dim": (False, 4096),
}
MAX_PARAMS = 2 * 10**12  # 2T parameters: more is a typo, not a backbone


def shape_problem(shape: object) -> str | None:
    """Why this parsed config cannot be planned, or None."""
    if not isinstance(shape, dict):
        return f"is a JSON {type(shape).__name__}, not an object of sizes (a transformers config.json)"
    if not isinstance(shape.get("model_type"), str) or not shape["model_type"]:
        return "has no model_type (e.g. \"llama\", \"gemma2\", \"deberta-v2\")"
    for key, (required, largest) in SIZES.items():
        value = shape.get(key)
        if value is None:
            if required:
                return f"has no {key}"
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= largest:
            return f"{key} is {value!r}: must be a whole number from 1 to {largest}"
    heads, kv = shape["num_attention_heads"], shape.get("num_key_value_heads")
    if kv is not None and (kv > heads or heads % kv):
        return f"num_key_value_heads {kv} must divide num_attention_heads {heads}"
    if shape.get("head_dim") is None and heads > shape["hidden_size"]:
        return f"num_attention_heads {heads} is more than hidden_size {shape['hidden_size']}"
    if estimated_params(shape) > MAX_PARAMS:
        return f"describes {estimated_params(shape) / 1e12:.0f}T parameters (more than {MAX_PARAMS // 10**12}T)"
    return None


def read_backbone_shape(path: Path) -> dict:
    """The checked shape in a config.json; UsageProblem naming the file and what is wrong otherwise."""
    try:
        shape = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageProblem(f"--backbone-config {path}: cannot read it ({exc.__class__.__name__})") from None
    except ValueError as exc:
        raise UsageProblem(f"--backbone-config {path}: not JSON ({str(exc).splitlines()[0]})") from None
    problem = shape_problem(shape)
    if problem:
        raise UsageProblem(f"--backbone-config {path} {problem}",
                           hint="pass the config.json of the backbone's model folder")
    return shape


def trained_layers(shape: dict, freeze_layers: int, recipe: str) -> int:
    """Layers the recipe trains on this backbone: refused when its frozen layers are all the backbone has."""
    layers = int(shape["num_hidden_layers"])
    if freeze_layers >= layers:
        raise UsageProblem(f"recipe {recipe} freezes {freeze_layers} layers and the backbone has {layers}: nothing "
                           "would train", hint="choose a recipe for a backbone of this size")
    return layers - freeze_layers
