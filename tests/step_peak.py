"""One QLoRA training step of a tiny 4-bit Llama on CPU, measured in a fresh process: the peak resident memory is
reset just before the step (Linux: 5 > /proc/self/clear_refs resets VmHWM), so the step's peak is VmHWM after it less
VmRSS before it. What tests/test_qlora_cpu.py compares with memory_plan's estimate.

    python tests/step_peak.py BACKBONE BATCH SEQ  ->  one JSON line"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

import torch

from kaggle_kit.model.backbone import Precision, load_backbone_model, lora_model


def status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def main(backbone: Path, batch: int, seq: int) -> dict:
    torch.manual_seed(0)
    model, _ = load_backbone_model(backbone, Precision("fp32"), "4bit")
    model = lora_model(model, "llama", 16, 32, 0.0, False, None, "4bit", gradient_checkpointing=True)
    frozen = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids, labels = torch.randint(4, 500, (batch, seq)), torch.randint(0, 3, (batch,))
    model.train()
    model(input_ids=ids[:1, :8], labels=labels[:1]).loss.backward()  # kernels and allocator warmed, AdamW not yet
    optimizer.zero_grad(set_to_none=True)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # the peak so far (loading, imports) no longer counts
    before = status_bytes("VmRSS")
    model(input_ids=ids, labels=labels).loss.backward()
    optimizer.step()
    return {"frozen_bytes": frozen, "step_bytes": status_bytes("VmHWM") - before}


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))))
