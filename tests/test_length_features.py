"""Length-aware inputs, holdout sizing and frozen layers."""

import numpy as np

from kaggle_kit.data.encode import Encoder, EncodingSpec
from kaggle_kit.data.length_features import length_header, text_stats
from kaggle_kit.data.reading import Pairs
from kaggle_kit.model.backbone import load_tokenizer
from kaggle_kit.training.train import holdout_size, split_holdout


def test_text_stats_count_structure():
    text = "# Title\n\nIntro line\n- one\n- two\n1. three\n```py\nx = 1\n```\nend"
    assert text_stats(text) == {"words": 16, "lines": 10, "list items": 3, "headers": 1, "code blocks": 1}
    assert text_stats("") == {"words": 0, "lines": 0, "list items": 0, "headers": 0, "code blocks": 0}
    assert length_header("a b c") == "words 3, lines 1, list items 0, headers 0, code blocks 0"


def test_header_survives_truncation_and_reports_the_full_length(tiny_backbone):
    tok = load_tokenizer(tiny_backbone)
    long = "word " * 500
    pairs = Pairs(ids=["1"], texts={"prompt": [["short question"]], "response_a": [[long]], "response_b": [["x"]]})
    plain = Encoder(tok, EncodingSpec(max_len=256, template="encoder")).encode(pairs)[0]
    headed = Encoder(tok, EncodingSpec(max_len=256, template="encoder", length_header=True)).encode(pairs)[0]
    assert len(headed) == len(plain) == 256
    text = tok.decode(headed)
    assert "words 500, lines 1, list items 0, headers 0, code blocks 0" in text  # A's full length, A truncated
    assert "words 1, lines 1," in text and "words 2, lines 1," in text
    assert "words" not in tok.decode(plain)


def test_older_model_dirs_load_without_the_header():
    spec = EncodingSpec.from_dict({"max_len": 256, "template": "encoder", "fields": ["prompt", "response_a",
                                                                                     "response_b"]})
    assert spec.length_header is False
    assert EncodingSpec.from_dict(EncodingSpec(max_len=8, template="encoder", length_header=True).to_dict()) == \
        EncodingSpec(max_len=8, template="encoder", length_header=True)


def test_holdout_is_sized_by_rows_when_the_data_allows():
    assert holdout_size(2000, 0.05, 500) == 500  # not 100
    assert holdout_size(20000, 0.05, 500) == 1000  # 5% is larger
    assert holdout_size(1000, 0.05, 500) == 250  # at most a quarter: 750 rows still train
    assert holdout_size(120, 0.05, 500) == 30
    assert holdout_size(2000, 0.05, 0) == 100  # --valid-rows 0: the fraction alone
    labels = np.arange(2000) % 3
    train_idx, valid_idx = split_holdout(labels, 0.05, None, seed=0, valid_rows=500)
    assert len(valid_idx) == 500 and len(train_idx) == 1500 and not set(train_idx) & set(valid_idx)


def test_freeze_layers_puts_no_lora_on_the_first_layers(tiny_backbone):
    from kaggle_kit.model.backbone import choose_precision, load_backbone_model, lora_model

    model, _ = load_backbone_model(tiny_backbone, choose_precision("fp32"))
    model = lora_model(model, "deberta-v2", 4, 8, 0.0, False, None, freeze_layers=1)
    lora = [n for n, _ in model.named_parameters() if "lora_A" in n]
    assert lora and all(".layer.1." in n for n in lora)
