"""The project configuration: its sections (train, predict, datasets, kernel, column maps), read from kaggle-kit.toml
and checked field by field (config/checks.py); CLI flags are generated from the same declarations (cli/options.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - Python 3.10 inside older Kaggle images
    pass

from kaggle_kit.competition.spec import CompetitionSpec, get_spec, project_spec
from kaggle_kit.config.checks import build_section, check_keys, check_section, setting
from kaggle_kit.config.durations import duration_problem
from kaggle_kit.config.kaggle_models import handle_problem, license_problem
from kaggle_kit.errors import KitError, UsageProblem

CONFIG_FILE = "kaggle-kit.toml"
REF_RE = re.compile(r"^[A-Za-z0-9_-]+/[A-Za-z0-9_.-]+$")
FOLD_RE = re.compile(r"^\d+/\d+$")
# Kaggle's machine shapes for kernel-metadata.json, from the client's list (kaggle-cli docs/kernels.md, "Accelerators
# available as of Sep 2026"; some only for certain competitions or admins). NvidiaL4X1 is one L4; the docs give no
# GPU count for NvidiaL4. NvidiaTeslaT4Highmem is listed as "GPU T4 x2".
ACCELERATORS = ("NvidiaTeslaT4", "NvidiaTeslaT4Highmem", "NvidiaL4", "NvidiaL4X1", "NvidiaH100", "NvidiaRtxPro6000",
                "NvidiaTeslaA100", "TpuV5E8", "TpuV6E8", "None")
# Still accepted by Kaggle but substituted (kaggle 2.2.5 `_RETIRED_ACCELERATORS`): P100 cannot run today's image.
RETIRED_ACCELERATORS = {
    "NvidiaTeslaP100": "P100 cannot run today's Kaggle image (its torch has no sm_60 kernels): use NvidiaTeslaT4 "
                       "(T4 x2) or NvidiaL4",
    "TpuV38": "TPU v3-8 is retired: use TpuV5E8",
    "Tpu1VmV38": "TPU v3-8 is retired (sessions run on TpuV5E8 instead): use TpuV5E8",
    "TpuV232": "TPU v2-32 is retired (sessions run on CPU instead): use TpuV5E8",
    "TpuV2256": "TPU v2-256 is retired (sessions run on CPU instead): use TpuV5E8",
}
IMAGE_PINNING = ("original", "latest")


def _fold_problem(value: str) -> str | None:
    if not FOLD_RE.match(value):
        return "must be of the form i/k, e.g. 0/5"
    i, k = (int(x) for x in value.split("/"))
    return None if k >= 2 and 0 <= i < k else "needs k >= 2 and 0 <= i < k"


def _max_steps_problem(value: int) -> str | None:
    return "must be -1 (use --epochs) or at least 1" if value == 0 else None


def _deepspeed_problem(value: str) -> str | None:  # training/sharding.py builds what these values name
    return None if value in ("zero2", "zero3") or value.endswith(".json") else "must be zero2, zero3 or a .json file"


def _recipe_problem(value: str) -> str | None:
    from kaggle_kit.config.recipes import RECIPES, is_recipe_file

    if value in RECIPES or is_recipe_file(value):
        return None
    return f"is not a recipe (known: {', '.join(RECIPES)}; or a recipe file path/to/file.toml)"


@dataclass
class TrainConfig:
    backbone: str | None = setting(None, "Local backbone folder (or /kaggle/input/<slug> in a kernel).", group="model")
    recipe: str | None = setting(None, "A recipe (`kaggle-kit recipes`) or a recipe file path/to/file.toml; "
                                 "kaggle-kit.toml, --set and flags override it. Default: the backbone family's.",
                                 check=_recipe_problem, group="model")
    max_len: int = setting(1024, "Tokens per row (prompt + both responses), lowered to the backbone's limit.",
                           min=16, max=131072, group="data")
    epochs: float = setting(2.0, "Training epochs (fractions allowed).", min=0.01, max=1000, group="optimisation")
    max_steps: int = setting(-1, "Stop after this many optimizer steps (-1: run --epochs).", min=-1,
                             check=_max_steps_problem, group="optimisation")
    learning_rate: float = setting(1e-3, "Peak learning rate (cosine schedule after warmup).", min=1e-8, max=1.0,
                                   flag="--lr", group="optimisation")
    batch_size: int = setting(8, "Rows per device per step.", min=1, max=4096, group="optimisation")
    eval_batch_size: int = setting(16, "Rows per device per evaluation step.", min=1, max=4096, group="optimisation")
    grad_accum: int = setting(1, "Gradient accumulation steps.", min=1, max=4096, group="optimisation")
    weight_decay: float = setting(0.01, "AdamW weight decay.", min=0.0, max=1.0, group="optimisation")
    warmup: float = setting(0.1, "Warmup: a ratio of the run if < 1, else a number of steps.", min=0.0, max=1e6,
                            group="optimisation")
    lora_r: int = setting(16, "LoRA rank (at most the backbone's hidden size).", min=1, max=4096, group="model")
    lora_alpha: int = setting(32, "LoRA alpha (scale = alpha / r).", min=1, max=65536, group="model")
    lora_dropout: float = setting(0.05, "Dropout on the LoRA path.", min=0.0, max=0.9, group="model")
    rslora: bool = setting(False, "Rank-stabilised LoRA scaling (alpha / sqrt(r)).", group="model")
    target_modules: list[str] | None = setting(
        None, "Comma-separated module names for LoRA (default: every attention + MLP linear layer).", group="model")
    quantize: str | None = setting(None, "QLoRA via bitsandbytes (CUDA only).", choices=("4bit", "8bit"), group="model")
    precision: str = setting("auto", "auto: bf16 on Ampere+, fp16 on T4/P100, fp32 on CPU.",
                             choices=("auto", "fp32", "fp16", "bf16"), group="model")
    gradient_checkpointing: bool = setting(False, "Trade compute for activation memory.", group="model")
    freeze_layers: int = setting(0, "No LoRA on the first N transformer layers (they stay frozen).", min=0,
                                 max=1000, group="model")
    length_header: bool = setting(False, "Prefix each field with its full length and structure (words, lines, "
                                  "lists, headers, code), so truncation does not hide it.", group="data")
    length_head: bool = setting(False, "Fit a small side head on the holdout: the model's logits beside each "
                                "response's full length and structure; kept only if it beats temperature scaling "
                                "in cross-validation on the holdout.", group="validation")
    valid_frac: float = setting(0.05, "Holdout fraction (stratified).", min=0.001, max=0.9, group="validation")
    valid_rows: int = setting(500, "Holdout at least this many rows (at most a quarter of the data).", min=0,
                              max=10_000_000, group="validation")
    fold: str | None = setting(None, "Train on k-1 folds and evaluate on fold i: 'i/k'.", check=_fold_problem,
                               group="validation")
    eval_steps: int | None = setting(None, "Evaluate (and checkpoint) every N steps (default: ~8 per run).", min=1,
                                     group="validation")
    save_total_limit: int = setting(2, "Checkpoints kept besides the best.", min=1, max=1000, cli=False,
                                    group="validation")
    patience: int = setting(4, "Early stopping: evaluations without improvement.", min=1, max=1000, group="validation")
    seed: int = setting(42, "Random seed (split, init, order).", min=0, max=2**32 - 1, group="run")
    swap_augment: bool = setting(False, "Also train on A/B-swapped rows.", group="data")
    full_swap: bool = setting(False, "Train each row with its A/B swap in the same batch (2 x --batch-size rows).",
                              group="data")
    truncate: str = setting("head-tail", "Which tokens of a too-long field are kept: both ends, the end (left cut) "
                            "or the start (right cut).", choices=("head-tail", "left", "right"), group="data")
    prompt_budget: int | None = setting(None, "Tokens at most for the prompt; the responses share the rest, the longer "
                                        "one trimmed first.", min=1, group="data")
    distill_weight: float = setting(0.0, "Weight W of the KL term to the teacher: (1-W) CE(label) + W T^2 KL.",
                                    min=0.0, max=1.0, group="distillation")
    distill_temperature: float = setting(1.0, "Temperature T of the distillation term.", min=0.05, max=100.0,
                                         group="distillation")
    teacher: str | None = setting(None, "Teacher probabilities keyed by id (e.g. a cv oof.csv); rows it lacks use "
                                  "their own targets.", group="distillation")
    report_to: str = setting("none", "Experiment tracker.", choices=("none", "wandb", "tensorboard"), cli=False,
                             group="run")
    time_budget: str | int | None = setting(
        None, "Stop at a step boundary in time to evaluate and write the model dir within this time (90s, 45m, "
        "10h or seconds, counted from start-up; train kernels default to a safe share of Kaggle's 12 h session); "
        "resume the rest with --resume.", check=duration_problem, group="run")
    merge: bool = setting(False, "Also write a merged full model (faster to load).", group="model")
    calibrate: bool = setting(True, "Fit a temperature on the holdout.", cli=False, group="validation")
    fsdp: str | None = setting(None, "Shard the model over the GPUs with FSDP through the Trainer (under torchrun, "
                               "CUDA only): full_shard (parameters, gradients, optimizer; like ZeRO-3) or "
                               "shard_grad_op (gradients and optimizer; like ZeRO-2).",
                               choices=("full_shard", "shard_grad_op"), group="run")
    deepspeed: str | None = setting(None, "Train through DeepSpeed (CUDA only; pip install 'kaggle-kit[deepspeed]'): "
                                    "zero2, zero3 or a DeepSpeed JSON config.", check=_deepspeed_problem, group="run")


def _blend_problem(value: str) -> str | None:
    return None if value in ("prob", "logprob") or value.endswith(".json") else "must be prob, logprob or a .json file"


@dataclass
class PredictConfig:
    max_tokens: int = setting(16384, "Padded tokens per batch (lower it on CUDA out-of-memory).", min=16,
                              max=10_000_000)
    tta: str = setting("none", "Test-time augmentation: swap averages A/B and B/A.", choices=("none", "swap"))
    blend: str = setting("prob", "How models are averaged: probabilities, log-probabilities, or a blend.json "
                         "written by `kaggle-kit blend` (fitted weights, temperature, rules).", check=_blend_problem)
    rules: bool = setting(False, "Post-process: an empty response loses, identical responses tie (with a blend.json: "
                          "only the rules it kept).")
    quantize: str | None = setting(None, "Load the backbone in 4/8-bit (CUDA only; default: as it was trained, on "
                                   "CUDA; none: full precision).", choices=("4bit", "8bit", "none"))
    precision: str = setting("auto", "auto: bf16 on Ampere+, fp16 on T4/P100, fp32 on CPU.",
                             choices=("auto", "fp32", "fp16", "bf16"))
    time_budget: str | int | None = setting(
        None, "Finish within this time (90s, 45m, 8h30m or seconds, counted from start-up): every row first, then "
        "--tta / further models while they fit.", check=duration_problem)
    batching: str = setting("auto", "How rows become forward passes: packed (decoders: rows back to back, no padding "
                            "computed), padded (each batch padded to its longest row), or auto (packed where the "
                            "backbone supports it, padded otherwise, said once).", choices=("auto", "packed", "padded"))
    placement: str = setting("auto", "Several GPUs: a model replica per GPU, or the fp16 layers split over them "
                             "(accelerate's device map); auto splits where one GPU cannot hold the fp16 model and the "
                             "split fits (`plan infer --backbone-config` shows both).",
                             choices=("auto", "replica", "split"))
    shard_rows: int = setting(1000, "Rows per shard file in OUT.parts/ (what a stopped run loses at most; a rerun "
                              "keeps finished shards). Under torchrun the ranks share the shards.", min=1,
                              max=10_000_000)


def _ref_problem(value: str) -> str | None:
    return None if REF_RE.match(value) else "must be owner/slug"


MODEL_HANDLE_RE = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+){3}/[1-9][0-9]*$")  # kernel metadata needs the version


def _source_problem(value: str) -> str | None:
    """A dataset (owner/slug) or a Kaggle Model (owner/model/framework/variation/version: kernel-metadata's
    model_sources need the version); kernel/inputs.py reads both the same way inside the kernel."""
    if REF_RE.match(value) or MODEL_HANDLE_RE.match(value):
        return None
    if MODEL_HANDLE_RE.match(f"{value}/1"):
        return f"is a Kaggle Model without its version: give {value}/<version> (the model page lists them)"
    return "must be a dataset owner/slug or a Kaggle Model owner/model/framework/variation/version"


def _location_problem(value: str) -> str | None:
    """SOURCE:PATH, a file inside a dataset, a Kaggle Model or a kernel's output (kernel:owner/slug:PATH)."""
    prefix = "kernel:" if value.startswith("kernel:") else ""
    ref, _, path = value[len(prefix):].partition(":")
    if not path.strip("/"):
        return "must be SOURCE:PATH, e.g. owner/dataset:file.csv or kernel:owner/kernel:oof.csv"
    return _ref_problem(ref) if prefix else _source_problem(ref)


