"""Shared fixtures: sample data, tiny backbones and one trained tiny model, built once per session.

The Kaggle client reads its environment at import, so the fake-server recipe is set here, before anything imports it.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
from pathlib import Path

import pytest

_SANDBOX = Path(tempfile.mkdtemp(prefix="kk-tests-"))
for key in [k for k in os.environ if k.startswith("KAGGLE_")]:
    del os.environ[key]
os.environ.update({
    "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
    "KAGGLE_USERNAME": "tester",
    "KAGGLE_KEY": "0123456789abcdef",
    "KAGGLE_CONFIG_DIR": str(_SANDBOX / "kaggle-config"),
    "HOME": str(_SANDBOX / "home"),
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
    "KAGGLE_KIT_LEDGER": str(_SANDBOX / "runs.sqlite"),  # commands run outside a project record here, not in cwd
})
for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
    os.environ.pop(name, None)
(_SANDBOX / "home").mkdir(parents=True, exist_ok=True)

from kaggle_kit.competition.sample_data import write_sample_data  # noqa: E402
from kaggle_kit.competition.spec import LMSYS  # noqa: E402
from kaggle_kit.config import TrainConfig  # noqa: E402
from kaggle_kit.model.tiny_backbone import build_tiny_backbone  # noqa: E402

# The slow layer, in one place: a test is marked `slow` when it, a fixture it uses, or a helper of its module it calls
# trains a model, builds a tiny backbone through the CLI, or spawns processes (torchrun, run-kernel, a subprocess).
# `make test-fast` runs the rest (`-m "not slow"`); `make test` runs everything.
SLOW_FIXTURES = frozenset({"trained"})
SLOW_CALLS = re.compile("|".join([
    r"\btrain\(", r"\brun_cv\(", r"\bpseudo_label\(", r"\bbench_seeds\(",  # training and labelling functions
    r"[(\[]\s*\"(?:train|cv|quickstart|pseudo-label|tiny-backbone)\"", r"\"bench\",\s*\"seeds\"",  # CLI commands
    r"\"run-kernel\"", r"\brun_local\(", r"torchrun", r"\bstart_processes\(",  # kernels and ranks in processes
    r"\bsubprocess\.", r"\bPopen\(", r"\bsys\.executable\b",
]))
_slow_memo: dict = {}


def _does_slow_work(func) -> bool:
    """Whether `func`'s source, or a function of its own module that it names, matches SLOW_CALLS."""
    func = inspect.unwrap(func)
    if func in _slow_memo:
        return _slow_memo[func]
    _slow_memo[func] = False  # a helper that names itself (recursion) is not slow on that account
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return False
    module = sys.modules.get(func.__module__)
    helpers = [getattr(module, name, None) for name in set(re.findall(r"\b([A-Za-z_]\w*)\(", source))]
    slow = bool(SLOW_CALLS.search(source)) or any(
        inspect.isfunction(h) and h is not func and h.__module__ == func.__module__ and _does_slow_work(h)
        for h in helpers)
    _slow_memo[func] = slow
    return slow


def pytest_collection_modifyitems(config, items):
    """Mark `slow` every test that trains, spawns processes or runs a kernel, itself or through a fixture."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        fixtures = [defs[-1].func for name, defs in (info.name2fixturedefs.items() if info else []) if defs]
        if (SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or _does_slow_work(getattr(item, "function", None))
                or any(_does_slow_work(f) for f in fixtures)):
            item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session, exitstatus):
    """The sandbox is ours: leave no temp folder outside pytest's own tmp_path tree."""
    shutil.rmtree(_SANDBOX, ignore_errors=True)


@pytest.fixture(scope="session")
def spec():
    return LMSYS


@pytest.fixture(scope="session")
def sample_files(tmp_path_factory):
    return write_sample_data(tmp_path_factory.mktemp("sample"), rows=1000, seed=0)


@pytest.fixture(scope="session")
def small_files(tmp_path_factory):
    return write_sample_data(tmp_path_factory.mktemp("small"), rows=120, test_rows=24, seed=3)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory):
    return build_tiny_backbone(tmp_path_factory.mktemp("bb") / "tiny-deberta-v3")


@pytest.fixture(scope="session")
def trained(tmp_path_factory, sample_files, tiny_backbone):
    """The issue's acceptance run: default flags, only max_len 256, on sample-data --rows 1000."""
    from kaggle_kit.training.train import train

    out = tmp_path_factory.mktemp("trained") / "model"
    return train([sample_files.train], out, TrainConfig(backbone=str(tiny_backbone), max_len=256), LMSYS)


def fake_model_dir(out: Path, backbone: Path, num_labels: int = 3) -> Path:
    """A model dir's files as `train` writes them, with no weights: for tests that end at a refusal before any model
    loads (an output that cannot be written, a flag clash), so they need no training."""
    import json

    from kaggle_kit.model.backbone import model_type
    from kaggle_kit.model.model_dir import ADAPTER_DIR, FORMAT_VERSION, MODEL_FILE

    (out / ADAPTER_DIR).mkdir(parents=True)
    (out / ADAPTER_DIR / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 16}))
    info = {"format": FORMAT_VERSION, "backbone": str(backbone), "model_type": model_type(backbone),
            "num_labels": num_labels, "encoding": {"max_len": 64}, "temperature": 1.0}
    (out / MODEL_FILE).write_text(json.dumps(info))
    return out


def run_cli(*args, **kw):
    """kaggle-kit's CLI in-process, exceptions not caught (a traceback fails the test instead of passing as output)."""
    from click.testing import CliRunner

    from kaggle_kit.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kw)


def one_line_error(result, message, code=1):
    """The command failed with exit `code` and ended on one `Error...` line holding `message`, no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    last = result.output.strip().splitlines()[-1]
    assert message in last and last.startswith("Error"), result.output
    return last


def quick_config(backbone: Path, **kw) -> TrainConfig:
    base = dict(backbone=str(backbone), max_len=128, max_steps=6, eval_steps=3, batch_size=8, patience=10)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """The real kaggle client pointed at a fake server on 127.0.0.1 (env recipe of shared/docs/kaggle-api.md)."""
    from fake_kaggle import FakeKaggle

    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir(mode=0o700)
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    with FakeKaggle() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        yield server


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with a kaggle-kit.toml, as cwd."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text(
        'username = "tester"\n[datasets]\nbackbone = "tester/tiny-deberta-v3"\n'
        '[kernel]\ntrain_slug = "lmsys-train"\ninfer_slug = "lmsys-infer"\n[train]\nmax_len = 128\nmax_steps = 4\n'
        'eval_steps = 2\n')
    return tmp_path


@pytest.fixture
def silent_server(monkeypatch):
    """A proxy that accepts connections and never answers: stands in for a hung Kaggle (the real client, its own
    HTTP stack, waits forever; only our timeout ends the call)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    for key, value in {"HTTP_PROXY": base, "http_proxy": base, "NO_PROXY": "", "no_proxy": ""}.items():
        monkeypatch.setenv(key, value)
    yield
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def stop_predict_after(monkeypatch, shards: int):
    """Make predict stop (RuntimeError "stopped") after `shards` model passes, as a preempted run does; returns the
    rows of each pass made and the real predict_probs."""
    import kaggle_kit.inference.predict as predict_module

    real, calls = predict_module.predict_probs, []

    def stopping(trained, pairs, *args, **kwargs):
        if len(calls) == shards:
            raise RuntimeError("stopped")
        calls.append(len(pairs))
        return real(trained, pairs, *args, **kwargs)

    monkeypatch.setattr(predict_module, "predict_probs", stopping)
    return calls, real
