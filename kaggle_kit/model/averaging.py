"""Several model dirs (a cv run's folds) averaged into one adapter: the weighted mean of the members' merged weights.

LoRA deltas are averaged exactly by concatenating ranks, as peft's `add_weighted_adapter(combination_type="cat")`
does: A_i stacked, B_i stacked with w_i * s_i folded in (s_i: the member's alpha/r, or alpha/sqrt(r) under rsLoRA),
so B A = sum_i w_i s_i B_i A_i at rank sum r_i and scaling 1. Averaging A and B separately would not be the mean of
the deltas. Saved modules (the classification head, DeBERTa's pooler) are plain weighted means: peft refuses
adapters carrying modules_to_save, so that part is ours. The result stays an adapter over the base, so a 4-bit base
loads it as it loads any member."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from kaggle_kit.atomic import atomic_path, write_text_atomic
from kaggle_kit.errors import KitError, UsageProblem
from kaggle_kit.model.model_dir import ADAPTER_DIR, check_model_dir

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")
# Adapter features whose delta is not B A times a scalar: no rank concatenation reproduces their mean.
UNSUPPORTED = {"use_dora": "DoRA", "lora_bias": "LoRA biases", "rank_pattern": "per-module ranks",
               "alpha_pattern": "per-module alphas", "target_parameters": "LoRA on parameters",
               "trainable_token_indices": "trainable tokens"}
SAME_KIND_HINT = "average the folds of one cv run (or models trained with the same settings apart from the rows)"


@dataclass
class Member:
    model_dir: Path
    info: dict  # kaggle_kit_model.json
    adapter: dict  # adapter/adapter_config.json
    weight: float  # normalised: the members' weights sum to 1

    @property
    def scaling(self) -> float:
        """peft's LoRA scaling: alpha / r, or alpha / sqrt(r) under rsLoRA."""
        r, alpha = float(self.adapter["r"]), float(self.adapter["lora_alpha"])
        return alpha / (math.sqrt(r) if self.adapter.get("use_rslora") else r)


def parse_weights(text: str | None, count: int) -> list[float]:
    """'1,2,1' -> one finite weight >= 0 per member, not all zero, normalised to sum 1 (default: equal)."""
    if not text:
        return [1.0 / count] * count
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        raise UsageProblem(f"--weights '{text}' is not a comma-separated list of numbers") from None
    if len(weights) != count:
        raise UsageProblem(f"--weights gives {len(weights)} weight(s) for {count} model(s)",
                           hint="give one weight per member, in the order of the model dirs")
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise UsageProblem(f"--weights '{text}': each weight must be a finite number >= 0, and not all zero")
    total = sum(weights)
    return [w / total for w in weights]


