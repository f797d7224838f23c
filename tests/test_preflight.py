"""The preflight's compute-capability check against the torch build, with faked GPUs (there is none here)."""

from __future__ import annotations

import json

import pytest

P100 = {"name": "Tesla P100-PCIE-16GB", "memory_gib": 15.9, "capability": [6, 0]}
T4 = {"name": "Tesla T4", "memory_gib": 14.7, "capability": [7, 5]}
IMAGE_2026 = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]


def test_capability_against_the_torch_arch_list():
    from kaggle_kit.kernel.preflight import capability_problem, runs_on

    assert runs_on((7, 5), IMAGE_2026) and runs_on((8, 9), IMAGE_2026)  # L4 sm_89 runs sm_86 cubins
    assert not runs_on((6, 0), IMAGE_2026) and runs_on((6, 0), ["sm_50", "compute_50"])
    assert runs_on((6, 1), ["sm_60"]) and not runs_on((7, 0), ["sm_75"])
    assert capability_problem([T4, T4], IMAGE_2026, "2.10.0") is None
    assert capability_problem([P100], [], "2.10.0+cpu") is None  # a CPU-only torch: not this check's business
    line = capability_problem([P100], IMAGE_2026, "2.10.0+cu128")
    assert "no kernels for Tesla P100-PCIE-16GB (sm_60" in line and "NvidiaTeslaT4 or NvidiaL4" in line


def test_preflight_stops_in_one_line_on_a_gpu_the_image_cannot_run(tmp_path, monkeypatch):
    import torch

    from kaggle_kit.kernel import preflight

    class Props:
        name, total_memory = P100["name"], 16 * 2**30

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props())
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: (6, 0))
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: IMAGE_2026)
    config = {"kernel": {"enable_gpu": True, "accelerator": "NvidiaL4", "accept_other_accelerator": True}}
    with pytest.raises(preflight.PreflightError) as caught:
        preflight.preflight(config, {"lock": {}}, tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "has no kernels for Tesla P100-PCIE-16GB (sm_60" in message
    assert "stopping before any work" in message
    env = json.loads((tmp_path / preflight.ENV_FILE).read_text())
    assert env["gpus"][0]["capability"] == [6, 0] and env["problems"]
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: (7, 5))
    assert preflight.preflight(config, {"lock": {}}, tmp_path / "ok")["problems"] == []