def _locations_problem(values: list[str]) -> str | None:
    return next((f"{v!r} {p}" for v in values if (p := _location_problem(v))), None)


def _infer_internet_problem(value: bool) -> str | None:
    return "must be false: code competitions score infer kernels with the internet off" if value else None


def accelerator_problem(value: str) -> str | None:
    if value in RETIRED_ACCELERATORS:
        return RETIRED_ACCELERATORS[value]
    return None if value in ACCELERATORS else f"is not a Kaggle accelerator (known: {', '.join(ACCELERATORS)})"


def kernel_accelerator_problem(accelerator: str, enable_gpu: bool) -> str | None:
    """Whether a kaggle-kit kernel can run on an accepted machine shape, decided at build time (not in the kernel's
    preflight): a GPU shape with enable_gpu, or "None" (the CPU) without; kaggle-kit has no TPU code path."""
    if accelerator.startswith("Tpu"):
        return (f"accelerator {accelerator} is a TPU: kaggle-kit kernels run on a GPU (e.g. NvidiaTeslaT4) or the CPU "
                "(accelerator = \"None\", enable_gpu = false)")
    if accelerator == "None":
        return None if not enable_gpu else ('accelerator "None" is the CPU but enable_gpu = true: name a GPU '
                                            '(e.g. NvidiaTeslaT4), or set enable_gpu = false for a CPU kernel')
    if not accelerator.startswith("Nvidia"):
        return f"accelerator {accelerator} is neither a GPU (Nvidia...) nor the CPU (\"None\")"
    return None if enable_gpu else (f"enable_gpu = false with the GPU accelerator {accelerator}: set enable_gpu = "
                                    'true, or accelerator = "None" for a CPU kernel')


