"""A tiny random backbone (DeBERTa-v3, Gemma-2, Llama, Qwen2, Mistral or BERT shaped) with a locally trained
tokenizer: for tests, the quickstart and benchmarks, never for scores."""

from __future__ import annotations

import json
from pathlib import Path

from kaggle_kit.compat import deberta_tokenizer
from kaggle_kit.errors import KitError

ARCHES = ("deberta-v3", "gemma2", "llama", "qwen2", "mistral", "bert")
SPECIAL = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
# At the usual 0.02 a random encoder's [CLS] output barely depends on the input (std 0.003 across inputs), so nothing
# downstream can learn; 0.2 makes the random features input-dependent (std 0.6) while staying a real, unpretrained
# model.
TINY_INIT_RANGE = 0.2
QUERY_KEY = ("query_proj", "key_proj", "q_proj", "k_proj", "query", "key")  # DeBERTa, decoders, BERT
DECODER_SPECIAL = {"pad": "<pad>", "unk": "<unk>", "bos": "<bos>", "eos": "<eos>"}


def _train_unigram(lines: list[str], vocab_size: int, special: list[str]):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=special, unk_token=special[1])
    tokenizer.train_from_iterator(lines, trainer=trainer)
    return tokenizer


def build_tiny_backbone(directory: Path, arch: str = "deberta-v3", seed: int = 0, vocab_size: int = 2000,
                        hidden_size: int = 64, layers: int = 2, heads: int = 2, max_positions: int = 512,
                        pad_token: bool = True) -> Path:
    """A randomly initialised backbone of `arch` with a tokenizer trained on our sample text, saved like a real one.

    `max_positions` bounds the absolute position embeddings of the BERT-shaped one (MiniLM-like, 512 by default).
    `pad_token=False` (decoders): no pad token in tokenizer or config, as Llama-3 ships (kaggle-kit pads with eos)."""
    import torch
    import transformers

    from kaggle_kit.competition.sample_data import corpus_lines

    if arch not in ARCHES:
        raise KitError(f"unknown architecture '{arch}'", hint=f"choose one of {', '.join(ARCHES)}")
    if directory.exists() and any(directory.iterdir()):
        raise KitError(f"{directory} is not empty", hint="choose a new folder")
    torch.manual_seed(seed)
    lines = corpus_lines(1500)
    if arch in ("deberta-v3", "bert"):
        names = [SPECIAL["pad"], SPECIAL["unk"], SPECIAL["cls"], SPECIAL["sep"], SPECIAL["mask"]]
        unigram = _train_unigram(lines, vocab_size, names)
        vocab = json.loads(unigram.to_str())["model"]["vocab"]
        tokenizer = deberta_tokenizer([(piece, score) for piece, score in vocab], SPECIAL)
        tokenizer.model_max_length = max_positions if arch == "bert" else int(1e30)
    if arch == "bert":
        config = transformers.BertConfig(
            vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=hidden_size * 4, max_position_embeddings=max_positions, type_vocab_size=2,
            pad_token_id=tokenizer.pad_token_id, num_labels=3, initializer_range=TINY_INIT_RANGE)
        model = transformers.BertForSequenceClassification(config)
    elif arch == "deberta-v3":
        config = transformers.DebertaV2Config(
            vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=hidden_size * 4, max_position_embeddings=512, relative_attention=True,
            pos_att_type=["p2c", "c2p"], position_buckets=256, max_relative_positions=-1, norm_rel_ebd="layer_norm",
            share_att_key=True, position_biased_input=False, type_vocab_size=0, pad_token_id=tokenizer.pad_token_id,
            num_labels=3, initializer_range=TINY_INIT_RANGE,
        )
        model = transformers.DebertaV2ForSequenceClassification(config)
    else:
        names = [DECODER_SPECIAL["pad"], DECODER_SPECIAL["unk"], DECODER_SPECIAL["bos"], DECODER_SPECIAL["eos"]]
        unigram = _train_unigram(lines, vocab_size, names)
        tokenizer = transformers.PreTrainedTokenizerFast(
            tokenizer_object=unigram, pad_token=names[0] if pad_token else None, unk_token=names[1],
            bos_token=names[2], eos_token=names[3])
        common = dict(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=1,
                      head_dim=hidden_size // heads,
                      max_position_embeddings=4096, pad_token_id=0 if pad_token else None, bos_token_id=2,
                      eos_token_id=3, num_labels=3, initializer_range=TINY_INIT_RANGE)
        if arch == "gemma2":
            config = transformers.Gemma2Config(**common, sliding_window=128)
            model = transformers.Gemma2ForSequenceClassification(config)
        elif arch == "qwen2":
            config = transformers.Qwen2Config(**common)
            model = transformers.Qwen2ForSequenceClassification(config)
        elif arch == "mistral":
            config = transformers.MistralConfig(**common)
            model = transformers.MistralForSequenceClassification(config)
        else:
            config = transformers.LlamaConfig(**common)
            model = transformers.LlamaForSequenceClassification(config)
    _mixing_attention(model)
    _small_head(model)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _mixing_attention(model) -> None:
    """Near-uniform attention (small query/key weights): [CLS] then carries an average of the whole input through a
    random network, as a pretrained encoder's [CLS] does, so a small LoRA run can learn from it."""
    import torch

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in QUERY_KEY:
            torch.nn.init.normal_(module.weight, std=0.02)


def _small_head(model) -> None:
    """Heads start small as in a real checkpoint+fresh head; the wide TINY_INIT_RANGE would make the first logits
    huge."""
    import torch

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.split(".")[0] in ("classifier", "pooler", "score"):
            torch.nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
