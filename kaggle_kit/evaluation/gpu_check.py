"""`make test-gpu`: what only a CUDA GPU can show, in one prepared run (a few minutes, no network).

Tiny DeBERTa-v2, Llama, Gemma-2 and Qwen2 backbones are built offline; each trains a few steps with gradient
checkpointing in fp16 and, where the GPU has bf16 (compute capability >= 8.0), in bf16; Llama and Gemma-2 train in
4-bit QLoRA when bitsandbytes imports; every fp16 model predicts on CUDA with swap TTA. Beside each run: the peak of
torch.cuda.max_memory_allocated (training step, and the whole run with evaluation and the holdout pass) and
`plan train`'s estimate for the same shapes; the notebook inference path against ours (`bench predict`) in tokens/s,
padded and packed on a decoder; on two GPUs, fp16 layers split over both against a 4-bit replica per GPU (rows/s).
Every check runs in a process of its own (one sticky CUDA error fails that check, not the rest). A T4-like pass runs
on any GPU: fp16 forced for training and predict, whatever bf16 the GPU has. Everything goes to a JSON report.
Without CUDA it says so and exits 0, claiming nothing; but when the driver shows a GPU (nvidia-smi) that torch cannot
use (a torch build that does not match the driver), it exits 1.

    python -m kaggle_kit.evaluation.gpu_check --out .cache/gpu-check.json"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ARCHES = ("deberta-v3", "llama", "gemma2", "qwen2")
QLORA_ARCHES = ("llama", "gemma2")
SHAPE = {"hidden_size": 256, "layers": 4, "heads": 4}  # small, but large enough for memory to be more than overhead
ROWS, TEST_ROWS, MAX_LEN, BATCH, STEPS = 240, 64, 384, 4, 4
NO_GPU = "gpu-check: no CUDA GPU found; nothing was checked (run `make test-gpu` on a machine with one)"
CHILD_TIMEOUT_S = 900
RESULT = "gpu-check-result: "  # the line a check's own process reports on


def driver_gpus() -> list[str]:
    """The GPUs the driver lists (`nvidia-smi -L`), whatever torch makes of them; [] without nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        proc = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in proc.stdout.splitlines() if line.strip().startswith("GPU ")]


def _versions() -> dict[str, str | None]:
    import importlib.metadata as md

    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "accelerate", "bitsandbytes"):
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            found[name] = None
    return found


def _bitsandbytes_problem() -> str | None:
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # an ImportError, or a CUDA library it cannot find
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        return f"bitsandbytes does not import: {type(exc).__name__}: {first}"
    return None


def _check(checks: list[dict], name: str, run: Callable[..., dict], *args: Any, **kwargs: Any) -> dict:
    """Run one check; a failure is recorded in one line and the next check still runs."""
    start = time.perf_counter()
    try:
        detail = run(*args, **kwargs)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        detail = {"ok": False, "error": f"{type(exc).__name__}: {first}"}
    entry = {"name": name, "seconds": round(time.perf_counter() - start, 1), **detail}
    checks.append(entry)
    state = "skipped" if entry.get("ok") is None else ("ok" if entry["ok"] else "FAILED")
    print(f"gpu-check: {name}: {state} {json.dumps({k: v for k, v in entry.items() if k not in ('name', 'ok')})}",
          flush=True)
    return entry


def _lora_b_changed(model_dir: Path) -> tuple[int, int]:
    from safetensors import safe_open

    from kaggle_kit.model.model_dir import ADAPTER_DIR

    with safe_open(str(model_dir / ADAPTER_DIR / "adapter_model.safetensors"), "pt") as f:
        tensors = [f.get_tensor(k) for k in f.keys() if "lora_B" in k]
    return sum(int(t.abs().sum() > 0) for t in tensors), len(tensors)


