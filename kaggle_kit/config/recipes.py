"""Named training settings per backbone family, each with a one-line source; applied under kaggle-kit.toml and flags.

Precedence: recipe < kaggle-kit.toml < CLI flags. Without --recipe, the backbone family's recipe supplies the
optimisation settings only (lr, epochs, warmup, LoRA shape), never the GPU-specific ones (batch, precision, 4-bit)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kaggle_kit.errors import KitError

GPUS = ("t4", "t4x2", "l4")  # one T4 device, Kaggle's T4 x2, one L4 (P100: no kernels in today's image)
# What a family default may set without --recipe: these suit the backbone whatever GPU (or CPU) it runs on.
FAMILY_FIELDS = ("learning_rate", "epochs", "warmup", "weight_decay", "lora_r", "lora_alpha", "lora_dropout",
                 "length_header", "length_head")
SMALL_MODEL_PARAMS = 50_000_000  # below this (tiny test models, MiniLM) a CPU run is realistic: cpu-smoke settings
# Where the LMSYS figures below were published: the competition's public notebooks and discussions, as archived on
# 2024-08-06 in a public repository (the notebooks themselves are not copied here).
LMSYS_PUBLIC = ("public notebooks and discussions, https://www.kaggle.com/competitions/lmsys-chatbot-arena/code and "
                "/discussion; archived in https://github.com/yukimaru77/kaggle_jp, lmsys-chatbot-arena_jp/")


@dataclass(frozen=True)
class Recipe:
    """One named setting: TrainConfig values, per-GPU batch shapes, inference length, the backbone's shape, a source."""

    name: str
    summary: str
    source: str
    train: dict[str, Any]
    batches: dict[str, dict[str, int]]  # gpu -> {"batch_size", "grad_accum"} (per device)
    predict_max_len: int
    shape: dict[str, int] = field(default_factory=dict)  # the published backbone's config, for `plan train`

    def settings(self, gpus: str = "t4") -> dict[str, Any]:
        """The TrainConfig values this recipe sets for `gpus`."""
        if gpus not in self.batches:
            raise KitError(f"recipe {self.name} has no batch shape for {gpus}",
                           hint=f"choose {', '.join(self.batches)}")
        return {**self.train, **self.batches[gpus]}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


GEMMA2_9B = dict(hidden_size=3584, num_hidden_layers=42, num_attention_heads=16, num_key_value_heads=8, head_dim=256,
                 intermediate_size=14336, vocab_size=256000, model_type="gemma2")
LLAMA3_8B = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                 intermediate_size=14336, vocab_size=128256, model_type="llama")
DEBERTA_V3_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                       vocab_size=128100, model_type="deberta-v2")
DEBERTA_V3_LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                        vocab_size=128100, model_type="deberta-v2")
MINILM_L6 = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
                 vocab_size=30522, model_type="bert")

def _train(*, learning_rate: float, epochs: float, warmup: float, max_len: int = 1024,
           target_modules: list[str] | None = None, freeze_layers: int = 0, quantize: str | None = None,
           gradient_checkpointing: bool = True, length_header: bool = True, eval_batch_size: int = 16
           ) -> dict[str, Any]:
    """A recipe's TrainConfig values: every recipe shares weight decay 0.01, LoRA r 16 / alpha 32 / dropout 0.05,
    the length side head and automatic precision. `eval_batch_size` also sizes the holdout pass (rows x the
    inference length): decoders at 1-2k tokens take fewer rows than encoders."""
    return dict(learning_rate=learning_rate, epochs=epochs, warmup=warmup, weight_decay=0.01, max_len=max_len,
                eval_batch_size=eval_batch_size,
                lora_r=16, lora_alpha=32, lora_dropout=0.05, target_modules=target_modules, freeze_layers=freeze_layers,
                precision="auto", quantize=quantize, gradient_checkpointing=gradient_checkpointing,
                length_header=length_header, length_head=True)


