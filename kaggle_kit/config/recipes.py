"""Named training settings per backbone family: TOML files shipped in kaggle_kit/recipes/ (their sources as comments),
or a user's copy given by path; a recipe is one layer under kaggle-kit.toml, --set and flags (config/layers.py).

Without --recipe, the backbone family's recipe supplies the optimisation settings only (lr, epochs, warmup, LoRA
shape), never the GPU-specific ones (batch, precision, 4-bit)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 inside older Kaggle images
    import tomli as tomllib

from kaggle_kit.errors import KitError

GPUS = ("t4", "t4x2", "l4")  # one T4 device, Kaggle's T4 x2, one L4 (P100: no kernels in today's image)
# What a family default may set without --recipe: these suit the backbone whatever GPU (or CPU) it runs on.
FAMILY_FIELDS = ("learning_rate", "epochs", "warmup", "weight_decay", "lora_r", "lora_alpha", "lora_dropout",
                 "length_header", "length_head")
SMALL_MODEL_PARAMS = 50_000_000  # below this (tiny test models, MiniLM) a CPU run is realistic: cpu-smoke settings
BATCH_KEYS = ("batch_size", "grad_accum")
RECIPE_KEYS = {"name", "summary", "source", "predict_max_len"}


@dataclass(frozen=True)
class Recipe:
    """One recipe: TrainConfig values, per-GPU batch shapes, inference length, the backbone's shape, a source."""

    name: str
    summary: str
    source: str
    train: dict[str, Any]
    batches: dict[str, dict[str, int]]  # gpu -> {"batch_size", "grad_accum"} (per device)
    predict_max_len: int
    shape: dict[str, Any] = field(default_factory=dict)  # the published backbone's config, for `plan train`

    def settings(self, gpus: str = "t4") -> dict[str, Any]:
        """The TrainConfig values this recipe sets for `gpus` (a recipe without [batches] sets no batch shape)."""
        if not self.batches:
            return dict(self.train)
        if gpus not in self.batches:
            raise KitError(f"recipe {self.name} has no batch shape for {gpus}",
                           hint=f"choose {', '.join(self.batches)}")
        return {**self.train, **self.batches[gpus]}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def recipe_from_dict(data: dict[str, Any], where: str, name: str) -> Recipe:
    """A recipe from its TOML tables ([recipe], [train], [batches], [shape]); its [train] keys and values are checked
    when layered (config/layers.py names this recipe in any error; importing TrainConfig here would be a cycle)."""
    unknown = sorted(set(data) - {"recipe", "train", "batches", "shape"})
    if unknown:
        raise KitError(f"{where}: unknown table(s) {', '.join(unknown)}",
                       hint="a recipe has [recipe], [train], [batches] and [shape]")
    about, train = data.get("recipe", {}), data.get("train", {})
    batches, shape = data.get("batches", {}), data.get("shape", {})
    if not all(isinstance(t, dict) for t in (about, train, batches, shape)):
        raise KitError(f"{where}: [recipe], [train], [batches] and [shape] must be tables")
    _check_names(f"{where} [recipe]", about, RECIPE_KEYS)
    for gpu, shape_of in batches.items():
        if gpu not in GPUS or not isinstance(shape_of, dict):
            raise KitError(f"{where} [batches] {gpu}: must be one of {', '.join(GPUS)}, each a table of "
                           f"{' and '.join(BATCH_KEYS)}")
        _check_names(f"{where} [batches] {gpu}", shape_of, set(BATCH_KEYS))
    predict_len = about.get("predict_max_len", train.get("max_len", 1024))
    if not isinstance(predict_len, int) or isinstance(predict_len, bool) or not 16 <= predict_len <= 131072:
        raise KitError(f"{where} [recipe] predict_max_len must be an integer in 16..131072, got {predict_len!r}")
    return Recipe(name=name, summary=str(about.get("summary", "")), source=str(about.get("source", where)),
                  train=dict(train), batches={g: dict(b) for g, b in batches.items()}, predict_max_len=predict_len,
                  shape=dict(shape))


def _check_names(where: str, table: dict, known: set[str]) -> None:
    from kaggle_kit.config.checks import known_hint

    unknown = sorted(set(table) - known)
    if unknown:
        raise KitError(f"{where}: unknown key(s) {', '.join(unknown)}", hint=known_hint(unknown[0], known))


