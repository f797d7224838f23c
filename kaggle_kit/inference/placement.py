"""Where an inference model's weights go on several GPUs: a replica per GPU (fp16, or 4-bit when fp16 does not fit
one GPU), or the fp16 layers split over the GPUs with accelerate's device map (model/split.py; what tascj's LMSYS
solution ran on 2x T4): the memory of each, and the choice `plan infer` shows and predict makes."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kaggle_kit.training.memory_plan import (
    CUDA_OVERHEAD_GIB,
    GIB,
    SAFETY,
    inference_activation_bytes,
    predict_rows,
    weights_bytes,
)

PLACEMENTS = ("auto", "replica", "split")


@dataclass
class PlacementOption:
    key: str  # replica (fp16 per GPU), replica-4bit, split (fp16 layers over the GPUs)
    label: str
    per_gpu_gib: list[float]  # weights + activations + CUDA overhead on each GPU
    usable_gib: float  # per GPU, after SAFETY
    fits: bool
    side_by_side: int  # forward passes running at once: one per replica; a split model runs one at a time

    def to_dict(self) -> dict:
        return asdict(self)


def placement_options(shape: dict, gpus: int, gpu_gib: float, seq: int, max_tokens: int) -> list[PlacementOption]:
    """fp16 replica, 4-bit replica and (2+ GPUs) fp16 split, each with its memory per GPU at `seq`-token rows and
    predict's token budget. A split puts the embeddings with the first layers and activations live on one GPU at a
    time, but each GPU is planned to hold a whole batch's (the pass crosses every GPU)."""
    usable = gpu_gib * SAFETY
    activations = inference_activation_bytes(shape, predict_rows(shape, seq, max_tokens), seq) / GIB
    fp16 = weights_bytes(shape, None, training=False) / GIB
    nf4 = weights_bytes(shape, "4bit", training=False) / GIB
    per = lambda weights: round(weights + activations + CUDA_OVERHEAD_GIB, 2)  # noqa: E731
    options = [PlacementOption("replica", f"fp16 replica per GPU (x{gpus})", [per(fp16)] * gpus, round(usable, 2),
                               per(fp16) <= usable, gpus),
               PlacementOption("replica-4bit", f"4-bit replica per GPU (x{gpus})", [per(nf4)] * gpus,
                               round(usable, 2), per(nf4) <= usable, gpus)]
    if gpus >= 2:
        split = [per(fp16 / gpus)] * gpus
        options.append(PlacementOption("split", f"fp16 layers split over {gpus} GPUs", split, round(usable, 2),
                                       max(split) <= usable, 1))
    return options


def choose_placement(options: list[PlacementOption]) -> PlacementOption | None:
    """fp16 replicas when one GPU holds the model; else the fp16 split (the trained weights exactly, fp16 kernels
    instead of 4-bit dequantising ones, as tascj ran) before 4-bit replicas; None when nothing fits."""
    by_key = {o.key: o for o in options}
    for key in ("replica", "split", "replica-4bit"):
        if key in by_key and by_key[key].fits:
            return by_key[key]
    return None


def split_memory(shape: dict, gpus: int, gpu_gib: float, seq: int, max_tokens: int) -> dict[int, int]:
    """accelerate's max_memory (bytes) per GPU for the weights: what is left after a batch's activations."""
    activations = inference_activation_bytes(shape, predict_rows(shape, seq, max_tokens), seq)
    room = gpu_gib * SAFETY * GIB - activations - CUDA_OVERHEAD_GIB * GIB
    return {k: int(max(room, 0)) for k in range(gpus)}


def model_shape(config) -> dict:
    """The config fields the memory maths reads, from a loaded model's config."""
    keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
            "intermediate_size", "vocab_size", "model_type")
    return {k: getattr(config, k) for k in keys if getattr(config, k, None) is not None}