def _batches(**per_gpu: tuple[int, int]) -> dict[str, dict[str, int]]:
    """Recipe.batches from gpu=(batch_size, grad_accum) pairs."""
    return {gpu: {"batch_size": size, "grad_accum": accum} for gpu, (size, accum) in per_gpu.items()}


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe(
        name="deberta-v3-base",
        summary="DeBERTa-v3-base + LoRA on all linear layers, fp16, gradient checkpointing.",
        source=f"LMSYS public LB: deberta-v3-base fine-tune 1.075 at 1024 tokens ({LMSYS_PUBLIC}); "
               "LoRA lr/rank are kaggle-kit's choice, not published",
        train=_train(learning_rate=2e-4, epochs=2.0, warmup=0.1),
        batches=_batches(t4=(4, 2), t4x2=(4, 1), l4=(4, 2)),
        predict_max_len=1024, shape=DEBERTA_V3_BASE,
    ),
    Recipe(
        name="deberta-v3-large",
        summary="DeBERTa-v3-large + LoRA on all linear layers, fp16, gradient checkpointing.",
        source=f"LMSYS public LB: deberta-v3-large about 1.039 ({LMSYS_PUBLIC}); LoRA lr/rank are "
               "kaggle-kit's choice, not published",
        train=_train(learning_rate=1e-4, epochs=1.0, warmup=0.1),
        batches=_batches(t4=(2, 4), t4x2=(2, 2), l4=(2, 4)),
        predict_max_len=1024, shape=DEBERTA_V3_LARGE,
    ),
    Recipe(
        name="gemma2-9b-qlora",
        summary="Gemma-2-9B 4-bit QLoRA on q/k/v, first 16 of 42 layers frozen, 1024 train / 2048 inference.",
        source="LMSYS public Gemma-2-9B 4-bit QLoRA notebook: r 16, alpha 32, q/k/v, 16 layers frozen, lr 2e-4, "
               f"1 epoch, 1024/2048 tokens, public LB 0.941 ({LMSYS_PUBLIC})",
        train=_train(learning_rate=2e-4, epochs=1.0, warmup=0.05, target_modules=["q_proj", "k_proj", "v_proj"],
                     freeze_layers=16, quantize="4bit", eval_batch_size=4),  # eager attention at 2048 tokens
        # 4-bit training runs as one process (no DDP under bitsandbytes), so 2x T4 trains on one of them.
        batches=_batches(t4=(1, 8), t4x2=(1, 8), l4=(1, 8)),
        predict_max_len=2048, shape=GEMMA2_9B,
    ),
    Recipe(
        name="llama3-8b-qlora",
        summary="Llama-3-8B 4-bit QLoRA sequence classifier on all linear layers, 1024 train / 1280 inference.",
        source="LMSYS public Llama-3-8B sequence classification: 0.989 at 1024 tokens, 0.983 at 1280 "
               f"({LMSYS_PUBLIC}); LoRA r/alpha/lr are kaggle-kit's choice",
        train=_train(learning_rate=1e-4, epochs=1.0, warmup=0.05, quantize="4bit", eval_batch_size=8),
        batches=_batches(t4=(1, 8), t4x2=(1, 8), l4=(1, 8)),
        predict_max_len=1280, shape=LLAMA3_8B,
    ),
    Recipe(
        name="cpu-smoke",
        summary="Small backbones on a CPU (the tiny test model, MiniLM): what `kaggle-kit quickstart` runs.",
        source="kaggle-kit's own seed sweep (`kaggle-kit bench seeds`): 2,000 sample rows, seeds 0-4 beat the "
               "prior 1.095 by 0.153-0.195 nats",
        # No length header: a random tiny model cannot read numbers, and the header's tokens dilute its input. The
        # length side head reads them as numbers instead (MiniLM on arena-proxy: holdout 1.0766 -> 1.0067).
        train=_train(learning_rate=3e-4, epochs=2.0, warmup=0.1, max_len=256, gradient_checkpointing=False,
                     length_header=False),
        # Batch 4: twice the updates of batch 8 for the same compute; at batch 8 seed 0 only began to learn after
        # ~200 updates and ended 0.032 nats under the prior (1,500 training rows, 2 epochs).
        batches=_batches(t4=(4, 1), t4x2=(4, 1), l4=(4, 1)),
        predict_max_len=256, shape=MINILM_L6,
    ),
)}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise KitError(f"unknown recipe '{name}'", hint=f"choose one of {', '.join(RECIPES)} (`kaggle-kit recipes`)")
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
    import torch

    return "t4x2" if torch.cuda.is_available() and torch.cuda.device_count() >= 2 else "t4"


def resolve_train_config(cfg, explicit: set[str] | frozenset[str] = frozenset(), gpus: str | None = None,
                         flags: set[str] | frozenset[str] = frozenset()):
    """Apply cfg.recipe (or the backbone family's defaults) under every explicitly set value.

    `explicit`: the TrainConfig fields kaggle-kit.toml or a flag set; they always win; `flags`: those a flag set.
    Returns (config, note); note["sources"] says where each value came from."""
    from kaggle_kit.config.checks import check_section

    if cfg.recipe:
        recipe = get_recipe(cfg.recipe)
        values, auto = recipe.settings(gpus or gpus_here()), False
    else:
        name = _family_of(cfg.backbone)
        if name is None:
            return cfg, {"recipe": None, "auto": True, "applied": {},
                         "sources": train_sources(_names(cfg), set(explicit) - set(flags), flags, {})}
        recipe, auto = RECIPES[name], True
        values = {k: v for k, v in recipe.train.items() if k in FAMILY_FIELDS}
    applied = {k: v for k, v in values.items() if k not in explicit}
    resolved = check_section(dataclasses.replace(cfg, **applied), f"recipe {recipe.name}")
    return resolved, {"recipe": recipe.name, "auto": auto, "applied": applied,
                      "sources": train_sources(_names(cfg), set(explicit) - set(flags), flags, applied)}


def _names(cfg) -> list[str]:
    return [f.name for f in dataclasses.fields(cfg)]


def train_sources(names: list[str], toml_keys: set[str] | frozenset[str], flag_keys: set[str] | frozenset[str],
                  applied: dict[str, Any]) -> dict[str, str]:
    """Where each TrainConfig value (`names`) of a resolved run came from: flag, toml, recipe or default."""

    def source(name: str) -> str:
        if name in flag_keys:
            return "flag"
        if name in toml_keys:
            return "toml"
        return "recipe" if name in applied else "default"

    return {name: source(name) for name in names}


def resolved_view(config) -> dict[str, Any]:
    """A ProjectConfig as a run would use it: [train] with its recipe applied, and where each train value came from."""
    toml_keys = set(config.explicit.get("train", []))
    train_cfg, note = resolve_train_config(config.train, toml_keys)
    view = config.to_dict()
    view["train"] = dataclasses.asdict(train_cfg)
    view["train_sources"] = note["sources"]
    view["train_recipe"] = {"name": note["recipe"], "auto": note["auto"]}
    return view


def _family_of(backbone: str | None) -> str | None:
    if not backbone:
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
    """One line: which recipe settings a run took (the rest came from kaggle-kit.toml or flags)."""
    values = ", ".join(f"{k} {v}" for k, v in note["applied"].items())
    origin = "backbone family defaults from recipe" if note["auto"] else "recipe"
    return f"{origin} {note['recipe']}: {values}"