def read_members(model_dirs: list[Path], weights: list[float]) -> list[Member]:
    """The members' infos and adapter configs, each checked (before any weight is read)."""
    if len(model_dirs) < 2:
        raise UsageProblem(f"{len(model_dirs)} model dir(s) given: averaging needs at least two",
                           hint="pass several model dirs, or a cv --out folder")
    seen: dict[Path, Path] = {}
    members = []
    for d, w in zip(model_dirs, weights):
        if d.resolve() in seen:
            raise UsageProblem(f"{d} is given twice (also as {seen[d.resolve()]})",
                               hint="pass each model once")
        seen[d.resolve()] = d
        info = check_model_dir(d)
        config_path, weights_path = d / ADAPTER_DIR / ADAPTER_CONFIG, d / ADAPTER_DIR / ADAPTER_WEIGHTS
        if not config_path.exists() or not weights_path.exists():
            raise KitError(f"{d} has no LoRA adapter ({d / ADAPTER_DIR}): only adapters can be averaged",
                           hint="average model dirs written by train or cv")
        try:
            adapter = json.loads(config_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise KitError(f"{config_path} is corrupt ({str(exc).splitlines()[0]})") from None
        if not isinstance(adapter, dict) or adapter.get("peft_type") != "LORA" or "r" not in adapter:
            raise KitError(f"{config_path} is not a LoRA adapter config", hint="average model dirs written by train")
        used = [name for key, name in UNSUPPORTED.items() if adapter.get(key)]
        if used:
            raise KitError(f"{d} uses {used[0]}: its delta is not a scaled B A, so ranks cannot be averaged exactly",
                           hint="average plain LoRA adapters")
        members.append(Member(d, info, adapter, w))
    check_compatible(members)
    return members


def _targets(m: Member) -> tuple:
    targets = m.adapter.get("target_modules")
    return (sorted(targets) if isinstance(targets, list) else targets, m.adapter.get("layers_to_transform"),
            m.adapter.get("layers_pattern"), sorted(set(m.adapter.get("modules_to_save") or [])))


# What members must share, each one line when they do not: the weights must mean the same thing in each.
AGREEMENT = (
    ("backbone", lambda m: (m.info["model_type"], Path(m.info["backbone"]).name)),
    ("LoRA targets", _targets),
    ("label space", lambda m: (m.info["num_labels"], m.info.get("label_columns"), m.info.get("competition"))),
    ("encoding", lambda m: (m.info["encoding"], (m.info.get("max_len") or {}).get("predict"))),
    ("quantisation", lambda m: (m.info.get("train_config") or {}).get("quantize")),
)


def check_compatible(members: list[Member]) -> None:
    first = members[0]
    for m in members[1:]:
        for what, key in AGREEMENT:
            if key(m) != key(first):
                raise KitError(f"{m.model_dir} differs from {first.model_dir} in {what} ({key(m)!r} vs "
                               f"{key(first)!r}): their weights cannot be averaged", hint=SAME_KIND_HINT)


def average_weights(members: list[Member]) -> tuple[dict[str, torch.Tensor], int]:
    """The averaged adapter's tensors and its rank (sum of the members' ranks). One tensor of each member in memory
    at a time; sums in float64, stored in the members' dtype."""
    from safetensors import safe_open

    handles = [safe_open(str(m.model_dir / ADAPTER_DIR / ADAPTER_WEIGHTS), "pt") for m in members]
    keys = set(handles[0].keys())
    for m, h in zip(members[1:], handles[1:]):
        if set(h.keys()) != keys:
            odd = sorted(keys ^ set(h.keys()))[0]
            raise KitError(f"{m.model_dir}'s adapter holds other modules than {members[0].model_dir}'s (e.g. {odd})",
                           hint=SAME_KIND_HINT)
    averaged: dict[str, torch.Tensor] = {}
    for key in sorted(keys):
        tensors = [h.get_tensor(key) for h in handles]
        part = LORA_KEY.match(key)
        if part is None and "lora_" in key:
            raise KitError(f"{members[0].model_dir}: adapter tensor {key} is neither a LoRA A/B matrix nor a saved "
                           "module", hint="average plain LoRA adapters")
        if part is not None and part["part"] == "A":
            averaged[key] = torch.cat(tensors, dim=0)
        elif part is not None:
            averaged[key] = torch.cat([t.double() * (m.weight * m.scaling) for m, t in zip(members, tensors)],
                                      dim=1).to(tensors[0].dtype)
        else:
            if len({tuple(t.shape) for t in tensors}) != 1 or not tensors[0].is_floating_point():
                raise KitError(f"saved module {key} differs in shape between the members (or is not a float "
                               "tensor)", hint=SAME_KIND_HINT)
            averaged[key] = sum(t.double() * m.weight for m, t in zip(members, tensors)).to(tensors[0].dtype)
    return averaged, sum(int(m.adapter["r"]) for m in members)


def save_adapter(members: list[Member], tensors: dict[str, torch.Tensor], rank: int, folder: Path) -> None:
    """adapter_config.json (the first member's, at the summed rank with scaling 1) and the weights, atomically."""
    from safetensors.torch import save_file

    config = {**members[0].adapter, "r": rank, "lora_alpha": rank, "use_rslora": False, "rank_pattern": {},
              "alpha_pattern": {}, "inference_mode": True}
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / ADAPTER_WEIGHTS) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"format": "pt"})
    write_text_atomic(folder / ADAPTER_CONFIG, json.dumps(config, indent=2, sort_keys=True))


def average_record(members: list[Member], rank: int) -> dict:
    """What the averaged model dir says about itself under "average" in its info."""
    return {
        "method": "weighted mean of the members' merged weights: LoRA ranks concatenated (B_i scaled by weight_i x "
                  "the member's LoRA scaling), saved modules (head) averaged",
        "rank": rank,
        "members": [{"model_dir": str(m.model_dir.resolve()), "weight": m.weight,
                     "fold": (m.info.get("train_config") or {}).get("fold"), "lora_r": m.adapter["r"],
                     "lora_alpha": m.adapter["lora_alpha"], "rslora": bool(m.adapter.get("use_rslora")),
                     "temperature": m.info.get("temperature"), "side_head": m.info.get("side_head") is not None}
                    for m in members],
    }
