"""A blend.json in an infer kernel: what build-kernel must mount (every member's backbone) and refuse, and how the
kernel resolves each member's backbone.

At build time the blend.json is read where the model dataset is made from: ./<[predict] blend>, else
./<model dataset slug>/<[predict] blend>. In the kernel it lies in the mounted [datasets] model."""

from __future__ import annotations

import json
import math
from pathlib import Path

from kaggle_kit.config import ProjectConfig
from kaggle_kit.errors import KitError, UsageProblem
from kaggle_kit.kernel.inputs import find_source, parse_source

MERGED_DIR = "merged"  # model/model_dir.MERGED_DIR: a member whose every model dir has one loads no backbone


def uses_blend_file(cfg: ProjectConfig) -> bool:
    return cfg.predict.blend.endswith(".json")


def local_blend_file(cfg: ProjectConfig) -> Path:
    name = cfg.predict.blend
    candidates = [Path(name)]
    if cfg.datasets.model:
        candidates.append(Path(parse_source(cfg.datasets.model).slug) / name)
    for path in candidates:
        if path.is_file():
            return path
    raise UsageProblem(f"[predict] blend {name}: not found here ({', '.join(map(str, candidates))})",
                       hint="build the infer kernel beside the folder uploaded as [datasets] model: its members' "
                            "backbones are read from the blend.json")


def _members(path: Path) -> list[dict]:
    """The used members (weight > 0), each weight a finite number >= 0 and each used member with model dirs, as
    predict will require in the kernel: refused here, at build time."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        weights = [float(m["weight"]) for m in data["members"]]
        problem = next((f"member {m.get('name')}: weight {w} must be a finite number >= 0" for m, w in
                        zip(data["members"], weights) if not (math.isfinite(w) and w >= 0)), None)
        used = [m for m, w in zip(data["members"], weights) if w > 0]
        problem = problem or next((f"member {m.get('name')}: model_dirs is empty" for m in used
                                   if not m["model_dirs"]), None)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problem = str(exc)
    if problem:
        raise KitError(f"{path} is not a valid blend.json ({problem})", hint="write it again with `kaggle-kit blend`")
    return used


def _merged(blend_file: Path, member: dict) -> bool:
    return all((blend_file.parent / d / MERGED_DIR / "config.json").is_file() for d in member["model_dirs"])


def blend_backbone_sources(cfg: ProjectConfig) -> list[str]:
    """The backbone sources an infer kernel with this blend.json mounts; refuses a blend it could not run:
    no [datasets] model to hold it, or a member whose backbone has no source (and no merged/ model)."""
    if not cfg.datasets.model:
        raise UsageProblem(f"[predict] blend {cfg.predict.blend} needs [datasets] model: the dataset holding the "
                           "blend.json and its members' model dirs",
                           hint="upload the folder with `kaggle-kit upload` and name it in [datasets] model")
    path = local_blend_file(cfg)
    sources: list[str] = []
    for m in _members(path):
        source = m.get("backbone_source") or cfg.datasets.backbone
        if source:
            sources.append(source)
        elif not _merged(path, m):
            raise UsageProblem(f"{path}: member {m['name']} (backbone {m.get('backbone')}) has no backbone source "
                               "and no merged/ model, so the kernel could not load it",
                               hint="`kaggle-kit blend --backbone-source NAME=REF`, [datasets] backbone, or train it "
                                    "again with `train --merge`")
    return sources


def member_backbone(member, datasets_backbone: str | None) -> str | None:
    """Kernel side: the member's merged/ model where every model dir has one (None: load_trained uses it), else the
    mounted folder of its backbone source, else of [datasets] backbone."""
    if all((Path(d) / MERGED_DIR / "config.json").is_file() for d in member.model_dirs):
        return None
    source = member.backbone_source or datasets_backbone
    return str(find_source(source)) if source else None
