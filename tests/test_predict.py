from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import one_line_error, run_cli
from kaggle_kit.competition.sample_data import write_sample_data
from kaggle_kit.data.reading import read_test, read_train
from kaggle_kit.errors import KitError
from kaggle_kit.inference.predict import blend, predict_probs
from kaggle_kit.metrics import softmax
from kaggle_kit.model.batching import token_budget_batches
from kaggle_kit.model.model_dir import HOLDOUT_FILE, TrainedModel, load_trained


def test_token_budget_never_exceeded():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 1024, size=500).tolist()
    batches = token_budget_batches(lengths, 4096)
    assert sorted(i for b in batches for i in b) == list(range(500))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 4096
    assert token_budget_batches([5000, 10], 4096)[0] == [0]  # a longer row goes alone


def test_reloaded_model_reproduces_holdout(trained, sample_files, spec):
    holdout = pd.read_csv(trained.out_dir / HOLDOUT_FILE, dtype={"id": str})
    pairs = read_train(sample_files.train, spec)
    rows = pairs.subset([pairs.ids.index(i) for i in holdout["id"]])
    model = load_trained(trained.out_dir)
    probs = predict_probs(model, rows, spec, max_tokens=2048, progress=False)
    assert np.abs(probs - holdout[list(spec.label_columns)].to_numpy()).max() < 1e-5


def test_order_is_restored(trained, sample_files, spec):
    model = load_trained(trained.out_dir)
    test = read_test(sample_files.test, spec)
    base = predict_probs(model, test, spec, max_tokens=1024, progress=False)
    perm = np.random.default_rng(1).permutation(len(test))
    shuffled = predict_probs(model, test.subset(perm), spec, max_tokens=3000, progress=False)
    assert np.abs(shuffled - base[perm]).max() < 1e-5


class AlwaysA(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask):
        logits = torch.tensor([4.0, 0.0, 1.0]).repeat(len(input_ids), 1)
        return SimpleNamespace(logits=logits + self.w)


def test_swap_tta_mapping(trained, small_files, spec):
    real = load_trained(trained.out_dir)
    model = TrainedModel(AlwaysA(), real.tokenizer, {**real.info, "temperature": 1.0})
    test = read_test(small_files.test, spec)
    plain = predict_probs(model, test, spec, 4096, tta="none", progress=False)
    assert (plain.argmax(1) == 0).all()
    tta = predict_probs(model, test, spec, 4096, tta="swap", progress=False)
    # on the swapped copy "A" means original B, so the average is symmetric in A and B, tie untouched
    assert np.allclose(tta[:, 0], tta[:, 1]) and np.allclose(tta[:, 2], plain[:, 2])


def test_blend_weights():
    a = np.array([[0.8, 0.1, 0.1]])
    b = np.array([[0.2, 0.6, 0.2]])
    assert np.allclose(blend([a, b], [3, 1]), [[0.65, 0.225, 0.125]])
    geo = blend([a, b], [1, 1], "logprob")
    assert np.allclose(geo.sum(), 1) and geo[0, 0] == pytest.approx(0.4 / (0.4 + np.sqrt(0.06) + np.sqrt(0.02)))
    with pytest.raises(KitError, match=r"2 model\(s\) but 1 weights"):
        blend([a, b], [1])


def test_temperature_scales_probabilities():
    logits = np.array([[2.0, 0.0, 0.0]])
    assert softmax(logits, 2.0)[0, 0] < softmax(logits)[0, 0]


def test_batches_shared_between_replicas_keep_order(trained, small_files, spec):
    """The multi-GPU path (one replica per device, batches round-robin in threads), run with two CPU replicas."""
    import copy

    from kaggle_kit.inference.predict import encoder_for
    from kaggle_kit.model.batching import predict_logits

    model = load_trained(trained.out_dir)
    encoded = encoder_for(model).encode(read_test(small_files.test, spec))
    pad = model.tokenizer.pad_token_id
    single = predict_logits(model.model, pad, encoded, 512, 3, progress=False)
    shared = predict_logits(model.model, pad, encoded, 512, 3, progress=False,
                            replicas=[model.model, copy.deepcopy(model.model)])
    assert np.abs(single - shared).max() < 1e-5 and len(token_budget_batches([len(e) for e in encoded], 512)) > 2


@pytest.mark.parametrize("victim", ["test.csv", "sample_submission.csv"])
def test_predict_probabilities_never_replaces_an_input_and_is_checked_before_inference(tmp_path, monkeypatch, victim):
    """--probabilities FILE --overwrite, FILE the test file or the data folder's sample_submission: refused before any
    model is even looked at (the model dir given does not exist, so reaching inference would fail differently)."""
    monkeypatch.chdir(tmp_path)
    files = write_sample_data(tmp_path / "data", rows=12, test_rows=4)
    before = (tmp_path / "data" / victim).read_bytes()
    result = run_cli("predict", "--test", files.test, "--model", "no-model-here", "--out", "sub.csv",
                 "--probabilities", tmp_path / "data" / victim, "--overwrite")
    one_line_error(result, f"--probabilities {tmp_path / 'data' / victim} is also an input", code=2)
    assert (tmp_path / "data" / victim).read_bytes() == before
    (tmp_path / "a-file").write_text("x")  # a path under a regular file cannot be created, even by root
    one_line_error(run_cli("predict", "--test", files.test, "--model", "no-model-here", "--out", "sub.csv",
                       "--probabilities", tmp_path / "a-file" / "probs.csv"), "cannot create")
    one_line_error(run_cli("predict", "--test", files.test, "--model", "no-model-here", "--out", "sub.csv",
                       "--probabilities", "sub.csv"), "--probabilities sub.csv is also --out", code=2)
