"""One resolved, typed configuration: built-in defaults < kaggle-kit.toml < CLI flags."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 inside older Kaggle images
    import tomli as tomllib

from .errors import KitError

CONFIG_FILE = "kaggle-kit.toml"


@dataclass
class TrainConfig:
    backbone: str | None = None
    max_len: int = 1024
    epochs: float = 2.0
    max_steps: int = -1
    learning_rate: float = 1e-3
    batch_size: int = 8
    eval_batch_size: int = 16
    grad_accum: int = 1
    weight_decay: float = 0.01
    warmup: float = 0.1
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    rslora: bool = False
    target_modules: list[str] | None = None  # None: every linear layer of attention + MLP for the architecture
    quantize: str | None = None  # "4bit" | "8bit" (CUDA only)
    precision: str = "auto"  # auto | fp32 | fp16 | bf16
    gradient_checkpointing: bool = False
    valid_frac: float = 0.05
    fold: str | None = None  # "i/k"
    eval_steps: int | None = None  # None: about eight evaluations per run
    save_total_limit: int = 2
    patience: int = 4
    seed: int = 42
    swap_augment: bool = False
    report_to: str = "none"
    merge: bool = False
    calibrate: bool = True


@dataclass
class PredictConfig:
    max_tokens: int = 16384  # padded tokens per batch
    tta: str = "none"  # none | swap
    blend: str = "prob"  # prob | logprob
    quantize: str | None = None
    precision: str = "auto"


@dataclass
class DatasetsConfig:
    model: str | None = None
    backbone: str | None = None
    code: str | None = None
    wheels: str | None = None


@dataclass
class KernelConfig:
    train_slug: str = "kaggle-kit-train"
    infer_slug: str = "kaggle-kit-infer"
    accelerator: str = "NvidiaTeslaT4"
    enable_gpu: bool = True
    train_internet: bool = False
    infer_internet: bool = False
    timeout_s: int = 0  # 0: Kaggle's default session limit
    accept_other_accelerator: bool = False  # run on whatever Kaggle gives instead of failing fast


@dataclass
class ColumnMap:
    """How an extra training file with another schema maps onto the competition's columns."""

    match: str  # glob on the file name, e.g. "lmsys-33k*.csv"
    columns: dict[str, str] = field(default_factory=dict)  # competition column -> file column
    plain_text: list[str] = field(default_factory=list)  # columns holding plain strings, not JSON lists


@dataclass
class ProjectConfig:
    competition: str = "lmsys-chatbot-arena"
    username: str | None = None
    data_dir: str | None = None  # default: data/<competition>
    train: TrainConfig = field(default_factory=TrainConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    datasets: DatasetsConfig = field(default_factory=DatasetsConfig)
    kernel: KernelConfig = field(default_factory=KernelConfig)
    column_maps: dict[str, ColumnMap] = field(default_factory=dict)
    source: str | None = None  # the toml file this came from, if any

    @property
    def competition_data_dir(self) -> Path:
        return Path(self.data_dir or f"data/{self.competition}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        payload = {k: v for k, v in self.to_dict().items() if k != "source"}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


_SECTIONS = {"train": TrainConfig, "predict": PredictConfig, "datasets": DatasetsConfig, "kernel": KernelConfig}


def _check_keys(where: str, cls: type, data: dict[str, Any]) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise KitError(f"{where}: unknown key(s) {', '.join(unknown)}", hint=f"known: {', '.join(sorted(known))}")


def _build(where: str, cls: type, data: dict[str, Any]):
    _check_keys(where, cls, data)
    try:
        return cls(**data)
    except TypeError as exc:
        raise KitError(f"{where}: {exc}") from None


def config_from_dict(data: dict[str, Any], source: str | None = None) -> ProjectConfig:
    where = source or "config"
    data = dict(data)
    kwargs: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        section = data.pop(name, {})
        if not isinstance(section, dict):
            raise KitError(f"{where}: [{name}] must be a table")
        kwargs[name] = _build(f"{where} [{name}]", cls, section)
    maps = data.pop("column_maps", {})
    kwargs["column_maps"] = {name: _build(f"{where} [column_maps.{name}]", ColumnMap, m) for name, m in maps.items()}
    data.pop("source", None)
    _check_keys(where, ProjectConfig, data)
    return ProjectConfig(**data, **kwargs, source=source)


def load_config(path: Path | None = None) -> ProjectConfig:
    """Read `path`, else ./kaggle-kit.toml when present, else the built-in defaults."""
    if path is None:
        default = Path(CONFIG_FILE)
        if not default.exists():
            return ProjectConfig()
        path = default
    if not path.exists():
        raise KitError(f"config file {path} not found", hint="run `kaggle-kit init` to write one")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise KitError(f"{path}: not valid TOML ({exc})") from None
    return config_from_dict(data, source=str(path))


def with_overrides(section: Any, **overrides: Any) -> Any:
    """Apply CLI flags over a config section; a flag left at None keeps the toml/default value."""
    return dataclasses.replace(section, **{k: v for k, v in overrides.items() if v is not None})
