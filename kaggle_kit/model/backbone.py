"""Real backbones: find a local model folder, load it for sequence classification (precision and 4/8-bit chosen by
device), and wrap it with LoRA."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from kaggle_kit.compat import dtype_kwarg
from kaggle_kit.errors import KitError

# All linear layers of attention + MLP. DeBERTa's "output.dense" suffix matches attention and MLP outputs but not the
# pooler; BERT-family names likewise.
TARGET_MODULES = {
    "deberta-v2": ["query_proj", "key_proj", "value_proj", "output.dense", "intermediate.dense"],
    "bert": ["query", "key", "value", "output.dense", "intermediate.dense"],
    "roberta": ["query", "key", "value", "output.dense", "intermediate.dense"],
    "xlm-roberta": ["query", "key", "value", "output.dense", "intermediate.dense"],
    "electra": ["query", "key", "value", "output.dense", "intermediate.dense"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
# Trained in full and saved with the adapter. DeBERTa-v3 checkpoints ship no pooler: left frozen it would stay random,
# and an adapter saved without it would reload with a *different* random pooler. BERT-family poolers are pretrained
# (next-sentence task), but fine-tuning them with the fresh head is the usual recipe.
HEAD_MODULES = {"deberta-v2": ["classifier", "pooler"], "bert": ["classifier", "pooler"]}
DEFAULT_HEAD = ["score"]
ENCODER_TYPES = {"deberta-v2", "deberta", "bert", "roberta", "xlm-roberta", "electra", "distilbert", "mpnet"}
CHECKPOINTING_KWARGS = {"use_reentrant": False}  # see train._training_args
BACKBONE_HINT = ("pass --backbone PATH (a local model folder), or attach the weights as a Kaggle dataset and pass "
                 "/kaggle/input/<slug>; `kaggle-kit tiny-backbone DIR` builds a small one for trying things out")


def resolve_backbone_path(backbone: str | os.PathLike | None) -> Path:
    """Only local folders: there is no hub access where kernels run with the internet off."""
    if not backbone:
        raise KitError("no backbone given", hint="pass --backbone PATH or set [train] backbone in kaggle-kit.toml")
    path = Path(backbone).expanduser()
    if not path.is_dir():
        raise KitError(f"backbone '{backbone}' is not a local folder", hint=BACKBONE_HINT)
    if not (path / "config.json").exists():
        raise KitError(f"backbone folder {path} has no config.json", hint="it must be a save_pretrained() folder")
    return path.resolve()


def model_type(backbone: Path) -> str:
    try:
        return json.loads((backbone / "config.json").read_text())["model_type"]
    except (json.JSONDecodeError, KeyError, UnicodeDecodeError):
        raise KitError(f"{backbone / 'config.json'} is not a transformers config (no model_type)") from None


def is_decoder(model_type_name: str) -> bool:
    return model_type_name not in ENCODER_TYPES


def template_for(backbone: Path) -> tuple[str, str]:
    kind = model_type(backbone)
    return kind, ("decoder" if is_decoder(kind) else "encoder")


def load_tokenizer(backbone: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(backbone)
    if tokenizer.pad_token is None:  # decoder tokenizers often have none: pad with eos
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@dataclass(frozen=True)
class Precision:
    name: str  # fp32 | fp16 | bf16

    @property
    def dtype(self) -> torch.dtype:
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.name]


BF16_CAPABILITY = (8, 0)  # Ampere: below it bf16 is emulated (T4 7.5, P100 6.0 report is_bf16_supported() anyway)


def gpu_capability() -> tuple[int, int] | None:
    """The CUDA compute capability of the current device, or None without CUDA."""
    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability()
    return int(major), int(minor)


def choose_precision(requested: str = "auto") -> Precision:
    """bf16 on Ampere+ (A100/H100, capability >= 8.0), fp16 below (T4/P100), fp32 on CPU (fp16 on CPU is silently
    2.5x slower). Decided on the capability: torch reports bf16 'supported' on a T4 through slow emulation."""
    capability = gpu_capability()
    if requested == "auto":
        if capability is None:
            return Precision("fp32")
        return Precision("bf16" if capability >= BF16_CAPABILITY else "fp16")
    if requested not in ("fp32", "fp16", "bf16"):
        raise KitError(f"unknown precision '{requested}'", hint="choose auto, fp32, fp16 or bf16")
    if requested != "fp32" and capability is None:
        raise KitError(f"--precision {requested} needs a CUDA GPU", hint="use --precision auto (fp32) on CPU")
    if requested == "bf16" and capability < BF16_CAPABILITY:
        raise KitError(f"--precision bf16 needs compute capability 8.0 (Ampere or newer); this GPU has "
                       f"{capability[0]}.{capability[1]}", hint="use --precision fp16 (T4/P100) or auto")
    return Precision(requested)


# bitsandbytes' CPU backend: 4-bit NF4 layers train and predict on a CPU from this version on (checked: 0.46.1, 0.47.0,
# 0.48.2, 0.49.0 and 0.50.2 train the tiny Llama forward + backward; tests/test_qlora_cpu.py's train, resume, predict,
# merge and dtype tests pass on 0.46.1 and 0.50.2; both cast inputs to bnb_4bit_compute_dtype). 0.45.5
# is refused by transformers 5.x itself (it asks for >= 0.46.1); older versions keep the one-line refusal.
BNB_CPU_4BIT = (0, 46, 1)
# One attention implementation per backbone family, on every transformers version: Gemma-2 attends eagerly (sdpa
# drops its logit soft-cap; transformers 4.53 picks sdpa, 5.x eager). None: the library's default (sdpa).
ATTENTION = {"gemma2": "eager"}


def bitsandbytes_version() -> tuple[int, ...] | None:
    import re
    from importlib.metadata import PackageNotFoundError, version

    try:
        return tuple(int(part) for part in re.findall(r"\d+", version("bitsandbytes"))[:3])
    except PackageNotFoundError:
        return None


def quantize_on_cpu(quantize: str | None) -> bool:
    """Whether this bitsandbytes runs `quantize` on a CPU (4-bit from BNB_CPU_4BIT; 8-bit never here)."""
    found = bitsandbytes_version()
    return quantize == "4bit" and found is not None and found >= BNB_CPU_4BIT


def quantization_config(quantize: str | None, compute_dtype: torch.dtype, kind: str | None = None):
    """bitsandbytes' config for --quantize. An encoder's head (pooler + classifier) stays in full precision: it is
    trained whole (modules_to_save), and a 4/8-bit pooler cannot require gradients (transformers would quantise it:
    it skips only the last module)."""
    if quantize is None:
        return None
    if quantize not in ("4bit", "8bit"):
        raise KitError(f"unknown --quantize '{quantize}'", hint="choose 4bit or 8bit")
    if not torch.cuda.is_available() and not quantize_on_cpu(quantize):
        needs = (f"bitsandbytes >= {'.'.join(map(str, BNB_CPU_4BIT))} on a CPU" if quantize == "4bit" else "")
        raise KitError(f"--quantize {quantize} needs a CUDA GPU{' or ' + needs if needs else ''} (bitsandbytes)",
                       hint="drop --quantize on CPU" + (", or upgrade bitsandbytes" if needs else ""))
    from transformers import BitsAndBytesConfig

    skip = {"llm_int8_skip_modules": _head_names(kind)} if kind in HEAD_MODULES else {}
    if quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, **skip)
    found = bitsandbytes_version()
    if found is not None and found < BNB_CPU_4BIT:  # on CUDA: runs, but not in the compute dtype asked for
        logging.getLogger(__name__).warning(
            "warning: bitsandbytes %s ignores bnb_4bit_compute_dtype (its 4-bit layers compute from fp32 inputs: "
            "slower, more memory); %s or newer casts to %s", ".".join(map(str, found)),
            ".".join(map(str, BNB_CPU_4BIT)), str(compute_dtype).removeprefix("torch."))
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype, **skip)


def _head_names(kind: str) -> list[str]:
    """The head modules by the names bitsandbytes' loader matches: as given (DeBERTa's pooler is top-level) and
    under the base model (BERT's is bert.pooler)."""
    from transformers import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING, AutoConfig

    prefix = MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[type(AutoConfig.for_model(kind))].base_model_prefix
    return [*HEAD_MODULES[kind], *(f"{prefix}.{name}" for name in HEAD_MODULES[kind])]


def rank_device(env: dict[str, str] | None = None) -> int | str:
    """The one device this process works on: its own GPU under torchrun (LOCAL_RANK: no rank has called set_device yet
    when the model loads, so current_device() would put every rank on GPU 0), else the current GPU, else "cpu"."""
    local_rank = (os.environ if env is None else env).get("LOCAL_RANK")
    if not torch.cuda.is_available():
        return "cpu"
    return int(local_rank) if local_rank is not None else torch.cuda.current_device()


def free_model_memory() -> None:
    """Give a finished model's memory back before the next one loads (cv's folds, a blend's models, one after
    another). Only the cycle collector frees it (accelerate's patched forward refers back to the model): without
    this a second 9B load on a T4 meets the first one still in GPU memory."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def attention_for(kind: str, recorded: str | None = None) -> str | None:
    """The attention implementation to load with: the one a model dir recorded, else the family's (ATTENTION)."""
    return recorded or ATTENTION.get(kind)


def load_backbone_model(backbone: Path, precision: Precision, quantize: str | None = None, num_labels: int = 3,
                        training: bool = True, device: str | int | None = None, attention: str | None = None):
    """The backbone for sequence classification. Training keeps fp32 master weights (LoRA; fp16/bf16 come from
    Trainer's autocast) except under quantisation; inference loads frozen weights in the compute dtype straight away
    (a 9B model in fp32 would need about 37 GB of host memory). `attention`: as recorded (default: the family's)."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars: noise in logs, and they break one-line errors

    tokenizer = load_tokenizer(backbone)
    kwargs = {"num_labels": num_labels, "ignore_mismatched_sizes": True, "low_cpu_mem_usage": True}
    kind = model_type(backbone)
    if (implementation := attention_for(kind, attention)) is not None:
        kwargs["attn_implementation"] = implementation
    quant = quantization_config(quantize, precision.dtype, kind)
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": rank_device() if device is None else device})
    kwargs.update(dtype_kwarg(precision.dtype if quant is not None or not training else torch.float32))
    model = no_kv_cache(AutoModelForSequenceClassification.from_pretrained(backbone, **kwargs))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def attention_of(model) -> str | None:
    """The attention implementation a loaded model runs (what kaggle_kit_model.json records)."""
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None)


def no_kv_cache(model):
    """A classifier never generates: without this a decoder builds K/V for every layer on each evaluation and
    predict forward (Gemma-2-9B at 16 x 1024 tokens: about 11 GB)."""
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False
    return model


def lora_layers(model, freeze_layers: int) -> list[int] | None:
    """Indexes of the layers that get LoRA when the first `freeze_layers` stay frozen (None: all of them)."""
    if freeze_layers <= 0:
        return None
    total = int(model.config.num_hidden_layers)
    if freeze_layers >= total:
        raise KitError(f"--freeze-layers {freeze_layers} leaves no layer to train (the backbone has {total})",
                       hint=f"use at most {total - 1}")
    return list(range(freeze_layers, total))


def check_target_modules(model, targets: list[str]) -> None:
    """Each --target-modules name must match a module as peft matches them (the name, or a dotted suffix of it);
    peft's own error for one that matches nothing is a traceback."""
    names = [name for name, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in names)]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise KitError(f"--target-modules {', '.join(missing)}: no such layer in this backbone",
                       hint=f"its linear layers: {', '.join(linear)}")


def lora_model(model, kind: str, r: int, alpha: int, dropout: float, rslora: bool, targets: list[str] | None,
               quantize: str | None = None, gradient_checkpointing: bool = False, freeze_layers: int = 0):
    from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training

    layers = lora_layers(model, freeze_layers)
    if targets:
        check_target_modules(model, targets)
    if quantize is not None:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                                gradient_checkpointing_kwargs=CHECKPOINTING_KWARGS)
    elif gradient_checkpointing:  # the embeddings' output needs a gradient for re-entrant checkpointing to reach LoRA
        model.enable_input_require_grads()
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=r, lora_alpha=alpha, lora_dropout=dropout, use_rslora=rslora,
        target_modules=targets or TARGET_MODULES.get(kind, "all-linear"),
        modules_to_save=HEAD_MODULES.get(kind, DEFAULT_HEAD), layers_to_transform=layers,
        layers_pattern=None if layers is None else ("layer" if kind in ENCODER_TYPES else "layers"),
    )
    return get_peft_model(model, config)
