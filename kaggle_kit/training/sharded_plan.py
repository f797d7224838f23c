"""`plan train --gpus a100x8|h100x8 --nodes N`: memory per GPU when weights, gradients and optimizer states are
divided over every GPU of every node, as ZeRO-3 / FSDP full_shard do (ZeRO-2 / shard_grad_op: gradients and
optimizer states only). Per GPU, training:

    zero3 = (weights + LoRA weight/grad/AdamW) / world + gathered units + activations + overhead
    zero2 = weights + (LoRA weight/grad/AdamW) / world + activations + overhead
    gathered units = (2 decoder layers: the one computing and the one prefetched + the embeddings and head, which
                      form the root unit) x 2 B (bf16 compute copies)

Activations are not divided: each GPU runs its own batch (memory_plan.activation_bytes). Labelling afterwards is
rank-sharded inference: every GPU holds the whole model in the compute dtype (or 4-bit), so `label` is planned too.
A100 / H100 80 GB: 79.1 GiB as torch reports them; 78 GiB usable is an assumption (none measured here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kaggle_kit.config.recipes import estimated_params, get_recipe
from kaggle_kit.errors import KitError
from kaggle_kit.model.backbone_shape import trained_layers
from kaggle_kit.training.memory_plan import (
    CUDA_OVERHEAD_GIB,
    GIB,
    SAFETY,
    inference_activation_bytes,
    predict_rows,
    train_step_bytes,
    weights_bytes,
)

CLUSTER_GPUS = {"a100x8": (8, 78.0), "h100x8": (8, 78.0)}  # GPUs per node, usable GiB per GPU
ENGINES = ("zero3", "zero2")
# The train flags of each engine, in the order offered: the first that train accepts for the backbone runs the plan.
TRAIN_ENGINES = {"zero3": (("full_shard", None), (None, "zero3")), "zero2": (("shard_grad_op", None), (None, "zero2"))}
GATHERED_LAYERS = 2
COMPUTE_BYTES = 2  # bf16 on A100 / H100


@dataclass
class ShardedPlan:
    recipe: str
    gpus: str
    nodes: int
    world_size: int
    engine: str
    batch_size: int
    max_len: int
    quantize: str | None
    params_b: float
    weights_gib: float  # per GPU, after sharding
    lora_gib: float
    gathered_gib: float
    activations_gib: float
    overhead_gib: float
    train_gib: float
    label_quantize: str | None
    label_gib: float  # rank-sharded prediction: a whole model per GPU
    device_gib: float
    fits: bool
    label_fits: bool
    train_flags: str  # what `train` is given to run this plan (an engine it accepts for this backbone)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        verdict = "fits" if self.fits else "does NOT fit"
        shard = ("weights, gradients and optimizer states" if self.engine == "zero3"
                 else "gradients and optimizer states")
        return (f"{self.recipe} ({self.params_b:.1f}B parameters) on {self.nodes} x {self.gpus} ({self.world_size} "
                f"GPUs, {self.engine}: {shard} divided by {self.world_size}): training about {self.train_gib:.1f} "
                f"GiB per GPU of {self.device_gib:.0f} -> {verdict} (weights {self.weights_gib:.1f}, LoRA+AdamW "
                f"{self.lora_gib:.2f}, gathered layers {self.gathered_gib:.1f}, activations {self.activations_gib:.1f}"
                f", overhead {self.overhead_gib:.1f}; batch {self.batch_size} x {self.max_len} tokens, "
                f"{self.quantize or 'bf16 compute over fp32 weights'}). Labelling (a whole model per GPU, "
                f"{self.label_quantize or 'bf16'}): {self.label_gib:.1f} GiB -> "
                f"{'fits' if self.label_fits else 'does NOT fit'}. Train with: {self.train_flags}")


def _layer_params(shape: dict) -> float:
    embeddings = int(shape["vocab_size"]) * int(shape["hidden_size"])
    return (estimated_params(shape) - embeddings) / int(shape["num_hidden_layers"])


def train_flags(engine: str, quantize: str | None, model_type: str) -> str:
    """The train flags that run `engine` with `quantize` on a backbone of `model_type`: FSDP where train accepts it,
    else DeepSpeed (4-/8-bit weights and encoders without a layer to wrap are refused under FSDP)."""
    from kaggle_kit.training.sharding import engine_refusal, wrap_unit_of

    try:
        from transformers import AutoConfig

        wraps = wrap_unit_of(AutoConfig.for_model(model_type)) is not None
    except (ValueError, KeyError):
        raise KitError(f"model_type {model_type!r} is not a model type transformers knows",
                       hint="pass the backbone's own config.json") from None
    refusals = []
    for fsdp, deepspeed in TRAIN_ENGINES[engine]:
        refusal = engine_refusal(fsdp, deepspeed, quantize, wraps)
        if refusal is None:
            flags = f"--fsdp {fsdp}" if fsdp else f"--deepspeed {deepspeed}"
            return flags + (f" --quantize {quantize}" if quantize else "")
        refusals.append(refusal)
    raise refusals[0]


def plan_sharded(recipe_name: str, gpus: str, nodes: int = 1, engine: str = "zero3", batch_size: int | None = None,
                 max_len: int | None = None, shape: dict | None = None) -> ShardedPlan:
    if gpus not in CLUSTER_GPUS:
        raise KitError(f"unknown cluster '{gpus}'", hint=f"choose {', '.join(CLUSTER_GPUS)}")
    if engine not in ENGINES:
        raise KitError(f"unknown engine '{engine}'", hint=f"choose {', '.join(ENGINES)}")
    if nodes < 1:
        raise KitError(f"--nodes {nodes} must be at least 1")
    recipe = get_recipe(recipe_name)
    name = recipe.name if shape is None else f"{recipe.name} settings on a {shape.get('model_type', '?')} backbone"
    settings = recipe.settings("l4")  # the recipe's batch shape for its largest Kaggle GPU, unless overridden
    shape = shape or recipe.shape
    per_node, device = CLUSTER_GPUS[gpus]
    world = per_node * nodes
    batch, seq = batch_size or settings["batch_size"], max_len or settings["max_len"]
    # kaggle-kit refuses 4-/8-bit under FSDP and ZeRO-3 (training/sharding.py): those train full precision.
    quantize = settings.get("quantize") if engine == "zero2" else None
    trained = trained_layers(shape, int(settings.get("freeze_layers", 0)), recipe.name)
    step = train_step_bytes(shape, batch, seq, "bf16", quantize, settings["gradient_checkpointing"],
                            settings["lora_r"], settings.get("target_modules"), trained)
    lora = step["lora"] / world
    if engine == "zero3":
        weights = step["weights"] / world
        root = int(shape["vocab_size"]) * int(shape["hidden_size"])
        gathered = (GATHERED_LAYERS * _layer_params(shape) + root) * COMPUTE_BYTES
    else:
        weights, gathered = step["weights"], 0.0
    overhead = CUDA_OVERHEAD_GIB * GIB
    train = weights + lora + gathered + step["activations"] + overhead
    infer_len = max(seq, recipe.predict_max_len)
    label_quantize = settings.get("quantize")
    label = (weights_bytes(shape, label_quantize, training=False) + overhead
             + inference_activation_bytes(shape, predict_rows(shape, infer_len, 16384), infer_len))
    return ShardedPlan(
        recipe=name, gpus=gpus, nodes=nodes, world_size=world, engine=engine, batch_size=batch, max_len=seq,
        quantize=quantize, params_b=round(estimated_params(shape) / 1e9, 2), weights_gib=round(weights / GIB, 2),
        lora_gib=round(lora / GIB, 3), gathered_gib=round(gathered / GIB, 2),
        activations_gib=round(step["activations"] / GIB, 2), overhead_gib=CUDA_OVERHEAD_GIB,
        train_gib=round(train / GIB, 2), label_quantize=label_quantize, label_gib=round(label / GIB, 2),
        device_gib=device,
        fits=train <= device * GIB * SAFETY, label_fits=label <= device * GIB * SAFETY,
        train_flags=train_flags(engine, quantize, str(shape.get("model_type"))))
