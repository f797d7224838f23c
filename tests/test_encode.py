import pytest

from kaggle_kit.data.encode import Encoder, EncodingSpec, allocate, fit_field, head_tail
from kaggle_kit.data.reading import Pairs
from kaggle_kit.model.backbone import load_tokenizer


def test_allocate_redistributes_unused_budget():
    assert allocate([10, 500, 500], 300) == [10, 145, 145]
    assert allocate([10, 20, 30], 300) == [10, 20, 30]
    assert sum(allocate([400, 500, 600], 301)) == 301
    # never the notebook's fixed thirds: a short prompt leaves its share to the responses
    assert allocate([5, 1000, 40], 300)[1] == 255


def test_head_tail_keeps_start_and_end():
    ids = list(range(100))
    kept = head_tail(ids, 10)
    assert kept == [0, 1, 2, 3, 4, 95, 96, 97, 98, 99]
    assert head_tail(ids, 200) == ids
    assert head_tail(ids, 0) == []


def test_truncation_is_per_turn():
    turns = [list(range(100, 200)), list(range(300, 310))]
    out = fit_field(turns, separator=[7], budget=31)
    assert out[:10] == list(range(100, 110))  # head of the long turn
    assert out[10:20] == list(range(190, 200))  # its tail
    assert out[20] == 7 and out[21:] == list(range(300, 310))  # the short turn is whole


def test_encoder_template_and_budget(tiny_backbone):
    tok = load_tokenizer(tiny_backbone)
    enc = Encoder(tok, EncodingSpec(max_len=64, template="encoder"))
    long = "word " * 500
    pairs = Pairs(ids=["1", "2"], texts={"prompt": [["short question"], []], "response_a": [[long], ["x"]],
                                          "response_b": [[long, long], [""]]})
    rows = enc.encode(pairs)
    assert len(rows[0]) == 64
    assert rows[0][0] == tok.cls_token_id and rows[0][-1] == tok.sep_token_id
    assert rows[0].count(tok.sep_token_id) == 3
    assert rows[1].count(tok.sep_token_id) == 3 and len(rows[1]) < 64  # empty/odd fields still give a valid row
    prompt_end = rows[0].index(tok.sep_token_id)
    assert tok.decode(rows[0][1:prompt_end]).strip() == "short question"  # short field kept whole


def test_decoder_template(tmp_path):
    from kaggle_kit.model.tiny_backbone import build_tiny_backbone

    tok = load_tokenizer(build_tiny_backbone(tmp_path / "llama", arch="llama"))
    enc = Encoder(tok, EncodingSpec(max_len=96, template="decoder"))
    pairs = Pairs(ids=["1"], texts={"prompt": [["hello there"]], "response_a": [["a " * 300]], "response_b": [["b"]]})
    text = tok.decode(enc.encode(pairs)[0])
    assert "Response A" in text and "Response B" in text and text.rstrip().endswith("better?")
    with pytest.raises(ValueError):
        Encoder(tok, EncodingSpec(max_len=8, template="decoder"))
