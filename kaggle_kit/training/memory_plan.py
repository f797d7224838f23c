"""Will a recipe fit the GPU? Weights + LoRA training state + activations, estimated before any kernel is pushed,
for the training step and for the evaluation / holdout pass and predict that follow it; the largest must fit.

    train   = weights + 16 B x LoRA params + activations x precision factor + overhead
    eval    = weights + 16 B x LoRA params + inference activations (eval batch x inference length) + overhead
    predict = inference weights + inference activations (predict's token budget) + overhead

weights: 4 B/param (LoRA trains over fp32 master weights), or 4-bit NF4 linears at 0.53 B/param plus embeddings
upcast to fp32 by prepare_model_for_kbit_training (4 B, where loading alone gives 2 B: +1.7 GiB for Gemma-2-9B).
inference weights: the compute dtype (2 B/param), or NF4 linears plus 2 B embeddings.
LoRA: r x (in + out) per adapted linear in each trained layer, each held as weight + gradient + 2 AdamW moments (fp32).
activations (bytes, b batch, s tokens, h hidden, H heads, L trained layers), fitted on peak CPU memory of one
forward + backward + AdamW step for random models of small shapes (hidden 128-384, 2-6 layers, 128-512 tokens, fp32):
    no checkpointing:  a * b*s*h*L + q * b*H*s^2*L
    checkpointing:     k * b*s*h*L + a1 * b*s*h + q1 * b*H*s^2      (one layer's activations live at a time)
Eager-attention decoders (Gemma-2) take the eager (DeBERTa-fitted) q and q1. fp16/bf16 autocast halves them
(PRECISION_FACTOR, an assumption: CPU has no fp16 training to measure), except under 4/8-bit: after
prepare_model_for_kbit_training the embeddings and every layer's output stay fp32 (tests/test_qlora_cpu.py checks
it), so the residual stream is not halved. --full-swap trains each row beside its swapped twin: 2 x batch sequences.
inference activations (no gradients, no K/V cache, one layer live; an assumption, measured by `make test-gpu`):
    e B x b*s*(4h + 2 intermediate)  +  eager attention only: 3 x 4 B x b*H*s^2 (fp32 scores, capped, softmax)
with e the dtype the model's residual stream really has: 2 (the compute dtype) for predict's frozen model, 4 for the
evaluation / holdout pass of the model being trained (fp32 master weights, or fp32 after kbit preparation)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kaggle_kit.config.recipes import DECODER_MLP3, estimated_params, get_recipe
from kaggle_kit.errors import KitError
from kaggle_kit.model.backbone_shape import trained_layers

GIB = 1024 ** 3
# Usable memory per device, as the device reports it (torch.cuda.mem_get_info's total), rounded down: a T4 reports
# 14.56-14.76 GiB (issue 28's figures; `make test-gpu` records it as device_total_gib), not its nominal 15.
# l4: 24 GB nominal, 22.5 GiB as torch reports it; 22.0 is an assumption (no L4 measured here).
GPU_MEMORY_GIB = {"t4": 14.5, "t4x2": 14.5, "l4": 22.0}
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


EAGER_TYPES = {"gemma2", "deberta-v2", "deberta"}  # attention scores materialised: rows x heads x len^2
INFER_BYTES = 2  # inference runs in the compute dtype (fp16 on T4)
TRAINING_MODEL_BYTES = 4  # the model being trained, evaluated: fp32 residual stream (master weights / kbit-prepared)
EAGER_SCORE_COPIES = 3  # scores, soft-capped/masked scores, softmax (fp32)


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
    kbit_upcast_gib: float  # part of weights_gib: embeddings prepare_model_for_kbit_training keeps in fp32
    lora_gib: float
    activations_gib: float
    overhead_gib: float
    total_gib: float  # the training step
    eval_batch_size: int
    predict_max_len: int
    eval_gib: float  # evaluation and the holdout pass, beside the training state
    predict_rows: int  # rows per predict batch at predict_max_len (token budget, eager-attention cap)
    predict_gib: float
    eager_attention: bool
    peak_gib: float
    device_gib: float
    fits: bool
    full_swap: bool = False  # each training row beside its swapped twin: 2 x batch_size sequences per step
    ranks: int = 1  # DDP processes, one per GPU, each holding its own model (4-bit too) and this peak

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        verdict = "fits" if self.fits else "does NOT fit"
        upcast = f" incl. {self.kbit_upcast_gib:.1f} fp32 embeddings" if self.kbit_upcast_gib else ""
        ranks = (f"; {self.ranks} DDP ranks, one per GPU, each with its own {self.quantize or self.precision} model"
                 if self.ranks > 1 else "")
        rows = f"{self.batch_size} x 2 (--full-swap)" if self.full_swap else f"{self.batch_size}"
        return (f"{self.recipe} on {self.gpus}: peak about {self.peak_gib:.1f} GiB per GPU of {self.device_gib:.1f} "
                f"(fits up to {self.device_gib * SAFETY:.1f}: 10% kept for fragmentation) -> {verdict}{ranks}. "
                f"Training {self.total_gib:.1f} (weights {self.weights_gib:.1f}{upcast}, "
                f"LoRA+AdamW {self.lora_gib:.2f}, activations {self.activations_gib:.1f}, overhead "
                f"{self.overhead_gib:.1f}; batch {rows} x {self.max_len} tokens, "
                f"{'checkpointing' if self.gradient_checkpointing else 'no checkpointing'}, "
                f"{self.quantize or self.precision}); evaluation {self.eval_gib:.1f} (batch {self.eval_batch_size} x "
                f"{self.predict_max_len}); predict {self.predict_gib:.1f} ({self.predict_rows} rows x "
                f"{self.predict_max_len}{', eager attention' if self.eager_attention else ''})")


def _linear_params(shape: dict) -> int:
    return estimated_params(shape) - int(shape["vocab_size"]) * int(shape["hidden_size"])


def weights_bytes(shape: dict, quantize: str | None, training: bool = True) -> float:
    """Training: fp32 master weights, or quantised linears + fp32 embeddings (kbit preparation upcasts them).
    Inference: the compute dtype, or quantised linears + compute-dtype embeddings."""
    embeddings = int(shape["vocab_size"]) * int(shape["hidden_size"])
    embedding_bytes = 4 if training else INFER_BYTES
    if quantize == "4bit":
        return _linear_params(shape) * NF4_BYTES + embeddings * embedding_bytes
    if quantize == "8bit":
        return _linear_params(shape) * INT8_BYTES + embeddings * embedding_bytes
    return (_linear_params(shape) + embeddings) * (4 if training else INFER_BYTES)


def kbit_upcast_bytes(shape: dict, quantize: str | None) -> float:
    """What prepare_model_for_kbit_training adds by casting the (fp16) embeddings to fp32."""
    return int(shape["vocab_size"]) * int(shape["hidden_size"]) * 2 if quantize else 0.0


def inference_activation_bytes(shape: dict, rows: int, seq: int, element_bytes: int = INFER_BYTES) -> float:
    h = int(shape["hidden_size"])
    inter = int(shape.get("intermediate_size", 4 * h))
    linear = element_bytes * rows * seq * (4 * h + 2 * inter)
    if shape.get("model_type") not in EAGER_TYPES:
        return linear
    return linear + EAGER_SCORE_COPIES * 4 * rows * int(shape["num_attention_heads"]) * seq * seq


def predict_rows(shape: dict, seq: int, max_tokens: int) -> int:
    """Rows per predict batch of `seq` tokens, as model.batching packs them (with its eager-attention cap)."""
    from kaggle_kit.model.batching import EAGER_SCORES_BYTES

    rows = max(1, max_tokens // seq)
    if shape.get("model_type") in EAGER_TYPES:
        rows = min(rows, max(1, EAGER_SCORES_BYTES // (4 * int(shape["num_attention_heads"])) // (seq * seq)))
    return rows


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


def activation_bytes(shape: dict, batch: int, seq: int, trained_layers: int, checkpointing: bool,
                     precision: str = "fp32", quantize: str | None = None) -> float:
    """Peak activation bytes of one training step. The fit is fp32 (CPU); autocast halves it (PRECISION_FACTOR),
    except for what stays fp32 under kbit preparation: the residual stream, i.e. the per-layer inputs checkpointing
    keeps (the k term), and without checkpointing every layer's saved activations (not split in the fit)."""
    kind = "decoder" if shape.get("model_type") in DECODER_MLP3 else "encoder"
    c = ACTIVATIONS[kind]
    if kind == "decoder" and shape.get("model_type") in EAGER_TYPES:  # scores materialised, as in the encoder fit
        c = {**c, "q": ACTIVATIONS["encoder"]["q"], "q1": ACTIVATIONS["encoder"]["q1"]}
    h, heads = int(shape["hidden_size"]), int(shape["num_attention_heads"])
    bsh, bhss = batch * seq * h, batch * heads * seq * seq
    half = PRECISION_FACTOR[precision]
    residual = 1.0 if quantize else half
    if checkpointing:
        return c["const"] + residual * c["k"] * bsh * trained_layers + half * (c["a1"] * bsh + c["q1"] * bhss)
    return c["const"] + residual * (c["a"] * bsh + c["q"] * bhss) * trained_layers