def _shipped() -> dict[str, Recipe]:
    """The package's recipes/*.toml, read through importlib.resources (package data, also inside a kernel)."""
    found = {}
    for entry in sorted(resources.files("kaggle_kit").joinpath("recipes").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            name = entry.name[:-len(".toml")]
            found[name] = recipe_from_dict(tomllib.loads(entry.read_text(encoding="utf-8")), f"recipe {name}", name)
    return found


RECIPES: dict[str, Recipe] = _shipped()
DEBERTA_V3_BASE = RECIPES["deberta-v3-base"].shape
DEBERTA_V3_LARGE = RECIPES["deberta-v3-large"].shape
GEMMA2_9B = RECIPES["gemma2-9b-qlora"].shape
LLAMA3_8B = RECIPES["llama3-8b-qlora"].shape
MINILM_L6 = RECIPES["cpu-smoke"].shape


def is_recipe_file(value: str) -> bool:
    """--recipe path/to/file.toml (a copied recipe) rather than a shipped name."""
    return value.endswith(".toml")


def recipe_text(name: str) -> str:
    """A shipped recipe's file, comments included (`kaggle-kit recipes --show NAME`), to copy and change."""
    get_recipe(name)
    return resources.files("kaggle_kit").joinpath("recipes", f"{name}.toml").read_text(encoding="utf-8")


def read_recipe_file(path: Path) -> dict[str, Any]:
    """A recipe file's TOML tables; one line when it is missing or not TOML."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise KitError(f"recipe file {path} not found",
                       hint="`kaggle-kit recipes --show NAME > mine.toml` writes one to change") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise KitError(f"recipe file {path}: not valid TOML ({exc})") from None


def get_recipe(name: str, embedded: dict[str, Any] | None = None) -> Recipe:
    """A shipped recipe by name, or a recipe file by path (`embedded`: that file's tables, as a kernel carries them)."""
    if is_recipe_file(name):
        data = embedded if embedded is not None else read_recipe_file(Path(name).expanduser())
        return recipe_from_dict(data, f"recipe {name}", name)
    if name not in RECIPES:
        raise KitError(f"unknown recipe '{name}'", hint=f"choose one of {', '.join(RECIPES)} (`kaggle-kit recipes`), "
                                                         "or give a recipe file path/to/file.toml")
    return RECIPES[name]


def estimated_params(config: dict) -> int:
    """Parameter count from a transformers config: embeddings + attention + MLP (what dominates any backbone)."""
    h, layers = int(config.get("hidden_size", 0)), int(config.get("num_hidden_layers", 0))
    inter = int(config.get("intermediate_size", 4 * h))
    heads = int(config.get("num_attention_heads", 1) or 1)
    head_dim = int(config.get("head_dim") or h // heads)
    kv = int(config.get("num_key_value_heads") or heads)
    attention = h * head_dim * (2 * heads + 2 * kv)
    mlp = (3 if config.get("model_type") in DECODER_MLP3 else 2) * h * inter
    return int(config.get("vocab_size", 0)) * h + layers * (attention + mlp)


DECODER_MLP3 = {"llama", "gemma", "gemma2", "mistral", "qwen2"}  # gated MLPs: gate, up and down projections


def family_recipe(config: dict) -> str | None:
    """The recipe whose optimisation settings suit this backbone when none is named."""
    kind = config.get("model_type")
    if estimated_params(config) < SMALL_MODEL_PARAMS:
        return "cpu-smoke"
    if kind in ("deberta-v2", "deberta"):
        return "deberta-v3-large" if int(config.get("hidden_size", 0)) >= 1024 else "deberta-v3-base"
    if kind in ("gemma2", "gemma"):
        return "gemma2-9b-qlora"
    if kind in ("llama", "mistral", "qwen2"):
        return "llama3-8b-qlora"
    return "deberta-v3-base" if kind in ("bert", "roberta", "xlm-roberta", "electra") else None


def gpus_here() -> str:
    """t4x2 when two or more CUDA devices are visible, else t4 (the batch shape used on one GPU and on CPU)."""
    return "t4x2" if cuda_devices() >= 2 else "t4"


def cuda_devices() -> int:
    """Visible CUDA devices: torch's count once torch is loaded; before that (every command resolves its config, and
    importing torch takes ~2 s) the NVIDIA driver's GPUs, narrowed by CUDA_VISIBLE_DEVICES as CUDA narrows them."""
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    gpus = Path("/proc/driver/nvidia/gpus")
    present = len(list(gpus.iterdir())) if gpus.is_dir() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or not present:
        return present
    ids = [v.strip() for v in visible.split(",")]
    return min(present, len([v for v in (ids[:ids.index("-1")] if "-1" in ids else ids) if v]))


def recipe_values(train: dict[str, Any], gpus: str | None = None,
                  embedded: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The recipe layer under a run's [train] values (`train`: what the layers above set): the named recipe's
    settings for `gpus` (default: the GPUs here), else the backbone family's FAMILY_FIELDS, else None.

    Returns (values, note); the note (name, whether chosen by the family, the inference length) goes with the run."""
    name = train.get("recipe")
    if isinstance(name, str) and name:
        recipe, auto = get_recipe(name, embedded), False
        values = recipe.settings(gpus or gpus_here()) if recipe.batches else recipe.settings()
    else:
        family = _family_of(train.get("backbone"))
        if family is None:
            return None
        recipe, auto = RECIPES[family], True
        values = {k: v for k, v in recipe.train.items() if k in FAMILY_FIELDS}
    return values, {"recipe": recipe.name, "auto": auto, "predict_max_len": recipe.predict_max_len}


def _family_of(backbone: Any) -> str | None:
    if not isinstance(backbone, str) or not backbone:
        return None
    path = Path(backbone).expanduser() / "config.json"
    try:
        return family_recipe(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None  # train() reports a missing or broken backbone in one line


def recipes_table() -> list[dict[str, Any]]:
    """Every recipe as a flat row for `kaggle-kit recipes`."""
    return [{"name": r.name, "summary": r.summary, "source": r.source, "train": r.train, "batches": r.batches,
             "predict_max_len": r.predict_max_len} for r in RECIPES.values()]


def describe_note(note: dict) -> str:
    """One line: which recipe settings a run took (the rest came from defaults, kaggle-kit.toml, --set or flags)."""
    values = ", ".join(f"{k} {v}" for k, v in note["applied"].items())
    origin = "backbone family defaults from recipe" if note["auto"] else "recipe"
    return f"{origin} {note['recipe']}: {values}"
