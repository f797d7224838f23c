"""Sharded training through the HF Trainer: `[train] fsdp` becomes the Trainer's FSDP2 arguments (accelerate's FSDP
plugin, the backbone's decoder layer as the wrap unit) and `[train] deepspeed` a DeepSpeed ZeRO config the Trainer
hands to DeepSpeed. Nothing here shards anything itself.

What the libraries refuse or silently do otherwise, refused here in one line before the model loads:
- no CUDA: accelerate (state.py) switches to FSDP / DeepSpeed only on an accelerator; on a CPU the Trainer would run
  plain DDP and report success.
- --quantize 4bit with FSDP or ZeRO-3: accelerate (utils/fsdp_utils.py, fsdp2_prepare_model) leaves 4-bit weights
  stored as uint8 out of FSDP2's sharding (every rank would hold the whole model), and transformers
  (modeling_utils.py) skips ZeRO-3's partitioned init for quantised models; both shard 4-bit weights only when
  bnb_4bit_quant_storage is a float dtype, which kaggle-kit's 4-bit loader does not set. ZeRO-2 with 4-bit (the
  LMSYS 1st place's "zero2 + dp" QLoRA) shards optimizer states and gradients and is allowed.
- --quantize 8bit with FSDP or ZeRO-3: bitsandbytes' Int8Params cannot be sharded either.
- both at once: accelerate uses one engine per run.
- an encoder backbone whose model class names no layer to wrap (`_no_split_modules`, e.g. DeBERTa-v2)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from kaggle_kit.errors import KitError, UsageProblem

FSDP_MODES = ("full_shard", "shard_grad_op")
DEEPSPEED_PRESETS = ("zero2", "zero3")
DEEPSPEED_EXTRA = "pip install 'kaggle-kit[deepspeed]'"


def deepspeed_config(value: str) -> dict | str:
    """A preset as a dict of DeepSpeed settings ("auto": the Trainer fills them from its own arguments, so batch size,
    accumulation, clipping and precision cannot disagree), or the JSON file's path as given."""
    if value not in DEEPSPEED_PRESETS:
        path = Path(value)
        try:
            stage = json.loads(path.read_text()).get("zero_optimization", {}).get("stage")
        except (OSError, ValueError, AttributeError) as exc:
            raise KitError(f"--deepspeed {value}: cannot read it as a DeepSpeed JSON config ({type(exc).__name__})",
                           hint="pass zero2, zero3 or a readable JSON file") from None
        if stage not in (0, 1, 2, 3):
            raise KitError(f"--deepspeed {value} has no zero_optimization.stage 0-3",
                           hint="see https://www.deepspeed.ai/docs/config-json/")
        return str(path)
    zero = {"stage": 2 if value == "zero2" else 3, "overlap_comm": True, "contiguous_gradients": True,
            "reduce_bucket_size": "auto"}
    if value == "zero3":  # the model dir needs whole weights: gathered on rank 0 when the Trainer saves
        zero.update(stage3_prefetch_bucket_size="auto", stage3_param_persistence_threshold="auto",
                    stage3_gather_16bit_weights_on_model_save=True)
    return {"zero_optimization": zero, "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"},
            "train_micro_batch_size_per_gpu": "auto", "train_batch_size": "auto",
            "gradient_accumulation_steps": "auto", "gradient_clipping": "auto"}


def _zero_stage(value: str) -> int:
    if value in DEEPSPEED_PRESETS:
        return 2 if value == "zero2" else 3
    return int(json.loads(Path(value).read_text())["zero_optimization"]["stage"])


def wrap_unit(backbone: Path) -> str:
    """The decoder layer class FSDP wraps one by one (what the model class says must not be split)."""
    from transformers import AutoConfig

    unit = wrap_unit_of(AutoConfig.from_pretrained(backbone))
    if unit is None:
        raise KitError(f"--fsdp: {_model_class(AutoConfig.from_pretrained(backbone)).__name__} names no layer class "
                       "to wrap (an encoder backbone)", hint=ENCODER_HINT)
    return unit


ENCODER_HINT = "FSDP is for decoder backbones too big for one GPU; train this one with DDP (torchrun)"