@dataclass
class DatasetsConfig:
    model: str | None = setting(None, "Trained model dir: a dataset owner/slug or a Kaggle Model "
                                "owner/model/framework/variation/version.", check=_source_problem)
    backbone: str | None = setting(None, "Backbone weights: a dataset owner/slug or a Kaggle Model "
                                   "owner/model/framework/variation/version.", check=_source_problem)
    code: str | None = setting(None, "Dataset holding the kaggle-kit wheel (owner/slug).", check=_ref_problem)
    wheels: str | None = setting(None, "Dataset of offline wheels for internet-off kernels.", check=_ref_problem)
    extra_train: list[str] = setting([], "Train kernel: more training files (extra data, pseudo-label files), each "
                                     "SOURCE:PATH (e.g. owner/lmsys-33k:lmsys-33k.csv); mounted and passed to train "
                                     "like --train.", check=_locations_problem)
    teacher: str | None = setting(None, "Train kernel: teacher probabilities (an oof.csv) as SOURCE:PATH, e.g. "
                                  "kernel:owner/cv-kernel:oof.csv; mounted and passed to train like --teacher.",
                                  check=_location_problem)


def _slug_problem(value: str) -> str | None:
    return None if re.match(r"^[a-z0-9][a-z0-9-]{4,49}$", value) else "must be 5-50 of a-z, 0-9 and '-'"


