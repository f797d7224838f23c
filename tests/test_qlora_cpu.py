"""QLoRA for real on a CPU: bitsandbytes' CPU backend (>= backbone.BNB_CPU_4BIT) runs NF4 Linear4bit layers, so
train --quantize 4bit, resume, predict in 4-bit as trained, merge and the dtypes the GPU path sees run here on the tiny
decoders. Nothing is faked: the same prepare_model_for_kbit_training, LoRA-over-Linear4bit and save/load code runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

from conftest import quick_config
from kaggle_kit.cli import main
from kaggle_kit.model.backbone import Precision, load_backbone_model, lora_model, quantize_on_cpu
from kaggle_kit.model.model_dir import ADAPTER_DIR, MERGED_DIR, MODEL_FILE, load_trained
from kaggle_kit.model.tiny_backbone import build_tiny_backbone
from kaggle_kit.submission import validate_file
from kaggle_kit.training.train import train

pytestmark = pytest.mark.skipif(not quantize_on_cpu("4bit"), reason="this bitsandbytes has no CPU 4-bit backend")


def linear4bit_count(model) -> int:
    import bitsandbytes as bnb

    return sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())


@pytest.fixture(scope="module")
def tiny_decoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("qlora-bb")
    return {arch: build_tiny_backbone(root / f"tiny-{arch}", arch=arch) for arch in ("llama", "gemma2", "qwen2")}


@pytest.fixture(scope="module")
def qlora_llama(tmp_path_factory, small_files, spec, tiny_decoders):
    """The CLI's train --quantize 4bit on the tiny Llama, 4 steps."""
    out = tmp_path_factory.mktemp("qlora") / "model"
    result = CliRunner().invoke(main, ["train", "--train", str(small_files.train), "--backbone",
                                       str(tiny_decoders["llama"]), "--out", str(out), "--quantize", "4bit",
                                       "--max-len", "96", "--max-steps", "4", "--eval-steps", "2", "--batch-size", "8",
                                       "--lr", "1e-3", "--json"])
    assert result.exit_code == 0, result.output
    return out


def test_4bit_train_changes_lora_b_and_records_how_it_was_trained(qlora_llama):
    with safe_open(str(qlora_llama / ADAPTER_DIR / "adapter_model.safetensors"), "pt") as f:
        lora_b = [f.get_tensor(k) for k in f.keys() if "lora_B" in k]
        heads = [k for k in f.keys() if "score" in k]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)  # B starts at zero: gradients reached every LoRA layer
    assert heads  # the fresh head is trained and saved with the adapter
    info = json.loads((qlora_llama / MODEL_FILE).read_text())
    assert info["train_config"]["quantize"] == "4bit" and info["attn_implementation"] == "sdpa"


def test_predict_loads_4bit_as_trained_and_writes_a_valid_file(qlora_llama, small_files, spec, tmp_path):
    loaded = load_trained(qlora_llama)
    assert linear4bit_count(loaded.model) == 14  # 2 layers x 7 projections: the model the holdout measured
    sub = tmp_path / "submission.csv"
    result = CliRunner().invoke(main, ["predict", "--model", str(qlora_llama), "--test", str(small_files.test),
                                       "--out", str(sub)])
    assert result.exit_code == 0, result.output
    assert validate_file(sub, pd.read_csv(small_files.test)["id"].astype(str).tolist(), spec).ok


def test_4bit_resume_continues_from_the_checkpoint(tmp_path, small_files, spec, tiny_decoders):
    from test_train import StopAt

    cfg = quick_config(tiny_decoders["qwen2"], max_steps=4, eval_steps=2, max_len=96, quantize="4bit")
    with pytest.raises(KeyboardInterrupt):
        train([small_files.train], tmp_path / "cut", cfg, spec, callbacks=[StopAt(3)])
    assert (tmp_path / "cut" / "checkpoints" / "checkpoint-2").is_dir()
    resumed = train([small_files.train], tmp_path / "cut", cfg, spec, resume=True).metrics
    assert [e["step"] for e in resumed["eval_history"]] == [2, 4] and np.isfinite(resumed["holdout"]["log_loss"])


