"""Will a recipe fit the GPU? Weights + LoRA training state + activations, estimated before any kernel is pushed.

    total = weights + 16 B x LoRA params + activations x precision factor + fixed overhead

weights: 4 B/param (LoRA trains over fp32 master weights), or 4-bit NF4 linears at 0.53 B/param plus fp16 embeddings.
LoRA: r x (in + out) per adapted linear in each trained layer, each held as weight + gradient + 2 AdamW moments (fp32).
activations (bytes, b batch, s tokens, h hidden, H heads, L trained layers), fitted on peak CPU memory of one
forward + backward + AdamW step for random models of small shapes (hidden 128-384, 2-6 layers, 128-512 tokens, fp32):
    no checkpointing:  a * b*s*h*L + q * b*H*s^2*L
    checkpointing:     k * b*s*h*L + a1 * b*s*h + q1 * b*H*s^2      (one layer's activations live at a time)
fp16/bf16 autocast halves them (PRECISION_FACTOR, an assumption: CPU has no fp16 training to measure)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kaggle_kit.config.recipes import DECODER_MLP3, estimated_params, get_recipe
from kaggle_kit.errors import KitError

GIB = 1024 ** 3
# Usable memory per device (what torch reports free on a fresh Kaggle session, rounded down).
# l4: 24 GB nominal, 22.5 GiB as torch reports it; 22.0 is an assumption (no L4 measured here).
GPU_MEMORY_GIB = {"t4": 15.0, "t4x2": 15.0, "l4": 22.0}
GPU_DEVICES = {"t4": 1, "t4x2": 2, "l4": 1}
BF16_GPUS = ("l4",)  # automatic precision picks bf16 there (Ada), fp16 on T4
SAFETY = 0.90  # fits only with 10% left for fragmentation and the allocator's cache
CUDA_OVERHEAD_GIB = 0.5  # CUDA context + cuBLAS workspace, not measured here
PRECISION_FACTOR = {"fp32": 1.0, "fp16": 0.5, "bf16": 0.5}
NF4_BYTES = 0.53  # 4 bits + double-quantised absmax per 64-weight block
INT8_BYTES = 1.03
ADAM_BYTES = 16  # fp32 weight + gradient + two moments per trainable parameter
# Calibration (bytes per element), NNLS fit over 104 measured shapes: DeBERTa-v3-shaped (eager attention, FFN 4h)
# for encoders, Llama-shaped (sdpa, FFN 8h/3) for decoders; held-out error 3-5% (DeBERTa), 6-18% (Llama).
ACTIVATIONS = {
    "encoder": {"const": 47e6, "a": 287.6, "q": 15.49, "k": 60.65, "a1": 312.9, "q1": 44.68},
    "decoder": {"const": 15e6, "a": 121.2, "q": 8.62, "k": 55.64, "a1": 255.9, "q1": 5.72},
}
DEFAULT_TARGETS = 5  # LoRA-adapted linears per layer when a recipe names none (attention q/k/v/out + MLP)


@dataclass
class MemoryPlan:
    recipe: str
    gpus: str
    batch_size: int
    max_len: int
    gradient_checkpointing: bool
    precision: str
    quantize: str | None
    weights_gib: float
    lora_gib: float
    activations_gib: float
    overhead_gib: float
    total_gib: float
    device_gib: float
    fits: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        verdict = "fits" if self.fits else "does NOT fit"
        return (f"{self.recipe} on {self.gpus}: about {self.total_gib:.1f} GiB per GPU of {self.device_gib:.1f} -> "
                f"{verdict} (weights {self.weights_gib:.1f}, LoRA+AdamW {self.lora_gib:.2f}, activations "
                f"{self.activations_gib:.1f}, overhead {self.overhead_gib:.1f}; batch {self.batch_size} x "
                f"{self.max_len} tokens, {'checkpointing' if self.gradient_checkpointing else 'no checkpointing'}, "
                f"{self.quantize or self.precision})")


def _linear_params(shape: dict) -> int:
    return estimated_params(shape) - int(shape["vocab_size"]) * int(shape["hidden_size"])


def weights_bytes(shape: dict, quantize: str | None) -> float:
    embeddings = int(shape["vocab_size"]) * int(shape["hidden_size"])
    if quantize == "4bit":
        return _linear_params(shape) * NF4_BYTES + embeddings * 2
    if quantize == "8bit":
        return _linear_params(shape) * INT8_BYTES + embeddings * 2
    return (_linear_params(shape) + embeddings) * 4


def lora_params(shape: dict, r: int, targets: list[str] | None, trained_layers: int) -> int:
    """r x (in + out) for each adapted linear; q/k/v-only recipes adapt 3, 'all linear' ~5 (encoder) or 7 (decoder)."""
    h = int(shape["hidden_size"])
    inter = int(shape.get("intermediate_size", 4 * h))
    if targets:
        per_layer = len(targets) * r * 2 * h
    elif shape.get("model_type") in DECODER_MLP3:
        per_layer = r * (4 * 2 * h + 3 * (h + inter))
    else:
        per_layer = r * (4 * 2 * h + 2 * (h + inter))
    head = 3 * h if shape.get("model_type") in DECODER_MLP3 else h * h + 3 * h  # score, or pooler + classifier
    return per_layer * trained_layers + head


def activation_bytes(shape: dict, batch: int, seq: int, trained_layers: int, checkpointing: bool) -> float:
    kind = "decoder" if shape.get("model_type") in DECODER_MLP3 else "encoder"
    c = ACTIVATIONS[kind]
    h, heads = int(shape["hidden_size"]), int(shape["num_attention_heads"])
    bsh, bhss = batch * seq * h, batch * heads * seq * seq
    if checkpointing:
        return c["const"] + c["k"] * bsh * trained_layers + c["a1"] * bsh + c["q1"] * bhss
    return c["const"] + (c["a"] * bsh + c["q"] * bhss) * trained_layers


def plan_train(recipe_name: str, gpus: str = "t4", batch_size: int | None = None, max_len: int | None = None,
               shape: dict | None = None) -> MemoryPlan:
    """The memory estimate for a recipe (its batch shape for `gpus`, unless overridden) on one device of `gpus`."""
    if gpus not in GPU_MEMORY_GIB:
        raise KitError(f"unknown GPU '{gpus}'", hint=f"choose {', '.join(GPU_MEMORY_GIB)}")
    recipe = get_recipe(recipe_name)
    settings = recipe.settings(gpus)
    shape = shape or recipe.shape
    batch = batch_size or settings["batch_size"]
    seq = max_len or settings["max_len"]
    auto = "bf16" if gpus in BF16_GPUS else "fp16"
    precision = auto if settings.get("precision", "auto") == "auto" else settings["precision"]
    trained = int(shape["num_hidden_layers"]) - int(settings.get("freeze_layers", 0))
    weights = weights_bytes(shape, settings.get("quantize"))
    lora = lora_params(shape, settings["lora_r"], settings.get("target_modules"), trained) * ADAM_BYTES
    acts = activation_bytes(shape, batch, seq, trained, settings["gradient_checkpointing"])
    acts *= PRECISION_FACTOR[precision]
    total = weights + lora + acts + CUDA_OVERHEAD_GIB * GIB
    device = GPU_MEMORY_GIB[gpus]
    return MemoryPlan(
        recipe=recipe.name, gpus=gpus, batch_size=batch, max_len=seq,
        gradient_checkpointing=settings["gradient_checkpointing"], precision=precision,
        quantize=settings.get("quantize"), weights_gib=round(weights / GIB, 2), lora_gib=round(lora / GIB, 3),
        activations_gib=round(acts / GIB, 2), overhead_gib=CUDA_OVERHEAD_GIB, total_gib=round(total / GIB, 2),
        device_gib=device, fits=total <= device * GIB * SAFETY,
    )