@dataclass
class KernelConfig:
    train_slug: str = setting("kaggle-kit-train", "Slug of the train kernel.", check=_slug_problem)
    infer_slug: str = setting("kaggle-kit-infer", "Slug of the infer kernel.", check=_slug_problem)
    accelerator: str = setting("NvidiaTeslaT4", "Kaggle machine shape (NvidiaTeslaT4 is T4 x2, NvidiaL4 one L4).",
                               check=accelerator_problem)
    enable_gpu: bool = setting(True, "Ask Kaggle for a GPU.")
    train_internet: bool = setting(False, "Internet in the train kernel.")
    infer_internet: bool = setting(False, "Internet in the infer kernel: always off (code competitions score with it "
                                   "off).", check=_infer_internet_problem)
    image_pinning: str = setting("original", "Kernel image: stay on the one it was first run with (original) or "
                                 "follow Kaggle's upgrades (latest).", choices=IMAGE_PINNING)
    max_gpu_sessions: int = setting(2, "GPU kernels running at once (Kaggle allows 2 per account).", min=1, max=16)
    timeout_s: int = setting(0, "Kernel session limit in seconds (0: Kaggle's default).", min=0, max=12 * 3600)
    resume_from: str | None = setting(None, "Train kernel: continue the run in this kernel's output (owner/slug) from "
                                      "its last checkpoint, refusing changed settings as --resume does.",
                                      check=_ref_problem, cli=False)
    accept_other_accelerator: bool = setting(False, "Run on whatever accelerator Kaggle gives instead of failing fast.")


