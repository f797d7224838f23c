"""`make test-gpu`'s multi-GPU part: what only several CUDA GPUs can show. A tiny Llama trains a few steps under
torchrun with `--fsdp full_shard` (accelerate's FSDP2) and, where deepspeed imports, `--deepspeed zero3`; then the
trained model predicts rank-sharded on every GPU and once in one process, and the two files must agree to 1e-5.
Fewer than --min-gpus visible GPUs (default 2): one line saying so, exit 0, nothing claimed.

    python -m kaggle_kit.evaluation.gpu_check_multi --out .cache/gpu-check-multi.json"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS, MAX_LEN, ROWS, TEST_ROWS = 4, 256, 240, 96
TIMEOUT_S = 420


def _run(cmd: list[str], env: dict[str, str]) -> dict:
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {TIMEOUT_S}s", "seconds": TIMEOUT_S}
    entry: dict = {"ok": proc.returncode == 0, "seconds": round(time.perf_counter() - start, 1)}
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        entry["error"] = " | ".join(lines[-3:])[-600:]
        return entry
    try:
        entry["result"] = json.loads(proc.stdout)
    except ValueError:
        entry["stdout_tail"] = proc.stdout[-400:]
    return entry


def _torchrun(gpus: int, *args: str) -> list[str]:
    from kaggle_kit.training.launch import Launch, child_command

    return child_command(Launch("ddp", gpus), "kaggle_kit.cli", list(args))


def _same_submission(a: Path, b: Path) -> dict:
    import numpy as np
    import pandas as pd

    one, many = pd.read_csv(a), pd.read_csv(b)
    diff = float(np.abs(one.drop(columns="id").to_numpy() - many.drop(columns="id").to_numpy()).max())
    return {"same_ids_in_order": list(one["id"]) == list(many["id"]), "max_abs_diff": diff,
            "ok": list(one["id"]) == list(many["id"]) and diff < 1e-5}


def run_checks(gpus: int, work: Path) -> list[dict]:
    from kaggle_kit.competition.sample_data import write_sample_data
    from kaggle_kit.model.tiny_backbone import build_tiny_backbone
    from kaggle_kit.training.launch import Launch, child_env

    env = child_env(Launch("here"), os.environ)  # this kaggle_kit importable in every child
    files = write_sample_data(work / "data", rows=ROWS, test_rows=TEST_ROWS, seed=0)
    backbone = build_tiny_backbone(work / "tiny-llama", arch="llama")
    common = ["--train", str(files.train), "--backbone", str(backbone), "--max-len", str(MAX_LEN), "--max-steps",
              str(STEPS), "--eval-steps", str(STEPS), "--json"]
    checks = []
    engines = [("fsdp full_shard", ["--fsdp", "full_shard"]), ("fsdp shard_grad_op", ["--fsdp", "shard_grad_op"])]
    if importlib.util.find_spec("deepspeed") is not None:
        engines.append(("deepspeed zero3", ["--deepspeed", "zero3"]))
    else:
        checks.append({"name": "train deepspeed zero3", "ok": None,
                       "skipped": "deepspeed is not installed (pip install 'kaggle-kit[deepspeed]')"})
    trained = None
    for name, flags in engines:
        out = work / name.replace(" ", "-")
        entry = {"name": f"train {name} on {gpus} GPU(s)", **_run(_torchrun(gpus, *common, "--out", str(out),
                                                                              *flags), env)}
        if entry["ok"] and "result" in entry:
            entry["world_size"] = entry["result"].get("world_size")
            entry["holdout_log_loss"] = (entry["result"].get("holdout") or {}).get("log_loss")
            entry.pop("result")
            trained = trained or out
        checks.append(entry)
    if trained is None:
        return checks
    predict = ["predict", "--test", str(files.test), "--model", str(trained), "--tta", "swap", "--json"]
    sharded = _run(_torchrun(gpus, *predict, "--shard-rows", "16", "--out", str(work / "sharded.csv")), env)
    single = _run([sys.executable, "-m", "kaggle_kit.cli", *predict, "--out", str(work / "one.csv")], env)
    entry = {"name": f"predict rank-sharded on {gpus} GPU(s) vs one process", "ok": sharded["ok"] and single["ok"]}
    if entry["ok"]:
        entry.update(_same_submission(work / "one.csv", work / "sharded.csv"),
                     ranks=sharded.get("result", {}).get("ranks"))
    else:
        entry["error"] = sharded.get("error") or single.get("error")
    checks.append(entry)
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".cache/gpu-check-multi.json"))
    parser.add_argument("--min-gpus", type=int, default=2, help="Run only with at least this many visible GPUs.")
    args = parser.parse_args(argv)
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus < args.min_gpus:
        print(f"gpu-check-multi: {gpus} CUDA GPU(s) visible; FSDP / ZeRO-3 and rank-sharded predict need "
              f"{args.min_gpus} or more: skipped, nothing was checked")
        return 0
    with tempfile.TemporaryDirectory(prefix="kk-gpu-multi-") as tmp:
        checks = run_checks(gpus, Path(tmp))
    report = {"gpus": gpus, "device": torch.cuda.get_device_name(0), "checks": checks,
              "ok": all(c["ok"] is not False for c in checks)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for c in checks:
        state = "skipped" if c["ok"] is None else "ok" if c["ok"] else "FAILED"
        print(f"{c['name']}: {state}" + (f" ({c.get('error') or c.get('skipped')})" if c["ok"] is not True else ""))
    print(f"report: {args.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
