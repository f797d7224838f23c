"""The trained model folder: what `train` writes, what `predict`/`report`/kernels read, and which files are ours.

    MODEL_DIR/kaggle_kit_model.json   format, backbone (resolved path), encoding, temperature or side head, train config
    MODEL_DIR/adapter/                LoRA weights + trained head (peft)
    MODEL_DIR/tokenizer/              the tokenizer used at training time
    MODEL_DIR/merged/                 optional: backbone with the adapter merged in
    MODEL_DIR/checkpoints/            Trainer checkpoints (resume), run_config.json (the settings they belong to)
    MODEL_DIR/metrics.json, holdout_predictions.csv, training_curves.png, report/
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kaggle_kit.atomic import write_text_atomic
from kaggle_kit.compat import dtype_kwarg
from kaggle_kit.errors import KitError, UsageProblem
from kaggle_kit.metrics import softmax
from kaggle_kit.model.backbone import (
    Precision,
    attention_for,
    choose_precision,
    load_backbone_model,
    load_tokenizer,
    model_type,
    no_kv_cache,
    quantization_config,
    quantize_on_cpu,
    rank_device,
)
from kaggle_kit.model.side_head import head_problem, head_probs

MODEL_FILE = "kaggle_kit_model.json"
ADAPTER_DIR = "adapter"
TOKENIZER_DIR = "tokenizer"
MERGED_DIR = "merged"
CHECKPOINTS = "checkpoints"
RUN_CONFIG = "run_config.json"  # inside CHECKPOINTS: the settings an interrupted run was started with
AFTER_TRAINING = ("length_head", "time_budget")  # settings not shaping the checkpoints: free to change at --resume
HOLDOUT_FILE = "holdout_predictions.csv"
METRICS_FILE = "metrics.json"
CURVES_FILE = "training_curves.png"
REPORT_DIR = "report"
FORMAT_VERSION = 2
# What predict reads from a model dir: the shards of a sharded predict depend on these files and nothing else there.
PREDICTION_ENTRIES = (MODEL_FILE, ADAPTER_DIR, TOKENIZER_DIR, MERGED_DIR)
# Everything kaggle-kit itself writes into a model dir: --overwrite removes these and nothing else.
OWN_ENTRIES = (MODEL_FILE, ADAPTER_DIR, TOKENIZER_DIR, MERGED_DIR, CHECKPOINTS, HOLDOUT_FILE, METRICS_FILE,
               CURVES_FILE, REPORT_DIR)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def prepare_out_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Check --out before any work: a new/empty folder, a kaggle-kit model dir to replace (--overwrite removes only
    our own files), or an interrupted run to --resume. A folder of someone else's files is never touched."""
    if out.exists() and not out.is_dir():
        raise KitError(f"--out {out} is a file, not a folder", hint="choose a new folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    ours = [e for e in entries if e in OWN_ENTRIES]
    done = (out / MODEL_FILE).exists()
    has_checkpoints = any((out / CHECKPOINTS).glob("checkpoint-*"))
    if resume and overwrite:
        raise UsageProblem("--resume continues an interrupted run and --overwrite starts again: pass one of them")
    if resume:
        if done and not _read_json(out / MODEL_FILE).get("stopped_early"):  # a time-budget stop may go on
            raise KitError(f"{out} holds a finished model: nothing to resume",
                           hint="pass --overwrite to train again, or choose a new --out")
        if not has_checkpoints:
            raise KitError(f"--resume: no checkpoint in {out / CHECKPOINTS}", hint="start without --resume")
        return
    if entries and not ours:
        raise KitError(f"--out {out} already holds files that kaggle-kit did not write ({', '.join(entries[:3])}"
                       f"{', ...' if len(entries) > 3 else ''})", hint="choose a new or empty folder")
    if not ours:
        return
    if not written_by_kaggle_kit(out):  # our names alone prove nothing: a user's metrics.json or report/ is theirs
        raise KitError(f"--out {out} holds {', '.join(ours[:3])}{', ...' if len(ours) > 3 else ''} but no record of "
                       f"a kaggle-kit run ({MODEL_FILE}, {CHECKPOINTS}/{RUN_CONFIG}): not kaggle-kit's files, so "
                       "neither resumed nor replaced", hint="choose a new or empty folder")
    if not overwrite:
        if done:
            raise KitError(f"{out} already holds a trained model", hint="pass --overwrite to start again")
        if has_checkpoints:
            raise KitError(f"{out} already holds checkpoints of an interrupted run",
                           hint="pass --resume to continue it, or --overwrite to start again")
        raise KitError(f"{out} holds kaggle-kit files of an unfinished run", hint="pass --overwrite to start again")
    for name in ours:
        _remove(out / name)


def json_has_keys(path: Path, keys: tuple[str, ...]) -> bool:
    """`path` is a JSON object holding every one of `keys` (how kaggle-kit knows a file of its own by content)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and all(k in data for k in keys)


def written_by_kaggle_kit(out: Path) -> bool:
    """A folder kaggle-kit trained into, by content: its finished model's record, or the run record written before
    anything else when a run starts."""
    return (json_has_keys(out / MODEL_FILE, ("format", "backbone", "num_labels"))
            or json_has_keys(out / CHECKPOINTS / RUN_CONFIG, ("backbone", "train_files")))


def save_run_config(out: Path, settings: dict) -> None:
    """Written when training starts, before any other file of the run: it marks the folder as kaggle-kit's, and
    --resume refuses settings that differ from the checkpoints'."""
    write_text_atomic(out / CHECKPOINTS / RUN_CONFIG, json.dumps(settings, indent=2, sort_keys=True))


def check_resume_settings(out: Path, settings: dict) -> None:
    path = out / CHECKPOINTS / RUN_CONFIG
    if not path.exists():
        raise KitError(f"--resume: {path} is missing, so the checkpoints' settings are unknown",
                       hint="start again with --overwrite")
    saved = _read_json(path)
    differ = sorted(k for k in set(saved) | set(settings)
                    if k not in AFTER_TRAINING and _comparable(k, saved.get(k)) != _comparable(k, settings.get(k)))
    if differ:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {settings.get(k)!r}" for k in differ[:4])
        raise KitError(f"--resume with settings that differ from the checkpoints' ({shown})",
                       hint="resume with the original flags, or start again with --overwrite")


PATH_SETTINGS = ("backbone", "teacher", "train_files", "exclude_test")


def _comparable(key: str, value):
    """Files by name: a kernel's next session mounts the same inputs under another root (a local run-kernel does)."""
    if key not in PATH_SETTINGS or value is None:
        return value
    return [Path(v).name for v in value] if isinstance(value, list) else Path(value).name


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise KitError(f"{path} is corrupt ({str(exc).splitlines()[0]})", hint="train the model again") from None
    if not isinstance(data, dict):
        raise KitError(f"{path} is corrupt (not a JSON object)", hint="train the model again")
    return data


def save_model_dir(out: Path, model, tokenizer, info: dict, merge: bool = False,
                   merge_from: Path | None = None) -> None:
    """Adapter, tokenizer, optional merged model, then the info file last: its presence means 'complete'.

    The merged model is saved in the compute dtype (fp32 would double its disk and load time). A quantised model
    (`merge_from`: its backbone) is merged into the backbone reloaded in full precision, never into the
    4-bit weights (merging there rounds the LoRA update into NF4 and saves quantised weights as if they were full)."""
    model.save_pretrained(out / ADAPTER_DIR)
    tokenizer.save_pretrained(out / TOKENIZER_DIR)
    if merge:
        precision = trained_precision(info)  # merged/ is stored in the dtype inference computes in
        dtype = precision.dtype
        if merge_from is not None:
            merged = _merged_from_adapter(out, info, merge_from, precision)
        else:
            merged = model.merge_and_unload()
        merged.to(dtype).save_pretrained(out / MERGED_DIR)
        info = {**info, "merged_dtype": str(dtype).removeprefix("torch.")}
    write_text_atomic(out / MODEL_FILE, json.dumps({"format": FORMAT_VERSION, **info}, indent=2, default=str))


def trained_precision(info: dict) -> Precision:
    """The precision the model was trained in (fp32 on a CPU run)."""
    return Precision(info.get("trained_precision") or "fp32")


def _merged_from_adapter(out: Path, info: dict, backbone: Path, precision: Precision) -> torch.nn.Module:
    from peft import PeftModel

    base, _ = load_backbone_model(backbone, precision, None, num_labels=info["num_labels"], training=False,
                                  device="cpu", attention=info.get("attn_implementation"))
    return PeftModel.from_pretrained(base, out / ADAPTER_DIR).merge_and_unload()


def read_model_info(model_dir: Path) -> dict:
    path = model_dir / MODEL_FILE
    if not path.exists():
        raise KitError(f"{model_dir} is not a kaggle-kit model dir (no {MODEL_FILE})",
                       hint="pass the --out folder of `kaggle-kit train`")
    info = _read_json(path)
    missing = [k for k in ("backbone", "model_type", "num_labels", "encoding") if k not in info]
    if missing:
        raise KitError(f"{path} is corrupt (no {', '.join(missing)})", hint="train the model again")
    if (problem := _numbers_problem(info)) is not None:
        raise KitError(f"{path} is corrupt ({problem})", hint="train the model again")
    if info.get("side_head") is not None and (problem := head_problem(info["side_head"], int(info["num_labels"]))):
        raise KitError(f"{path} is corrupt ({problem})", hint="train the model again")
    return info


def _numbers_problem(info: dict) -> str | None:
    """The numbers predict uses, finite and in range (a temperature of Infinity would give 1/K to every row)."""
    labels, temperature = info["num_labels"], info.get("temperature")
    if isinstance(labels, bool) or not isinstance(labels, int) or not 2 <= labels <= 3:
        return f"num_labels {labels!r} must be 2 or 3"
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                    or not math.isfinite(temperature) or not temperature > 0):
        return f"temperature {temperature!r} must be a finite number > 0"
    return None