@dataclass
class ModelsConfig:
    """`upload model DIR --kaggle-model`: where a model dir is published as a Kaggle Model, and how."""

    handle: str | None = setting(None, "Kaggle Model variation to publish to: owner/model/framework/variation "
                                 "(framework: transformers, pyTorch, other, ...); each upload is its next version.",
                                 check=handle_problem, flag="--kaggle-model")
    license: str | None = setting(None, "Licence of the published model, one of Kaggle's model licences (e.g. "
                                  "'Apache 2.0'); no default: it must agree with the backbone's.",
                                  check=license_problem)
    public: bool = setting(False, "Create the model public (default private); an existing model keeps its setting.")
    title: str | None = setting(None, "Model title on Kaggle (default: the model slug, words capitalised).")
    wait: bool = setting(True, "Wait until Kaggle has processed the new version and lists every file sent.")
    poll_interval: float = setting(10.0, "Seconds between checks while waiting.", min=0.05, max=600.0)
    wait_timeout: float = setting(3600.0, "Give up waiting after this many seconds.", min=1.0, max=86400.0)


@dataclass
class ColumnMap:
    """How an extra training file with another schema maps onto the competition's columns."""

    match: str  # glob on the file name, e.g. "lmsys-33k*.csv"
    columns: dict[str, str] = setting({}, "Competition column -> file column.")
    plain_text: list[str] = setting([], "Columns holding plain strings, not JSON lists.")


def username_problem(value: str) -> str | None:
    if value == "your-kaggle-username":
        return "is still the placeholder written by `kaggle-kit init`"
    return None if re.match(r"^[A-Za-z0-9_-]+$", value) else "must be a Kaggle username"


