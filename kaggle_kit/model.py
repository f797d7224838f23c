"""Backbone + LoRA (optionally 4/8-bit QLoRA), precision chosen by device, and the trained model dir format."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .backbone import is_decoder, load_tokenizer, model_type, resolve_backbone_path
from .compat import dtype_kwarg
from .errors import KitError

MODEL_FILE = "kaggle_kit_model.json"
ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"
FORMAT_VERSION = 1

# All linear layers of attention + MLP. DeBERTa's "output.dense" suffix matches attention and MLP outputs but not the pooler.
TARGET_MODULES = {
    "deberta-v2": ["query_proj", "key_proj", "value_proj", "output.dense", "intermediate.dense"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
# Trained in full and saved with the adapter. DeBERTa-v3 checkpoints ship no pooler: left frozen it would stay random,
# and an adapter saved without it would reload with a *different* random pooler.
HEAD_MODULES = {"deberta-v2": ["classifier", "pooler"]}
DEFAULT_HEAD = ["score"]


@dataclass(frozen=True)
class Precision:
    name: str  # fp32 | fp16 | bf16

    @property
    def dtype(self) -> torch.dtype:
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.name]


def choose_precision(requested: str = "auto") -> Precision:
    """bf16 on Ampere+ (A100/H100), fp16 on T4/P100, fp32 on CPU (fp16 on CPU is silently 2.5x slower)."""
    cuda = torch.cuda.is_available()
    if requested == "auto":
        if not cuda:
            return Precision("fp32")
        return Precision("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    if requested not in ("fp32", "fp16", "bf16"):
        raise KitError(f"unknown precision '{requested}'", hint="choose auto, fp32, fp16 or bf16")
    if requested != "fp32" and not cuda:
        raise KitError(f"--precision {requested} needs a CUDA GPU", hint="use --precision auto (fp32) on CPU")
    if requested == "bf16" and not torch.cuda.is_bf16_supported():
        raise KitError("this GPU does not support bf16", hint="use --precision fp16 (T4/P100) or auto")
    return Precision(requested)


def quantization_config(quantize: str | None, compute_dtype: torch.dtype):
    if quantize is None:
        return None
    if quantize not in ("4bit", "8bit"):
        raise KitError(f"unknown --quantize '{quantize}'", hint="choose 4bit or 8bit")
    if not torch.cuda.is_available():
        raise KitError(f"--quantize {quantize} needs a CUDA GPU (bitsandbytes)", hint="drop --quantize on CPU")
    from transformers import BitsAndBytesConfig

    if quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype)


def load_backbone_model(backbone: Path, precision: Precision, quantize: str | None = None, num_labels: int = 3):
    from transformers import AutoModelForSequenceClassification

    tokenizer = load_tokenizer(backbone)
    kwargs = {"num_labels": num_labels, "ignore_mismatched_sizes": True}
    quant = quantization_config(quantize, precision.dtype)
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": torch.cuda.current_device()})
    # LoRA trains in fp32 master weights; fp16/bf16 come from Trainer's autocast, except under quantisation.
    kwargs.update(dtype_kwarg(precision.dtype if quant is not None else torch.float32))
    model = AutoModelForSequenceClassification.from_pretrained(backbone, **kwargs)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def lora_model(model, kind: str, r: int, alpha: int, dropout: float, rslora: bool, targets: list[str] | None,
               quantize: str | None = None, gradient_checkpointing: bool = False):
    from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training

    if quantize is not None:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=r, lora_alpha=alpha, lora_dropout=dropout, use_rslora=rslora,
        target_modules=targets or TARGET_MODULES.get(kind, "all-linear"),
        modules_to_save=HEAD_MODULES.get(kind, DEFAULT_HEAD),
    )
    return get_peft_model(model, config)


@dataclass
class TrainedModel:
    model: torch.nn.Module
    tokenizer: object
    info: dict

    @property
    def temperature(self) -> float:
        return float(self.info.get("temperature") or 1.0)


def read_model_info(model_dir: Path) -> dict:
    path = model_dir / MODEL_FILE
    if not path.exists():
        raise KitError(f"{model_dir} is not a kaggle-kit model dir (no {MODEL_FILE})", hint="pass the --out folder of `kaggle-kit train`")
    return json.loads(path.read_text())


def load_trained(model_dir: Path, backbone: str | None = None, precision: str = "auto", quantize: str | None = None,
                 device: str | None = None) -> TrainedModel:
    """A `train` output dir -> model ready for inference: merged weights if saved, else backbone + adapter (merged in memory)."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    info = read_model_info(model_dir)
    prec = choose_precision(precision)
    if (model_dir / MERGED_DIR).is_dir() and backbone is None and quantize is None:
        model = AutoModelForSequenceClassification.from_pretrained(model_dir / MERGED_DIR, **dtype_kwarg(prec.dtype))
        tokenizer = load_tokenizer(model_dir)
    else:
        backbone_path = resolve_backbone_path(backbone or info["backbone"])
        model, _ = load_backbone_model(backbone_path, prec, quantize, num_labels=info["num_labels"])
        tokenizer = load_tokenizer(model_dir)
        model = PeftModel.from_pretrained(model, model_dir / ADAPTER_DIR)
        if quantize is None:
            model = model.merge_and_unload()
        model = model.to(prec.dtype) if quantize is None else model
    if quantize is None:
        model = model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.eval()
    return TrainedModel(model=model, tokenizer=tokenizer, info=info)


def template_for(backbone: Path) -> tuple[str, str]:
    kind = model_type(backbone)
    return kind, ("decoder" if is_decoder(kind) else "encoder")