def find_backbone(model_dir: Path, info: dict, override: str | None = None) -> Path:
    """--backbone if given; else the recorded (absolute) path; else a folder of that name beside the model dir."""
    from kaggle_kit.model.backbone import resolve_backbone_path

    if override:
        path = resolve_backbone_path(override)
        if model_type(path) != info["model_type"]:
            raise KitError(f"--backbone {override} is a {model_type(path)} model but {model_dir} was trained on a "
                           f"{info['model_type']}", hint="pass the backbone the model was trained with")
        return path
    recorded = Path(info["backbone"])
    candidates = [recorded, model_dir / recorded, model_dir.parent / recorded.name,
                  model_dir.parent.parent / recorded.name]
    for candidate in candidates:
        if (candidate / "config.json").exists():
            return resolve_backbone_path(candidate)
    raise KitError(f"the backbone {model_dir} was trained on ({recorded}) is not here, nor beside the model dir",
                   hint="pass --backbone PATH (the folder of the backbone it was trained on)")


@dataclass
class TrainedModel:
    model: torch.nn.Module
    tokenizer: object
    info: dict
    reload: Callable[[str], torch.nn.Module] | None = None  # the same model loaded onto another device

    @property
    def temperature(self) -> float:
        return float(self.info.get("temperature") or 1.0)

    @property
    def side_head(self) -> dict | None:
        return self.info.get("side_head")

    def probs(self, logits: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """Logits -> probabilities as train fitted them: the length side head (which needs the rows'
        side_head.pair_features) or temperature scaling."""
        if self.side_head is None:
            return softmax(logits, self.temperature)
        if features is None:
            raise ValueError("this model has a length side head: pass the rows' pair_features")
        return head_probs(self.side_head, logits, features)


def tokenizer_dir(model_dir: Path) -> Path:
    return model_dir / TOKENIZER_DIR if (model_dir / TOKENIZER_DIR).is_dir() else model_dir  # format 1: at the root


def check_model_dir(model_dir: Path) -> dict:
    """Everything predict needs, checked before any model is loaded: one line per broken model dir."""
    info = read_model_info(model_dir)
    merged = (model_dir / MERGED_DIR / "config.json").exists()
    adapter = model_dir / ADAPTER_DIR
    if not merged and not (adapter / "adapter_config.json").exists():
        raise KitError(f"{model_dir} has no adapter weights ({adapter} is missing or incomplete)",
                       hint="train the model again, or copy the whole model dir")
    return info


def inference_quantize(requested: str | None, info: dict, cuda: bool) -> str | None:
    """--quantize if given ('none' turns it off); else how the model was trained, where this machine can load it that
    way: CUDA, or bitsandbytes' CPU backend for 4-bit (a 4-bit-trained 9B model loaded in full precision would not fit
    Kaggle's host memory, let alone a T4; and 4-bit-as-trained is the model the holdout measured)."""
    if requested is not None:
        return None if requested == "none" else requested
    trained = (info.get("train_config") or {}).get("quantize")
    return trained if cuda or quantize_on_cpu(trained) else None


def recorded_prior(model_dir: Path, num_labels: int) -> np.ndarray:
    """The training class prior recorded in metrics.json (uniform if absent): the prediction for a row the model gave
    no usable answer for."""
    try:
        prior = json.loads((model_dir / METRICS_FILE).read_text())["class_prior"]
        prior = np.asarray(prior, dtype=np.float64)
        if prior.shape == (num_labels,) and np.isfinite(prior).all() and prior.min() > 0:
            return prior / prior.sum()
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return np.full(num_labels, 1.0 / num_labels)


def load_trained(model_dir: Path, backbone: str | None = None, precision: str = "auto", quantize: str | None = None,
                 device: str | int | None = None, split: dict | None = None) -> TrainedModel:
    """A `train` output dir -> model ready for inference: the saved merged/ model if there is one, else backbone +
    adapter (merged in memory unless quantised); frozen weights in the compute dtype; no K/V cache; the attention
    implementation it was trained with. `device`: where to load (a rank's own, e.g. backbone.rank_device());
    `split`: max_memory per GPU to split the (unquantised) layers over (model/split.py) instead."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    info = check_model_dir(model_dir)
    prec = choose_precision(precision)
    quantize = None if split is not None else inference_quantize(quantize, info, torch.cuda.is_available())
    attention = attention_for(info["model_type"], info.get("attn_implementation"))
    try:
        if (model_dir / MERGED_DIR / "config.json").exists():
            kwargs = {"low_cpu_mem_usage": True, **dtype_kwarg(prec.dtype)}
            if attention is not None:
                kwargs["attn_implementation"] = attention
            if quantize is not None:
                kwargs.update(quantization_config=quantization_config(quantize, prec.dtype, info["model_type"]),
                              device_map={"": rank_device() if device is None else device})
            model = no_kv_cache(AutoModelForSequenceClassification.from_pretrained(model_dir / MERGED_DIR, **kwargs))
        else:
            base, _ = load_backbone_model(find_backbone(model_dir, info, backbone), prec, quantize,
                                          num_labels=info["num_labels"], training=False, device=device,
                                          attention=attention)
            model = PeftModel.from_pretrained(base, model_dir / ADAPTER_DIR)
            if quantize is None:
                model = model.merge_and_unload().to(prec.dtype)
        tokenizer = load_tokenizer(tokenizer_dir(model_dir))
    except KitError:
        raise
    except Exception as exc:  # truncated safetensors, mismatched modules, unreadable tokenizer: one line, not a trace
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise KitError(f"cannot load the model in {model_dir}: {type(exc).__name__}: {first}",
                       hint="check that the model dir is complete and matches its backbone") from None
    if quantize is None and split is not None:
        from kaggle_kit.model.split import split_model

        model, _ = split_model(model, split)
    elif quantize is None:
        model = model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.eval()

    def replica(on: str) -> torch.nn.Module:  # another GPU's copy, loaded there (never copied through cuda:0)
        return load_trained(model_dir, backbone, precision, quantize or "none", device=on).model

    return TrainedModel(model=model, tokenizer=tokenizer, info=info, reload=None if split is not None else replica)