def train_step_bytes(shape: dict, batch: int, seq: int, precision: str, quantize: str | None, checkpointing: bool,
                     lora_r: int, targets: list[str] | None, trained_layers: int) -> dict[str, float]:
    """One training step's weights, LoRA + AdamW state and activations in bytes (no CUDA context): what `plan train`
    adds up and `make test-gpu` compares with torch.cuda.max_memory_allocated. `batch`: sequences per step (rows,
    doubled under --full-swap)."""
    acts = activation_bytes(shape, batch, seq, trained_layers, checkpointing, precision, quantize)
    return {"weights": weights_bytes(shape, quantize),
            "lora": lora_params(shape, lora_r, targets, trained_layers) * ADAM_BYTES, "activations": acts}


def plan_train(recipe_name: str, gpus: str = "t4", batch_size: int | None = None, max_len: int | None = None,
               shape: dict | None = None, max_tokens: int | None = None, full_swap: bool = False) -> MemoryPlan:
    """The memory estimate for a recipe (its batch shape for `gpus`, unless overridden) on one device of `gpus`:
    the training step, evaluation / holdout pass and predict (at `max_tokens`, predict's default token budget)."""
    from kaggle_kit.config import PredictConfig

    if gpus not in GPU_MEMORY_GIB:
        raise KitError(f"unknown GPU '{gpus}'", hint=f"choose {', '.join(GPU_MEMORY_GIB)}")
    recipe = get_recipe(recipe_name)
    settings = recipe.settings(gpus)
    shape = shape or recipe.shape
    batch = batch_size or settings["batch_size"]
    seq = max_len or settings["max_len"]
    infer_len = max(seq, recipe.predict_max_len)
    auto = "bf16" if gpus in BF16_GPUS else "fp16"
    precision = auto if settings.get("precision", "auto") == "auto" else settings["precision"]
    quantize = settings.get("quantize")
    trained = trained_layers(shape, int(settings.get("freeze_layers", 0)), recipe.name)
    sequences = batch * (2 if full_swap else 1)  # the evaluation set is never swapped
    step = train_step_bytes(shape, sequences, seq, precision, quantize, settings["gradient_checkpointing"],
                            settings["lora_r"], settings.get("target_modules"), trained)
    weights, lora, acts = step["weights"], step["lora"], step["activations"]
    overhead = CUDA_OVERHEAD_GIB * GIB
    total = weights + lora + acts + overhead
    eval_batch = int(settings.get("eval_batch_size", 16))
    evaluation = weights + lora + inference_activation_bytes(shape, eval_batch, infer_len, TRAINING_MODEL_BYTES)
    evaluation += overhead
    rows = predict_rows(shape, infer_len, max_tokens or PredictConfig().max_tokens)
    predict = weights_bytes(shape, quantize, training=False) + inference_activation_bytes(shape, rows, infer_len)
    predict += overhead
    peak = max(total, evaluation, predict)
    device = GPU_MEMORY_GIB[gpus]
    return MemoryPlan(
        recipe=recipe.name, gpus=gpus, batch_size=batch, max_len=seq,
        gradient_checkpointing=settings["gradient_checkpointing"], precision=precision, quantize=quantize,
        weights_gib=round(weights / GIB, 2), kbit_upcast_gib=round(kbit_upcast_bytes(shape, quantize) / GIB, 2),
        lora_gib=round(lora / GIB, 3), activations_gib=round(acts / GIB, 2), overhead_gib=CUDA_OVERHEAD_GIB,
        total_gib=round(total / GIB, 2), eval_batch_size=eval_batch, predict_max_len=infer_len,
        eval_gib=round(evaluation / GIB, 2), predict_rows=rows, predict_gib=round(predict / GIB, 2),
        eager_attention=shape.get("model_type") in EAGER_TYPES, peak_gib=round(peak / GIB, 2), device_gib=device,
        fits=peak <= device * GIB * SAFETY, full_swap=full_swap, ranks=GPU_DEVICES[gpus],
    )