@pytest.fixture(scope="module")
def qlora_gemma_merged(tmp_path_factory, small_files, spec, tiny_decoders):
    out = tmp_path_factory.mktemp("qlora-gemma") / "m"
    train([small_files.train], out, quick_config(tiny_decoders["gemma2"], max_steps=2, eval_steps=2, max_len=96,
                                                 quantize="4bit", merge=True), spec)
    return out


def test_4bit_merge_is_saved_in_the_compute_dtype_and_predicts(qlora_gemma_merged, small_files, spec):
    """Merged into the backbone reloaded at full precision (never into NF4 weights), stored in the compute dtype."""
    from kaggle_kit.data.reading import read_test
    from kaggle_kit.inference.predict import predict_probs

    out = qlora_gemma_merged
    with safe_open(str(out / MERGED_DIR / "model.safetensors"), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert dtypes == {torch.float32}  # the CPU's compute dtype; no uint8 NF4 blocks
    info = json.loads((out / MODEL_FILE).read_text())
    assert info["attn_implementation"] == "eager" and info["merged_dtype"] == "float32"
    loaded = load_trained(out)
    assert loaded.model.config._attn_implementation == "eager"  # predict runs the attention it was trained with
    probs = predict_probs(loaded, read_test(small_files.test, spec), spec, 4096, progress=False)
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1.0)


def test_budgeted_blend_of_4bit_models_keeps_the_eager_row_cap(monkeypatch, qlora_llama, qlora_gemma_merged,
                                                               small_files, spec, tmp_path):
    """The infer kernel's path (a time budget) over a blend of a 4-bit Llama and a merged 4-bit Gemma-2: each batch
    the eager Gemma-2 sees respects rows x len^2 (the cap plain predict applies). The cap is lowered so that the tiny
    rows reach it, standing in for Gemma-2-9B's 2048-token rows under the real 1 GiB cap."""
    from kaggle_kit.config import PredictConfig
    from kaggle_kit.inference import budgeted
    from kaggle_kit.inference.budget import Budget
    from kaggle_kit.inference.run import predict_to_submission
    from kaggle_kit.model import batching

    monkeypatch.setattr(batching, "EAGER_SCORES_BYTES", 4 * 2 * 40_000)  # 2 heads: rows x len^2 <= 40,000
    shapes: dict[str, list[tuple[int, int]]] = {"eager": [], "sdpa": []}

    def loader(model_dir, **kw):
        trained = load_trained(model_dir, **kw)
        kind = trained.model.config._attn_implementation
        trained.model.register_forward_pre_hook(
            lambda m, a, k: shapes[kind].append(tuple(k["input_ids"].shape)), with_kwargs=True)
        return trained

    real_init = budgeted.BudgetedPredictor.__init__
    monkeypatch.setattr(budgeted.BudgetedPredictor, "__init__",
                        lambda self, *a, **k: real_init(self, *a, **{**k, "loader": loader}))
    sub = tmp_path / "submission.csv"
    predict_to_submission([qlora_llama, qlora_gemma_merged], small_files.test, sub, spec,
                          PredictConfig(max_tokens=4096, tta="none", batching="padded"), progress=False,
                          budget=Budget(600))  # padded: the hook sees the classifier's own forward
    assert validate_file(sub, pd.read_csv(small_files.test)["id"].astype(str).tolist(), spec).ok
    assert shapes["eager"] and shapes["sdpa"]
    assert all(rows * length ** 2 <= 40_000 or rows == 1 for rows, length in shapes["eager"])
    assert max(rows for rows, _ in shapes["sdpa"]) > max(rows for rows, _ in shapes["eager"])  # only eager is capped


