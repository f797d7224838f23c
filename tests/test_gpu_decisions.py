"""What the CPU cannot run on a GPU, decided from faked facts: compute capability, ranks, the model dir's settings.

Each fake replaces one torch.cuda query (what the driver would report); the code deciding from it is the real one."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from kaggle_kit.backbone import choose_precision
from kaggle_kit.cli import main
from kaggle_kit.errors import KitError


def fake_gpu(monkeypatch, capability: tuple[int, int], count: int = 1, bf16_claimed: bool = True) -> None:
    """A CUDA machine as torch would describe it; T4s claim bf16 support through emulation. transformers' Trainer is
    imported first: its import probes CUDA libraries that this CPU machine does not have."""
    import transformers.trainer  # noqa: F401

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_claimed)


@pytest.mark.parametrize(("capability", "expected"), [((7, 5), "fp16"), ((6, 0), "fp16"), ((8, 0), "bf16"),
                                                      ((9, 0), "bf16")])
def test_auto_precision_follows_compute_capability(monkeypatch, capability, expected):
    fake_gpu(monkeypatch, capability)  # T4 (7.5) and P100 (6.0) report bf16 "supported": emulated, never chosen
    assert choose_precision("auto").name == expected


def test_auto_precision_is_fp32_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_precision("auto").name == "fp32"


def test_explicit_bf16_below_ampere_is_one_line(monkeypatch, tmp_path, small_files, tiny_backbone):
    fake_gpu(monkeypatch, (7, 5))
    with pytest.raises(KitError, match="compute capability 8.0.*7.5"):
        choose_precision("bf16")
    assert choose_precision("fp16").name == "fp16"
    result = CliRunner().invoke(main, ["train", "--train", str(small_files.train), "--backbone", str(tiny_backbone),
                                       "--out", str(tmp_path / "m"), "--precision", "bf16"])
    assert result.exit_code != 0 and "compute capability 8.0" in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "m").exists()
