"""The one place where library versions differ: everything else calls these helpers, never `if version...` itself.

Tested range: setup.cfg's lower bounds (transformers 4.53, peft 0.15, accelerate 1.8, ...) up to the newest releases.
Each helper asks the library what it accepts (signature or attribute), not which version it is."""

from __future__ import annotations

import inspect
from functools import cache
from typing import Any


@cache
def _accepts(func, name: str) -> bool:
    return name in inspect.signature(func).parameters


def deberta_tokenizer(vocab: list[tuple[str, float]], special: dict[str, str]):
    """A DeBERTa-v3 style tokenizer from a Unigram vocab. transformers 5 builds it from `vocab=`; 4.x only from an
    spm.model file, so there we assemble the same tokenizers pipeline and wrap it in the fast class."""
    import transformers

    if _accepts(transformers.DebertaV2Tokenizer.__init__, "vocab"):
        return transformers.DebertaV2Tokenizer(vocab=vocab)
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    unk_id = next(i for i, (piece, _) in enumerate(vocab) if piece == special["unk"])
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Replace(Regex(r"\s{2,}|[\n\r\t]"), " "), normalizers.NFC(),
                                                 normalizers.Strip(left=False, right=True)])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    cls, sep = special["cls"], special["sep"]
    ids = {piece: i for i, (piece, _) in enumerate(vocab)}
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, ids[cls]), (sep, ids[sep])])
    return transformers.DebertaV2TokenizerFast(
        tokenizer_object=tokenizer, bos_token=cls, eos_token=sep, cls_token=cls, sep_token=sep,
        unk_token=special["unk"], pad_token=special["pad"], mask_token=special["mask"])


def dtype_kwarg(dtype) -> dict[str, Any]:
    """`dtype=` for from_pretrained; transformers < 4.56 only knows `torch_dtype=` (**kwargs hide it from signatures)
    and stores an unknown `dtype` in the config, which then fails to save as JSON."""
    import transformers

    return {"dtype" if _major_minor(transformers.__version__) >= (4, 56) else "torch_dtype": dtype}


def _major_minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def training_arguments(**kwargs):
    """TrainingArguments from the newest names, translated for older transformers: `train_sampling_strategy=
    "group_by_length"` -> `group_by_length=True`; a float `warmup_steps` < 1 -> `warmup_ratio`."""
    from transformers import TrainingArguments

    if not _accepts(TrainingArguments.__init__, "train_sampling_strategy"):
        strategy = kwargs.pop("train_sampling_strategy", None)
        if strategy == "group_by_length":
            kwargs["group_by_length"] = True
    warmup = kwargs.get("warmup_steps")
    if isinstance(warmup, float) and not _accepts_float_warmup(TrainingArguments):
        kwargs.pop("warmup_steps")
        if warmup < 1:
            kwargs["warmup_ratio"] = warmup
        else:
            kwargs["warmup_steps"] = int(warmup)
    return TrainingArguments(**kwargs)


def _accepts_float_warmup(cls) -> bool:
    """transformers 5 types warmup_steps as `float` (a value < 1 is a ratio); 4.x as `int`."""
    import dataclasses

    return "float" in str({f.name: f.type for f in dataclasses.fields(cls)}["warmup_steps"])


def trainer_tokenizer_kwarg(tokenizer) -> dict[str, Any]:
    """`processing_class=` (transformers >= 4.46); `tokenizer=` before it."""
    from transformers import Trainer

    return {"processing_class" if _accepts(Trainer.__init__, "processing_class") else "tokenizer": tokenizer}
