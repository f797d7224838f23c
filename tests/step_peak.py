"""One QLoRA training step of a tiny 4-bit Llama on CPU, measured in a fresh process (ru_maxrss only rises, so the
step's peak is the rise during it): what tests/test_qlora_cpu.py compares with memory_plan's estimate.

    python tests/step_peak.py BACKBONE BATCH SEQ  ->  one JSON line"""

from __future__ import annotations

import gc
import json
import resource
import sys
from pathlib import Path

import torch

from kaggle_kit.model.backbone import Precision, load_backbone_model, lora_model


def rss_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


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
    before = rss_peak()
    model(input_ids=ids, labels=labels).loss.backward()
    optimizer.step()
    return {"frozen_bytes": frozen, "step_bytes": rss_peak() - before}


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))))
