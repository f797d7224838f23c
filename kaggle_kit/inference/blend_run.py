"""A fitted blend.json laid out for the budgeted predictor: one entry per model dir, the most valuable first.

Value per second decides the order: a member's weight (its share of the blend) over its cost, the cost estimated from
the size of the weights it loads (a Gemma-9B member costs many DeBERTa members). A member's first fold is worth more
than its further folds (they refine what the first already says), so each further fold counts for less."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kaggle_kit.inference.blending import Blend, Member, combine_folds
from kaggle_kit.inference.budget import VALUE_PER_ROW
from kaggle_kit.model.model_dir import MERGED_DIR, find_backbone, read_model_info

WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt")


@dataclass
class BlendRun:
    model_dirs: list[Path]
    backbones: list[str | None]  # what each model dir loads its backbone from (None: its merged/ or recorded one)
    values: list[float]  # value per row of each model dir's pass, in the planner's units (a swap pass is 1)
    member_of: list[int]
    weights: list[float]  # one per member, in the order of `names`
    temperature: float
    names: list[str]

    def combine(self, probs: dict[int, np.ndarray]) -> np.ndarray:
        """The rows' probabilities from the model dirs that reached them, blended fold by fold as fitted; a member
        none of whose model dirs reached them drops out (the others' weights renormalised)."""
        members = sorted({self.member_of[m] for m in probs})
        sets = [[probs[m] for m in sorted(probs) if self.member_of[m] == k] for k in members]
        weights = [self.weights[k] for k in members]
        return combine_folds(sets, [w / sum(weights) for w in weights], self.temperature)


def weights_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for pattern in WEIGHT_FILES for p in folder.glob(pattern) if p.is_file())


def load_cost(model_dir: Path, backbone: str | None) -> float:
    """Bytes of weights a model dir loads (its merged/ model, else its backbone): a proxy for its time per token."""
    merged = model_dir / MERGED_DIR
    if backbone is None and merged.is_dir():
        return float(weights_bytes(merged)) or 1.0
    try:
        return float(weights_bytes(find_backbone(model_dir, read_model_info(model_dir), backbone))) or 1.0
    except Exception:  # an unresolvable backbone fails later, with its own clear message, when it is loaded
        return 1.0


def blend_run(blend: Blend, backbone_of: Callable[[Member], str | None]) -> BlendRun:
    """Members with weight > 0, ordered by weight per cost; every model dir of each, with its backbone."""
    used = [m for m in blend.members if m.weight > 0]
    backbones = {m.name: backbone_of(m) for m in used}
    cost = {m.name: load_cost(m.model_dirs[0], backbones[m.name]) for m in used}
    used.sort(key=lambda m: -m.weight / cost[m.name])
    first = used[0]
    dirs, member_of, values, bbs = [], [], [], []
    for k, m in enumerate(used):
        for j, d in enumerate(m.model_dirs):
            dirs.append(d)
            member_of.append(k)
            bbs.append(backbones[m.name])
            # the planner prices every model not loaded yet at the first one's rate: its cost ratio goes in the value
            values.append(VALUE_PER_ROW["model"] * m.weight / first.weight * cost[first.name] / cost[m.name] / (j + 1))
    return BlendRun(dirs, bbs, values, member_of, [m.weight for m in used], blend.temperature,
                    [m.name for m in used])
