"""What the CPU cannot run on a GPU, decided from faked facts: compute capability, ranks, the model dir's settings.

Each fake replaces one torch.cuda query (what the driver would report); the code deciding from it is the real one."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from kaggle_kit.cli import main
from kaggle_kit.errors import KitError
from kaggle_kit.model.backbone import choose_precision


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


def test_4bit_loads_onto_this_ranks_gpu(monkeypatch):
    from kaggle_kit.model.backbone import rank_device

    assert rank_device({"LOCAL_RANK": "1"}) == "cpu"  # this CPU machine, before CUDA is faked
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)  # no rank has called set_device yet
    assert rank_device({"LOCAL_RANK": "1", "WORLD_SIZE": "2"}) == 1
    assert rank_device({"LOCAL_RANK": "0", "WORLD_SIZE": "2"}) == 0
    assert rank_device({}) == 0


def test_kernel_runs_a_recipes_4bit_as_one_rank_per_gpu(tmp_path):
    """gemma2-9b-qlora on T4 x2: 4-bit, and still two DDP ranks (each loads on its LOCAL_RANK), never one process
    driving both GPUs."""
    from kaggle_kit.config import config_from_dict
    from kaggle_kit.config.layers import Layer, resolve
    from kaggle_kit.training.launch import launch_decision

    cfg = config_from_dict({"train": {"recipe": "gemma2-9b-qlora", "max_steps": 4}})
    resolved = resolve([Layer("kaggle-kit.toml", {"train": {"recipe": "gemma2-9b-qlora", "max_steps": 4}})],
                       gpus="t4x2").train
    assert cfg.train.quantize is None and resolved.quantize == "4bit"
    assert launch_decision(2, {}).mode == "ddp" and launch_decision(2, {}).nproc == 2
    assert launch_decision(2, {"LOCAL_RANK": "0"}).mode == "here"  # already a torchrun worker
    assert launch_decision(1, {}).mode == "here" and launch_decision(0, {}).mode == "here"
    one = launch_decision(2, {"KAGGLE_KIT_NPROC": "1"})  # a run that must stay on one GPU: a child that sees one
    assert one.mode == "one_gpu" and "one GPU of 2" in one.note
    assert launch_decision(2, {"KAGGLE_KIT_NPROC": "4"}).nproc == 2  # never two ranks on one GPU
    assert launch_decision(0, {"KAGGLE_KIT_NPROC": "2"}).nproc == 2  # two CPU ranks (gloo), as tests run them


def test_a_one_gpu_child_sees_one_gpu_from_its_start():
    """CUDA_VISIBLE_DEVICES is set in the child's environment, so it holds before that process initialises CUDA."""
    from kaggle_kit.training.launch import Launch, child_command, child_env

    env = child_env(Launch("one_gpu"), {"CUDA_VISIBLE_DEVICES": "3,5", "PATH": "/bin"})
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and env["KAGGLE_KIT_NPROC"] == "1" and env["PATH"] == "/bin"
    assert child_env(Launch("one_gpu"), {})["CUDA_VISIBLE_DEVICES"] == "0"
    assert "CUDA_VISIBLE_DEVICES" not in child_env(Launch("ddp", 2), {})
    ddp = child_command(Launch("ddp", 2), "kaggle_kit.cli", ["train", "--quantize", "4bit"])
    assert ddp[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
    assert ddp[6:] == ["kaggle_kit.cli", "train", "--quantize", "4bit"]


def test_predict_quantises_as_the_model_was_trained(monkeypatch):
    from kaggle_kit.model import backbone
    from kaggle_kit.model.model_dir import inference_quantize

    info = {"train_config": {"quantize": "4bit"}}
    assert inference_quantize(None, info, cuda=True) == "4bit"  # not a 9B model in fp32 on the host
    assert inference_quantize("none", info, cuda=True) is None
    assert inference_quantize("8bit", {"train_config": {"quantize": None}}, cuda=True) == "8bit"
    assert inference_quantize(None, {}, cuda=True) is None  # format-1 model dirs record no train config
    assert inference_quantize(None, {"train_config": {"quantize": "8bit"}}, cuda=False) is None  # 8-bit: CUDA only
    monkeypatch.setattr(backbone, "bitsandbytes_version", lambda: (0, 50, 2))  # CPU backend: as trained, 4-bit
    assert inference_quantize(None, info, cuda=False) == "4bit"
    monkeypatch.setattr(backbone, "bitsandbytes_version", lambda: (0, 45, 5))  # no CPU backend: full precision
    assert inference_quantize(None, info, cuda=False) is None


def test_gpu_replicas_load_on_their_own_device(monkeypatch):
    from kaggle_kit.inference.predict import gpu_replicas

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    first = torch.nn.Linear(2, 2)
    devices: list[str] = []

    def load(device: str) -> torch.nn.Module:
        devices.append(device)
        return torch.nn.Linear(2, 2)

    replicas = gpu_replicas(first, load)
    assert replicas[0] is first and len(replicas) == 3 and devices == ["cuda:1", "cuda:2"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert gpu_replicas(first, load) is None


def test_gpu_check_without_cuda_claims_nothing(tmp_path):
    """`make test-gpu` on a machine without CUDA: one line saying so, exit 0, no report, no 'passed'."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-m", "kaggle_kit.evaluation.gpu_check", "--out", str(tmp_path / "r.json")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "gpu-check: no CUDA GPU found; nothing was checked (run `make test-gpu` on a " \
                                  "machine with one)"
    assert "pass" not in done.stdout.lower() and not (tmp_path / "r.json").exists()


def test_old_bitsandbytes_on_cuda_says_it_ignores_the_compute_dtype(monkeypatch, caplog):
    """bitsandbytes 0.45's Linear4bit computes from fp32 inputs whatever bnb_4bit_compute_dtype says (0.46.1 casts):
    on a GPU it still runs, with one warning line. The version and CUDA are faked; the config is the real one."""
    from kaggle_kit.model import backbone

    fake_gpu(monkeypatch, (7, 5))
    monkeypatch.setattr(backbone, "bitsandbytes_version", lambda: (0, 45, 5))
    with caplog.at_level("WARNING"):
        config = backbone.quantization_config("4bit", torch.float16)
    assert config.bnb_4bit_compute_dtype == torch.float16
    assert "bitsandbytes 0.45.5 ignores bnb_4bit_compute_dtype" in caplog.text and "casts to float16" in caplog.text
    caplog.clear()
    monkeypatch.setattr(backbone, "bitsandbytes_version", lambda: (0, 50, 2))
    backbone.quantization_config("4bit", torch.float16)
    assert "ignores" not in caplog.text