def _model_class(config):
    from transformers import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    return MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[type(config)]


def wrap_unit_of(config) -> str | None:
    """The layer class a transformers config's sequence classifier says must not be split, or None (encoders)."""
    layers = list(getattr(_model_class(config), "_no_split_modules", None) or [])
    return layers[0] if layers else None


def engine_name(fsdp: str | None, deepspeed: str | None) -> str:
    """The engine as the user asked for it: its flag and value, with a DeepSpeed config's ZeRO stage."""
    if fsdp is not None:
        return f"--fsdp {fsdp}"
    stage = _zero_stage(deepspeed)
    return f"--deepspeed {deepspeed}" + ("" if deepspeed in DEEPSPEED_PRESETS else f" (ZeRO-{stage})")


def engine_refusal(fsdp: str | None, deepspeed: str | None, quantize: str | None, wraps: bool) -> KitError | None:
    """What train refuses of this engine with this quantisation (`wraps`: the backbone names a layer FSDP can
    wrap), without looking for CUDA or packages: the plan asks the same question."""
    shards_weights = fsdp is not None or (deepspeed is not None and _zero_stage(deepspeed) == 3)
    engine = engine_name(fsdp, deepspeed)
    if quantize == "4bit" and shards_weights:
        return UsageProblem(f"{engine} with --quantize 4bit would not shard the 4-bit weights (they need "
                            "bnb_4bit_quant_storage in a float dtype, which kaggle-kit's 4-bit loader does not set)",
                            hint="use --deepspeed zero2 with --quantize 4bit, or drop --quantize")
    if quantize == "8bit" and shards_weights:
        return UsageProblem(f"{engine} cannot shard 8-bit (bitsandbytes Int8Params) weights",
                            hint="drop --quantize, or use --deepspeed zero2")
    if fsdp is not None and not wraps:
        return KitError(f"{engine}: the backbone names no layer class to wrap (an encoder backbone)",
                        hint=ENCODER_HINT)
    return None


def check_sharded_training(fsdp: str | None, deepspeed: str | None, quantize: str | None, backbone: Path,
                           cuda: bool | None = None) -> None:
    """Every refusal above, before any model is loaded."""
    if fsdp is None and deepspeed is None:
        return
    if fsdp is not None and deepspeed is not None:
        raise UsageProblem("--fsdp and --deepspeed both given: accelerate runs one engine", hint="choose one")
    if fsdp is not None and fsdp not in FSDP_MODES:
        raise UsageProblem(f"--fsdp {fsdp}: choose {' or '.join(FSDP_MODES)}")
    if deepspeed is not None:
        deepspeed_config(deepspeed)  # a bad JSON file: its own line
    refusal = engine_refusal(fsdp, deepspeed, quantize, wraps=True)
    if refusal is not None:
        raise refusal
    if fsdp is not None:
        wrap_unit(backbone)
    engine = engine_name(fsdp, deepspeed)
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if not cuda:
        raise KitError(f"{engine} needs CUDA GPUs: on a CPU the Trainer would silently run plain DDP",
                       hint="drop it here (torchrun train runs DDP on CPUs), or run on GPUs")
    if deepspeed is not None and importlib.util.find_spec("deepspeed") is None:
        raise KitError(f"--deepspeed {deepspeed} needs the deepspeed package", hint=DEEPSPEED_EXTRA)


def sharded_training_args(fsdp: str | None, deepspeed: str | None, backbone: Path) -> dict:
    """The TrainingArguments keywords for the chosen engine ({} for plain DDP / one process). FSDP2: full_shard
    reshards parameters after each forward (ZeRO-3-like), shard_grad_op keeps them (ZeRO-2-like)."""
    if fsdp is not None:
        return {"fsdp": True, "fsdp_config": {"version": 2, "reshard_after_forward": fsdp == "full_shard",
                                              "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                                              "transformer_layer_cls_to_wrap": [wrap_unit(backbone)],
                                              "state_dict_type": "FULL_STATE_DICT"}}
    if deepspeed is not None:
        return {"deepspeed": deepspeed_config(deepspeed)}
    return {}