def _step_peak_callback(cuda: bool):
    """Records max_memory_allocated at the end of each training step (before the evaluation that may follow)."""
    import torch
    from transformers.trainer_callback import TrainerCallback

    class StepPeak(TrainerCallback):
        peak = 0

        def on_train_begin(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.reset_peak_memory_stats()

        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                self.peak = max(self.peak, torch.cuda.max_memory_allocated())

    return StepPeak()


def _train_check(data, backbone: Path, out: Path, precision: str, quantize: str | None, cuda: bool) -> dict:
    import math

    import torch

    from kaggle_kit.competition.spec import LMSYS
    from kaggle_kit.config import TrainConfig
    from kaggle_kit.training.memory_plan import train_step_bytes
    from kaggle_kit.training.train import train

    cfg = TrainConfig(backbone=str(backbone), max_len=MAX_LEN, max_steps=STEPS, eval_steps=STEPS, batch_size=BATCH,
                      eval_batch_size=BATCH, precision=precision, quantize=quantize, gradient_checkpointing=True,
                      learning_rate=1e-3, warmup=0.0, valid_rows=0, patience=10)  # every step moves LoRA
    peak = _step_peak_callback(cuda)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    result = train([data.train], out, cfg, LMSYS, callbacks=[peak])
    shape = json.loads((backbone / "config.json").read_text())
    step = train_step_bytes(shape, BATCH, MAX_LEN, precision, quantize, True,
                            cfg.lora_r, None, int(shape["num_hidden_layers"]))
    changed, total = _lora_b_changed(out)
    loss = result.metrics["holdout"]["log_loss"]
    mib = 2 ** 20
    return {"ok": changed == total > 0 and math.isfinite(loss), "lora_b_changed": f"{changed}/{total}",
            "holdout_log_loss": round(loss, 4), "trained_precision": precision, "quantize": quantize,
            "step_peak_mib": round(peak.peak / mib, 1) if cuda else None,
            "run_peak_mib": round(torch.cuda.max_memory_allocated() / mib, 1) if cuda else None,
            "plan_step_mib": round(sum(step.values()) / mib, 1), "plan_parts_mib": {k: round(v / mib, 1)
                                                                                   for k, v in step.items()},
            "batch": BATCH, "max_len": MAX_LEN}


def _predict_check(data, model_dir: Path, out: Path, expect_4bit: bool = False, precision: str = "auto") -> dict:
    import pandas as pd

    from kaggle_kit.competition.spec import LMSYS
    from kaggle_kit.config import PredictConfig
    from kaggle_kit.inference.run import predict_to_submission
    from kaggle_kit.model.model_dir import load_trained
    from kaggle_kit.submission import validate_file

    done = predict_to_submission([model_dir], data.test, out, LMSYS, PredictConfig(tta="swap", precision=precision),
                                 overwrite=True, progress=False)
    ids = pd.read_csv(data.test)["id"].astype(str).tolist()
    valid = validate_file(out, ids, LMSYS).ok
    detail = {"ok": valid and done["nonfinite_rows"] == 0, "rows": done["rows"], "valid": valid,
              "nonfinite_rows": done["nonfinite_rows"], "seconds_predict": done["seconds"], "precision": precision}
    if expect_4bit:  # no --quantize given: predict must load the model the way it was trained
        model = load_trained(model_dir).model
        kinds = {type(m).__name__ for m in model.modules()}
        detail["loaded_4bit"] = any("4bit" in k for k in kinds)
        detail["ok"] = detail["ok"] and detail["loaded_4bit"]
    return detail


def _bench_check(cuda: bool) -> dict:
    import importlib.util

    from kaggle_kit.evaluation.bench import bench_predict

    if importlib.util.find_spec("datasets") is None:  # the public notebook's path maps a `datasets` Dataset
        return {"ok": None, "skipped": "datasets is not installed (only the notebook path uses it)"}

    bench = bench_predict(rows=200, max_len=512, hidden=256, layers=4, max_tokens=8192)
    # The same model on both paths: only fp16/bf16 noise from different padding may separate them.
    return {"ok": bench.max_abs_diff < 5e-2, "device": "cuda" if cuda else "cpu", "model": bench.model,
            "notebook_tokens_per_s": round(bench.notebook.tokens_per_s),
            "ours_tokens_per_s": round(bench.ours.tokens_per_s),
            "notebook_rows_per_s": round(bench.notebook.rows_per_s, 1),
            "ours_rows_per_s": round(bench.ours.rows_per_s, 1),
            "speedup": round(bench.speedup, 2), "max_abs_prob_diff": bench.max_abs_diff}


def _packed_bench_check(cuda: bool) -> dict:
    """bench predict's three paths on a decoder: the packed one must agree with the notebook's and compute almost no
    padding (fp16 noise aside)."""
    import importlib.util

    from kaggle_kit.evaluation.bench import bench_predict

    if importlib.util.find_spec("datasets") is None:
        return {"ok": None, "skipped": "datasets is not installed (only the notebook path uses it)"}
    bench = bench_predict(rows=200, max_len=1024, hidden=256, layers=4, max_tokens=8192, arch="llama")
    if bench.packed is None:
        return {"ok": False, "error": "the packed path did not run on llama (see the note on packing)"}
    return {"ok": bench.max_abs_diff_packed < 5e-2 and bench.packed.padding_fraction < 0.01,
            "device": "cuda" if cuda else "cpu", "model": bench.model,
            **{f"{name}_rows_per_s": round(path.rows_per_s, 1) for name, path in
               (("notebook", bench.notebook), ("padded", bench.ours), ("packed", bench.packed))},
            **{f"{name}_padding": round(path.padding_fraction, 4) for name, path in
               (("notebook", bench.notebook), ("padded", bench.ours), ("packed", bench.packed))},
            "max_abs_prob_diff_packed": bench.max_abs_diff_packed}


def _timed_logits(model, pad_id: int, encoded: list, replicas=None) -> tuple:
    import torch

    from kaggle_kit.model.batching import batching_for, predict_logits

    torch.cuda.synchronize()
    start = time.perf_counter()
    logits = predict_logits(model, pad_id, encoded, 8192, 3, False, replicas, batching_for(model))
    torch.cuda.synchronize()
    return logits, time.perf_counter() - start


def _placement_check(data, work: Path, cuda: bool) -> dict:
    """The two placements of a model one GPU cannot hold, on a decoder small enough to run both: fp16 layers split
    over two GPUs vs a 4-bit replica per GPU, rows/s and agreement with the whole fp16 model on one GPU."""
    import numpy as np
    import torch

    from kaggle_kit.competition.spec import LMSYS
    from kaggle_kit.data.encode import Encoder, EncodingSpec
    from kaggle_kit.data.reading import read_train
    from kaggle_kit.metrics import softmax
    from kaggle_kit.model.backbone import Precision, load_backbone_model
    from kaggle_kit.model.split import split_model
    from kaggle_kit.model.tiny_backbone import build_tiny_backbone

    if not cuda or torch.cuda.device_count() < 2:
        return {"ok": None, "skipped": "needs two GPUs"}
    backbone = build_tiny_backbone(work / "bb-placement", arch="llama", hidden_size=1024, layers=8, heads=16)
    fp16 = Precision("fp16")
    whole, tokenizer = load_backbone_model(backbone, fp16, training=False)
    encoded = Encoder(tokenizer, EncodingSpec(1024, "decoder")).encode(read_train(data.train, LMSYS))
    pad = tokenizer.pad_token_id
    reference, whole_s = _timed_logits(whole.to("cuda:0").eval(), pad, encoded)
    del whole
    torch.cuda.empty_cache()
    on_cpu, _ = load_backbone_model(backbone, fp16, training=False)
    weights = sum(p.numel() * p.element_size() for p in on_cpu.parameters())
    split, device_map = split_model(on_cpu.eval(), {0: int(weights * 0.75), 1: int(weights * 0.75)})
    split_logits, split_s = _timed_logits(split, pad, encoded)
    del split, on_cpu
    torch.cuda.empty_cache()
    detail = {"rows": len(encoded), "model": "random llama, hidden 1024, 8 layers",
              "whole_fp16_one_gpu_rows_per_s": round(len(encoded) / whole_s, 1),
              "split_fp16_rows_per_s": round(len(encoded) / split_s, 1),
              "split_devices": sorted({str(d) for d in device_map.values()}),
              "max_abs_prob_diff_split": float(np.abs(softmax(reference) - softmax(split_logits)).max())}
    problem = _bitsandbytes_problem()
    if problem:
        detail["replica_4bit"] = f"skipped: {problem}"
    else:
        replicas = [load_backbone_model(backbone, fp16, "4bit", training=False, device=k)[0].eval() for k in (0, 1)]
        four_bit, four_s = _timed_logits(replicas[0], pad, encoded, replicas)
        detail.update(replica_4bit_rows_per_s=round(len(encoded) / four_s, 1),
                      max_abs_prob_diff_4bit=float(np.abs(softmax(reference) - softmax(four_bit)).max()))
    detail["ok"] = detail["max_abs_prob_diff_split"] < 5e-2 and len(detail["split_devices"]) == 2
    return detail


def _existing_data(folder: Path):
    from types import SimpleNamespace

    return SimpleNamespace(train=folder / "train.csv", test=folder / "test.csv")


def run_one(spec: dict) -> dict:
    """One check, in this process: what a check's own process runs (`--child SPEC`)."""
    work, cuda = Path(spec["work"]), spec["cuda"]
    data = _existing_data(work / "data")
    if spec["kind"] == "train":
        return _train_check(data, Path(spec["backbone"]), Path(spec["out"]), spec["precision"], spec["quantize"],
                            cuda)
    if spec["kind"] == "predict":
        return _predict_check(data, Path(spec["model_dir"]), Path(spec["out"]), spec.get("expect_4bit", False),
                              spec.get("precision", "auto"))
    if spec["kind"] == "bench-packed":
        return _packed_bench_check(cuda)
    if spec["kind"] == "placement":
        return _placement_check(data, work, cuda)
    return _bench_check(cuda)


def _in_child(spec: dict) -> dict:
    """Run one check in a process of its own; its last RESULT line is the check's detail."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                                       os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "kaggle_kit.evaluation.gpu_check", "--child", json.dumps(spec)],
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1][:300]
        raise RuntimeError(f"the check's process ended without a result: {tail}")
    return json.loads(lines[-1][len(RESULT):])


def run_checks(work: Path, cuda: bool = True) -> dict[str, Any]:
    """Every check in order, each in its own process; `cuda=False` runs the same plumbing on the CPU in fp32 (for
    developing this script). fp16 (T4-like) always runs on a GPU; bf16 beside it where the GPU has it."""
    import torch

    from kaggle_kit.competition.sample_data import write_sample_data
    from kaggle_kit.model.backbone import choose_precision, gpu_capability, quantize_on_cpu
    from kaggle_kit.model.tiny_backbone import build_tiny_backbone
    from kaggle_kit.quiet import quiet_libraries

    quiet_libraries()
    capability = gpu_capability() if cuda else None
    precisions = ["fp16", "bf16"] if capability and capability >= (8, 0) else ["fp16"]
    if not cuda:
        precisions = ["fp32"]
    report: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "capability": ".".join(map(str, capability)) if capability else None,
        "device_total_gib": round(torch.cuda.mem_get_info()[1] / 2 ** 30, 2) if cuda else None,
        "auto_precision": choose_precision("auto").name, "versions": _versions(), "checks": []}
    checks = report["checks"]
    write_sample_data(work / "data", rows=ROWS, test_rows=TEST_ROWS, seed=0)
    base = {"work": str(work), "cuda": cuda}
    predict_dirs: dict[str, Path] = {}
    for arch in ARCHES:
        backbone = build_tiny_backbone(work / f"bb-{arch}", arch=arch, hidden_size=SHAPE["hidden_size"],
                                       layers=SHAPE["layers"], heads=SHAPE["heads"])
        for precision in precisions:
            out = work / f"model-{arch}-{precision}"
            entry = _check(checks, f"train {arch} {precision} checkpointing", _in_child,
                           {**base, "kind": "train", "backbone": str(backbone), "out": str(out),
                            "precision": precision, "quantize": None})
            if entry.get("ok") and arch not in predict_dirs:
                predict_dirs[arch] = out
        if arch in QLORA_ARCHES:
            problem = _bitsandbytes_problem() if cuda else (
                None if quantize_on_cpu("4bit") else "no CUDA, and no CPU 4-bit backend in this bitsandbytes")
            out = work / f"model-{arch}-4bit"
            if problem:
                checks.append({"name": f"train {arch} 4-bit QLoRA", "ok": None, "skipped": problem})
                print(f"gpu-check: train {arch} 4-bit QLoRA: skipped ({problem})", flush=True)
                continue
            entry = _check(checks, f"train {arch} 4-bit QLoRA {precisions[0]}", _in_child,
                           {**base, "kind": "train", "backbone": str(backbone), "out": str(out),
                            "precision": precisions[0], "quantize": "4bit"})
            if entry.get("ok"):
                _check(checks, f"predict {arch} 4-bit (as trained) swap TTA", _in_child,
                       {**base, "kind": "predict", "model_dir": str(out), "out": str(work / f"sub-{arch}-4bit.csv"),
                        "expect_4bit": True, "precision": precisions[0]})
    for arch, model_dir in predict_dirs.items():
        for precision in precisions:  # fp16 forced (T4-like) on every GPU, then bf16 where the GPU has it
            _check(checks, f"predict {arch} {precision} swap TTA", _in_child,
                   {**base, "kind": "predict", "model_dir": str(model_dir),
                    "out": str(work / f"sub-{arch}-{precision}.csv"), "precision": precision})
    _check(checks, "bench predict: notebook path vs ours", _in_child, {**base, "kind": "bench"})
    _check(checks, "bench predict --arch llama: notebook / padded / packed", _in_child,
           {**base, "kind": "bench-packed"})
    _check(checks, "placement: fp16 split over 2 GPUs vs 4-bit replica per GPU", _in_child,
           {**base, "kind": "placement"})
    ran = [c for c in checks if c.get("ok") is not None]
    report["passed"] = bool(ran) and all(c["ok"] for c in ran)
    report["failed"] = [c["name"] for c in ran if not c["ok"]]
    report["skipped"] = [c["name"] for c in checks if c.get("ok") is None]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kaggle_kit.evaluation.gpu_check",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(".cache/gpu-check.json"), help="JSON report to write.")
    parser.add_argument("--cpu", action="store_true", help="Run the same plumbing on the CPU in fp32 (claims nothing "
                        "about a GPU; for developing this script).")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one check's spec (JSON), run in this process
    args = parser.parse_args(argv)
    if args.child:
        from kaggle_kit.quiet import quiet_libraries

        quiet_libraries()
        print(RESULT + json.dumps(run_one(json.loads(args.child)), default=str), flush=True)
        return 0
    import torch

    if not args.cpu and not torch.cuda.is_available():
        listed = driver_gpus()
        if listed:  # the driver has a GPU this torch cannot use: nothing could be checked, and that is a failure
            print(f"gpu-check: FAILED: the driver lists {len(listed)} GPU(s) ({listed[0]}) but torch "
                  f"{torch.__version__} cannot use CUDA (torch.version.cuda={torch.version.cuda}): install the torch "
                  "build that matches this driver")
            return 1
        print(NO_GPU)
        return 0
    from kaggle_kit.atomic import write_text_atomic

    with tempfile.TemporaryDirectory(prefix="kk-gpu-check-") as scratch:
        report = run_checks(Path(scratch), cuda=not args.cpu)
    report["mode"] = "cpu plumbing only (no GPU claim)" if args.cpu else "cuda"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    verdict = "passed" if report["passed"] else f"FAILED: {', '.join(report['failed']) or 'nothing ran'}"
    skipped = f"; skipped: {', '.join(report['skipped'])}" if report["skipped"] else ""
    print(f"gpu-check: {verdict}{skipped} ({report['gpu'] or 'CPU'}); report in {args.out}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