@dataclass
class ProjectConfig:
    competition: str = setting("lmsys-chatbot-arena", "Competition slug (`kaggle-kit competitions`), or a "
                               "[competition] table describing another arena-shaped competition.")
    username: str | None = setting(None, "Kaggle username (default: from the kaggle client's credentials).",
                                   check=username_problem)
    data_dir: str | None = setting(None, "Competition data folder (default: data/<competition>).")
    train: TrainConfig = field(default_factory=TrainConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    datasets: DatasetsConfig = field(default_factory=DatasetsConfig)
    kernel: KernelConfig = field(default_factory=KernelConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    column_maps: dict[str, ColumnMap] = field(default_factory=dict)
    competition_table: dict | None = None  # a [competition] table (checked when read), else a shipped spec
    source: str | None = None  # the toml file this came from, if any
    # Where each key came from ("train.learning_rate" -> "default", "recipe NAME", "kaggle-kit.toml", "--set",
    # "flag"; config/layers.py); a key missing here is a default.
    sources: dict[str, str] = field(default_factory=dict)
    # The recipe layer of a resolved config: name, whether the backbone family chose it, what it applied.
    recipe_note: dict | None = None

    @property
    def competition_data_dir(self) -> Path:
        return Path(self.data_dir or f"data/{self.competition}")

    @property
    def spec(self) -> CompetitionSpec:
        if self.competition_table is not None:
            return project_spec(self.competition_table, f"{self.source or 'config'} [competition]")
        return get_spec(self.competition)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("sources", "recipe_note")}

    def source_of(self, key: str) -> str:
        """Where `key` ("train.learning_rate", "username") came from."""
        return self.sources.get(key, "default")

    def digest(self) -> str:
        payload = {k: v for k, v in self.to_dict().items() if k != "source"}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


SECTIONS = {"train": TrainConfig, "predict": PredictConfig, "datasets": DatasetsConfig, "kernel": KernelConfig,
            "models": ModelsConfig}


TOP_KEYS = ("competition", "username", "data_dir")  # the keys outside any section


def config_from_dict(data: dict[str, Any], source: str | None = None,
                     sources: dict[str, str] | None = None) -> ProjectConfig:
    """One dict of tables as a typed, checked config (no recipe applied: config/layers.py layers those).

    `sources`: where each key came from ("train.lora_r" -> layer), naming that layer in an error; by default every
    key present came from `source`."""
    where = source or "config"
    data = dict(data)
    data.pop("recipe_file", None)  # a kernel's embedded copy of a recipe file (config/layers.py reads it)
    embedded = data.pop("sources", None)
    sources = dict(sources if sources is not None else embedded if embedded is not None else key_sources(data, where))
    kwargs: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        kwargs[name] = build_section(f"{where} [{name}]", cls, data.pop(name, {}),
                                     label=lambda key, name=name: key_label(sources, f"{name}.{key}", where))
    maps = data.pop("column_maps", {})
    if not isinstance(maps, dict):
        raise KitError(f"{where} [column_maps] must be a table of tables")
    kwargs["column_maps"] = {name: build_section(f"{where} [column_maps.{name}]", ColumnMap, m)
                             for name, m in maps.items()}
    data.pop("source", None)
    if isinstance(data.get("competition"), dict):  # a [competition] table: checked now, one line per problem
        data["competition_table"] = data["competition"]
    if data.get("competition_table") is not None:
        data["competition"] = project_spec(data["competition_table"], f"{where} [competition]").slug
    check_keys(where, ProjectConfig, data)
    config = ProjectConfig(**data, **kwargs, source=source, sources=sources)
    return check_section(config, lambda key: key_label(sources, key, where))


def key_sources(data: dict[str, Any], source: str) -> dict[str, str]:
    """Every key a dict of tables sets ("train.lora_r", "username"), all from `source`."""
    keys = [f"{name}.{key}" for name in SECTIONS if isinstance(data.get(name), dict) for key in data[name]]
    return dict.fromkeys([*keys, *(k for k in TOP_KEYS if k in data)], source)


def key_label(sources: dict[str, str], key: str, where: str) -> tuple[str, type[KitError]]:
    """How an error names `key`: by the layer it came from ("--set train.lora_r", "kaggle-kit.toml [train] lora_r");
    a bad value given on the command line is a usage error (exit 2)."""
    source = sources.get(key, where)
    section, _, name = key.rpartition(".")
    if source in ("--set", "flag"):
        return f"{'--set ' if source == '--set' else 'flag '}{key}", UsageProblem
    return (f"{source} [{section}] {name}" if section else f"{source} {name}"), KitError


def with_overrides(section: Any, **overrides: Any) -> Any:
    """Apply CLI flags over a config section; a flag left at None keeps the toml/default value. Checked again."""
    known = {f.name for f in fields(section)}
    unknown = sorted(set(overrides) - known)
    if unknown:  # a programming error (a flag without a field), but never a traceback for the user
        raise UsageProblem(f"unknown setting(s) {', '.join(unknown)}")
    changed = dataclasses.replace(section, **{k: v for k, v in overrides.items() if v is not None})
    return check_section(changed, "setting")


# ---- Kaggle references (owner/slug), checked before anything is built or sent
SLUG_LENGTHS: dict[str, tuple[int, int | None]] = {"dataset": (6, 50), "kernel": (5, None)}  # as the client checks


def check_ref(ref: str, what: str) -> str:
    """Refuse anything but owner/slug (with the slug length rule for a 'dataset' or 'kernel'); return the slug."""
    if not isinstance(ref, str) or not REF_RE.match(ref):
        raise UsageProblem(f"{what} '{ref}' must be owner/slug", hint="letters, digits, '-', '_' and '.'")
    slug = ref.split("/")[1]
    low, high = SLUG_LENGTHS.get(what, (1, None))
    if len(slug) < low or (high is not None and len(slug) > high):
        size = "too short" if len(slug) < low else "too long"
        rule = f"{low}-{high} characters" if high else f"at least {low} characters"
        raise UsageProblem(f"{what} slug '{slug}' is {size}: it must be {rule}")
    return slug