def gpu_facts() -> tuple[int, float]:
    """Visible CUDA devices and the first one's memory in GiB (as torch reports it); (0, 0.0) without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return 0, 0.0
    return torch.cuda.device_count(), torch.cuda.get_device_properties(0).total_memory / GIB


def split_for(requested: str, shape: dict, quantize: str | None, seq: int, max_tokens: int,
              facts: tuple[int, float] | None = None) -> dict[int, int] | None:
    """max_memory per GPU when this model's fp16 layers are to be split over the GPUs, else None (replicas). `auto`
    splits only where one GPU cannot hold the fp16 model, the split fits and no --quantize was asked for."""
    import os

    from kaggle_kit.errors import UsageProblem

    if requested not in PLACEMENTS:
        raise UsageProblem(f"unknown placement '{requested}'", hint=f"choose {', '.join(PLACEMENTS)}")
    if requested == "replica":
        return None
    gpus, gpu_gib = facts or gpu_facts()
    under_torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1  # each rank keeps to its own GPU
    if gpus < 2 or under_torchrun or quantize not in (None, "none"):
        if requested == "split":
            why = ("--quantize loads replicas" if quantize not in (None, "none") else
                   "each torchrun rank keeps to its own GPU" if under_torchrun else f"{gpus} GPU(s) visible")
            raise UsageProblem(f"--placement split needs two or more GPUs for one process: {why}",
                               hint="use --placement auto or replica")
        return None
    options = {o.key: o for o in placement_options(shape, gpus, gpu_gib, seq, max_tokens)}
    if requested == "auto" and (options["replica"].fits or not options["split"].fits):
        return None
    return split_memory(shape, gpus, gpu_gib, seq, max_tokens)


def split_of(model_dir, backbone: str | None, requested: str, quantize: str | None, max_tokens: int,
             facts: tuple[int, float] | None = None) -> dict[int, int] | None:
    """split_for a model dir: its backbone's shape (merged/ or the backbone's config.json) at its predict length."""
    import json

    from kaggle_kit.model.model_dir import MERGED_DIR, find_backbone, read_model_info

    if requested == "replica":
        return None
    info = read_model_info(model_dir)
    merged = model_dir / MERGED_DIR / "config.json"
    config = merged if merged.exists() else find_backbone(model_dir, info, backbone) / "config.json"
    seq = int((info.get("max_len") or {}).get("predict") or info["encoding"]["max_len"])
    return split_for(requested, json.loads(config.read_text()), quantize, seq, max_tokens, facts)


def placement_plan(shape: dict, gpus: str, seq: int, max_tokens: int) -> dict:
    """Every placement on Kaggle's `gpus` (memory per device from memory_plan) and the one predict would choose."""
    from kaggle_kit.training.memory_plan import GPU_DEVICES, GPU_MEMORY_GIB

    options = placement_options(shape, GPU_DEVICES[gpus], GPU_MEMORY_GIB[gpus], seq, max_tokens)
    chosen = choose_placement(options)
    return {"gpus": gpus, "seq": seq, "max_tokens": max_tokens, "options": [o.to_dict() for o in options],
            "chosen": chosen.key if chosen else None}


def placement_table(plan: dict) -> str:
    lines = [f"placement on {plan['gpus']} ({plan['seq']}-token rows, {plan['max_tokens']} tokens per batch):"]
    for o in plan["options"]:
        mark = "CHOSEN" if o["key"] == plan["chosen"] else ("fits" if o["fits"] else "does NOT fit")
        memory = " + ".join(f"{g:.1f}" for g in o["per_gpu_gib"])
        lines.append(f"  {o['label']:<34} {memory} GiB (of {o['usable_gib']:.1f} usable per GPU)  {mark}")
    if plan["chosen"] is None:
        lines.append("  nothing fits: a smaller backbone, shorter rows or fewer tokens per batch "
                     "(--set predict.max_tokens=N)")
    return "\n".join(lines)


def load_placed(loader, model_dir, backbone: str | None, cfg, **kwargs):
    """`loader` (model_dir.load_trained) with the predict settings, the layers split over the GPUs where split_of
    says so (a test's loader without `split` is never asked to split)."""
    split = split_of(model_dir, backbone, cfg.placement, cfg.quantize, cfg.max_tokens)
    return loader(model_dir, backbone=backbone, precision=cfg.precision, quantize=cfg.quantize, **kwargs,
                  **({"split": split} if split is not None else {}))