@pytest.mark.parametrize("compute", ["bf16", "fp32"])
def test_dtypes_the_gpu_path_sees(tiny_decoders, compute):
    """After prepare_model_for_kbit_training: trainable LoRA and head in fp32, Linear4bit computing in the dtype set
    (bitsandbytes >= 0.50 honours bnb_4bit_compute_dtype), and the residual stream (embeddings, layer outputs) in fp32:
    under fp16 autocast on a T4 that is what the activations take, not half of it (memory_plan's 4-bit term)."""
    model, _ = load_backbone_model(tiny_decoders["llama"], Precision(compute), "4bit")
    model = lora_model(model, "llama", 4, 8, 0.0, False, None, "4bit", gradient_checkpointing=True)
    trainable = {p.dtype for p in model.parameters() if p.requires_grad}
    assert trainable == {torch.float32}
    import bitsandbytes as bnb

    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and {m.compute_dtype for m in layers} == {Precision(compute).dtype}
    seen: dict[str, torch.dtype] = {}
    inner = model.base_model.model.model
    hooks = [inner.embed_tokens.register_forward_hook(lambda m, i, o: seen.update(embed=o.dtype)),
             inner.layers[0].register_forward_hook(
                 lambda m, i, o: seen.update(layer=(o[0] if isinstance(o, tuple) else o).dtype))]
    model.train()
    out = model(input_ids=torch.randint(4, 100, (2, 12)), labels=torch.tensor([0, 2]))
    out.loss.backward()
    for hook in hooks:
        hook.remove()
    assert seen == {"embed": torch.float32, "layer": torch.float32}
    head = [p for n, p in model.named_parameters() if "score" in n and p.requires_grad]
    assert head and all(p.grad is not None for p in head)


def test_plan_matches_the_cpu_peak_of_a_tiny_4bit_step(tmp_path):
    """memory_plan's 4-bit weights and step (LoRA + AdamW + activations, checkpointed) against one real step of a
    hidden-256, 4-layer Llama in 4-bit, batch 8 x 256, measured in a fresh process with its peak reset before the
    step (measured here: 195-223 MB against an estimate of 282 MB): the plan may be cautious, never short."""
    import subprocess
    import sys
    from pathlib import Path

    from kaggle_kit.training.memory_plan import train_step_bytes, weights_bytes

    backbone = build_tiny_backbone(tmp_path / "llama256", arch="llama", hidden_size=256, layers=4, heads=4)
    script = Path(__file__).with_name("step_peak.py")
    proc = subprocess.run([sys.executable, str(script), str(backbone), "8", "256"], capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    config = json.loads((backbone / "config.json").read_text())
    shape = {k: config[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                                    "vocab_size", "model_type")}
    step = train_step_bytes(shape, 8, 256, "fp32", "4bit", True, 16, None, 4)
    estimate = step["lora"] + step["activations"]
    assert measured["step_bytes"] <= estimate <= 1.6 * measured["step_bytes"], (measured, estimate)
    assert weights_bytes(shape, "4bit") == pytest.approx(measured["frozen_bytes"], rel=0.25)


def test_4bit_train_and_infer_kernels_run_locally(tmp_path, monkeypatch, small_files, spec, tiny_decoders):
    """The kernels' own entry point (run-kernel on Kaggle's folder layout) with [train] quantize = "4bit": the train
    kernel trains QLoRA, the infer kernel loads its output in 4-bit and writes a valid submission."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text(
        'username = "tester"\n[datasets]\nbackbone = "tester/tiny-llama"\n[kernel]\ntrain_slug = "lmsys-train"\n'
        'infer_slug = "lmsys-infer"\n[train]\nquantize = "4bit"\nmax_len = 96\nmax_steps = 2\neval_steps = 2\n')
    comp, backbone = small_files.train.parent, tiny_decoders["llama"]

    def run(*args):
        result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    run("build-kernel", "train", "--out", "kb/train")
    run("run-kernel", "kb/train", "--input", f"lmsys-chatbot-arena={comp}", "--input", f"tiny-llama={backbone}",
        "--working", "work-train")
    info = json.loads((tmp_path / "work-train" / "model" / MODEL_FILE).read_text())
    assert info["train_config"]["quantize"] == "4bit"
    run("build-kernel", "infer", "--out", "kb/infer")
    run("run-kernel", "kb/infer", "--input", f"lmsys-chatbot-arena={comp}", "--input", f"tiny-llama={backbone}",
        "--input", f"lmsys-train={tmp_path / 'work-train'}", "--working", "work-infer")
    assert linear4bit_count(load_trained(tmp_path / "work-train" / "model").model) == 14
    ids = pd.read_csv(small_files.test)["id"].astype(str).tolist()
    assert validate_file(tmp_path / "work-infer" / "submission.csv", ids, spec).ok
