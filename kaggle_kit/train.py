"""Train a LoRA sequence classifier with the HF Trainer: holdout or k-fold, best-by-log-loss, resumable, measured."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .atomic import atomic_path, write_text_atomic
from .compat import trainer_tokenizer_kwarg, training_arguments
from .competition import CompetitionSpec
from .config import ColumnMap, TrainConfig
from .data import Pairs, class_prior, load_training_files
from .encode import EncodingSpec, Encoder
from .errors import KitError, UsageProblem
from .model import (ADAPTER_DIR, FORMAT_VERSION, MERGED_DIR, MODEL_FILE, choose_precision, load_backbone_model,
                    lora_model, template_for)
from .predict import predict_logits, softmax

log = logging.getLogger(__name__)
CHECKPOINTS = "checkpoints"
HOLDOUT_FILE = "holdout_predictions.csv"
METRICS_FILE = "metrics.json"
CURVES_FILE = "training_curves.png"


def log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import log_loss as sk_log_loss

    return float(sk_log_loss(labels, np.clip(probs, 1e-15, 1.0), labels=list(range(probs.shape[1]))))


def compute_metrics(eval_pred) -> dict[str, float]:
    logits, labels = eval_pred
    probs = softmax(np.asarray(logits, dtype=np.float64))
    return {"log_loss": log_loss(labels, probs), "accuracy": float((probs.argmax(1) == labels).mean())}


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises holdout log loss (1.0 when it does not help)."""
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(lambda log_t: log_loss(labels, softmax(logits, math.exp(log_t))),
                             bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    best = math.exp(result.x)
    return best if log_loss(labels, softmax(logits, best)) < log_loss(labels, softmax(logits)) else 1.0


def split_holdout(labels: np.ndarray, valid_frac: float, fold: str | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified holdout, or fold i of k (StratifiedKFold): returns (train_index, valid_index)."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    index = np.arange(len(labels))
    if fold:
        try:
            i, k = (int(x) for x in fold.split("/"))
        except ValueError:
            raise UsageProblem(f"--fold '{fold}' is not of the form i/k", hint="e.g. --fold 0/5") from None
        if not (k >= 2 and 0 <= i < k):
            raise UsageProblem(f"--fold {fold}: need k >= 2 and 0 <= i < k")
        splits = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(index, labels))
        return splits[i]
    if not 0 < valid_frac < 1:
        raise UsageProblem(f"--valid-frac must be between 0 and 1, got {valid_frac}")
    n_valid = max(len(np.unique(labels)), int(round(len(labels) * valid_frac)))
    if len(labels) - n_valid < 2:
        raise KitError(f"only {len(labels)} training rows: too few to hold out {n_valid}")
    train_idx, valid_idx = train_test_split(index, test_size=n_valid, stratify=labels, random_state=seed)
    return np.sort(train_idx), np.sort(valid_idx)


def stderr_progress():
    """The usual progress bar; transformers is imported here so the module stays light for the CLI."""
    from tqdm.auto import tqdm
    from transformers.trainer_callback import ProgressCallback

    class _StderrProgress(ProgressCallback):
        """Progress bar as usual, but eval results as one short line on stderr: stdout stays clean for --json."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs and "eval_log_loss" in logs:
                tqdm.write(f"step {state.global_step}: holdout log loss {logs['eval_log_loss']:.4f}, "
                           f"accuracy {logs['eval_accuracy']:.3f}", file=sys.stderr)

    return _StderrProgress()


@dataclass
class TrainResult:
    out_dir: Path
    metrics: dict


def _prepare_out_dir(out: Path, resume: bool, overwrite: bool) -> None:
    done = (out / MODEL_FILE).exists()
    has_checkpoints = any((out / CHECKPOINTS).glob("checkpoint-*"))
    if resume:
        if not has_checkpoints:
            raise KitError(f"--resume: no checkpoint in {out / CHECKPOINTS}", hint="start without --resume")
        return
    if done and not overwrite:
        raise KitError(f"{out} already holds a trained model", hint="pass --overwrite to start again")
    if has_checkpoints and not overwrite:
        raise KitError(f"{out} already holds checkpoints of an interrupted run",
                       hint="pass --resume to continue it, or --overwrite to start again")
    if overwrite and out.exists():
        shutil.rmtree(out)


def _dataset(encoded: list[list[int]], labels: np.ndarray):
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": encoded, "labels": [int(x) for x in labels]})


def _training_args(cfg: TrainConfig, out: Path, steps_per_epoch: int, precision: str, distributed: bool):
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    eval_steps = cfg.eval_steps or max(1, total // 8)
    return training_arguments(
        output_dir=str(out / CHECKPOINTS),
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay,
        lr_scheduler_type="cosine", warmup_steps=cfg.warmup,
        eval_strategy="steps", eval_steps=eval_steps, save_strategy="steps", save_steps=eval_steps,
        logging_steps=max(1, eval_steps // 2), save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=True, metric_for_best_model="log_loss", greater_is_better=False,
        train_sampling_strategy="group_by_length", seed=cfg.seed, data_seed=cfg.seed,
        report_to=[] if cfg.report_to == "none" else [cfg.report_to],
        fp16=precision == "fp16", bf16=precision == "bf16", use_cpu=precision == "fp32" and not _cuda(),
        gradient_checkpointing=cfg.gradient_checkpointing, dataloader_pin_memory=_cuda(),
        ddp_find_unused_parameters=False if distributed else None, disable_tqdm=False,
    )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def train(train_files: list[Path], out: Path, cfg: TrainConfig, spec: CompetitionSpec,
          column_maps: dict[str, ColumnMap] | None = None, exclude_test: Path | None = None,
          resume: bool = False, overwrite: bool = False, callbacks: list | None = None) -> TrainResult:
    """The whole run: data -> split -> encode -> LoRA model -> Trainer -> best checkpoint -> model dir + metrics."""
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer, set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from .backbone import resolve_backbone_path

    backbone = resolve_backbone_path(cfg.backbone)
    precision = choose_precision(cfg.precision)
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))  # set by torchrun
    if rank == 0:
        _prepare_out_dir(out, resume, overwrite)
    set_seed(cfg.seed)

    train_set = load_training_files(train_files, spec, column_maps, exclude_test)
    pairs = train_set.pairs
    train_idx, valid_idx = split_holdout(pairs.labels, cfg.valid_frac, cfg.fold, cfg.seed)
    fit_pairs, valid_pairs = pairs.subset(train_idx), pairs.subset(valid_idx)

    kind, template = template_for(backbone)
    model, tokenizer = load_backbone_model(backbone, precision, cfg.quantize, spec.num_labels)
    encoding = EncodingSpec(max_len=cfg.max_len, template=template, fields=spec.text_columns)
    encoder = Encoder(tokenizer, encoding)
    fit_encoded = encoder.encode(fit_pairs, progress=True)
    fit_labels = fit_pairs.labels
    if cfg.swap_augment:
        swapped = fit_pairs.swapped(spec)
        fit_encoded = fit_encoded + encoder.encode(swapped, progress=True)
        fit_labels = np.concatenate([fit_labels, swapped.labels])
    valid_encoded = encoder.encode(valid_pairs, progress=True)

    model = lora_model(model, kind, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.rslora, cfg.target_modules,
                       cfg.quantize, cfg.gradient_checkpointing)
    steps_per_epoch = math.ceil(len(fit_encoded) / (cfg.batch_size * cfg.grad_accum * world))
    args = _training_args(cfg, out, steps_per_epoch, precision.name, distributed=world > 1)
    trainer = Trainer(
        model=model, args=args, train_dataset=_dataset(fit_encoded, fit_labels),
        eval_dataset=_dataset(valid_encoded, valid_pairs.labels), **trainer_tokenizer_kwarg(tokenizer),
        data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.patience), *(callbacks or [])],
    )
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(stderr_progress())
    trainer.train(resume_from_checkpoint=True if resume else None)

    # Our own ordered inference (Trainer's eval sampler groups by length and would reorder rows).
    trainer.model.eval()
    holdout_logits = predict_logits(trainer.model, tokenizer.pad_token_id, valid_encoded, max_tokens=cfg.eval_batch_size * cfg.max_len,
                                    num_labels=spec.num_labels, progress=False).astype(np.float64)
    if not trainer.is_world_process_zero():
        return TrainResult(out, {})
    temperature = fit_temperature(holdout_logits, valid_pairs.labels) if cfg.calibrate else 1.0
    prior = class_prior(fit_labels, spec.num_labels)
    metrics = _metrics(trainer, holdout_logits, valid_pairs, prior, temperature, train_set, len(fit_pairs))
    metrics["world_size"] = world
    _save_model_dir(out, trainer.model, tokenizer, backbone, kind, encoding, cfg, spec, temperature, precision.name)
    _save_holdout(out / HOLDOUT_FILE, valid_pairs, holdout_logits, temperature, spec)
    write_text_atomic(out / METRICS_FILE, json.dumps(metrics, indent=2))
    plot_training_curves(metrics, out / CURVES_FILE)
    return TrainResult(out, metrics)


def _metrics(trainer, logits: np.ndarray, valid: Pairs, prior: np.ndarray, temperature: float, train_set,
             n_fit: int) -> dict:
    history = trainer.state.log_history
    evals = [{"step": h["step"], "log_loss": h["eval_log_loss"], "accuracy": h["eval_accuracy"]}
             for h in history if "eval_log_loss" in h]
    losses = [{"step": h["step"], "loss": h["loss"]} for h in history if "loss" in h]
    probs = softmax(logits)
    labels = valid.labels
    best_step = None
    if trainer.state.best_model_checkpoint:
        best_step = int(Path(trainer.state.best_model_checkpoint).name.split("-")[-1])
    return {
        "holdout": {
            "rows": len(valid), "log_loss": log_loss(labels, probs), "accuracy": float((probs.argmax(1) == labels).mean()),
            "log_loss_calibrated": log_loss(labels, softmax(logits, temperature)),
        },
        "prior_log_loss": log_loss(labels, np.tile(prior, (len(labels), 1))),
        "class_prior": prior.tolist(),
        "temperature": temperature,
        "best_step": best_step,
        "eval_history": evals,
        "train_loss_history": losses,
        "rows": {"train": n_fit, "holdout": len(valid), "per_file": train_set.per_file_rows,
                 "duplicates_dropped": train_set.duplicates_dropped, "test_leaks_dropped": train_set.test_leaks_dropped},
    }


def _save_model_dir(out: Path, model, tokenizer, backbone: Path, kind: str, encoding: EncodingSpec, cfg: TrainConfig,
                    spec: CompetitionSpec, temperature: float, precision: str) -> None:
    model.save_pretrained(out / ADAPTER_DIR)
    tokenizer.save_pretrained(out)
    if cfg.merge:
        if cfg.quantize:
            raise KitError("--merge is not supported with --quantize", hint="merge into a full-precision backbone later")
        merged = model.merge_and_unload()
        merged.save_pretrained(out / MERGED_DIR)
    info = {
        "format": FORMAT_VERSION, "kaggle_kit_version": __version__, "competition": spec.slug,
        "backbone": str(backbone), "model_type": kind, "num_labels": spec.num_labels,
        "label_columns": list(spec.label_columns), "encoding": encoding.to_dict(), "temperature": temperature,
        "trained_precision": precision, "train_config": asdict(cfg),
    }
    write_text_atomic(out / MODEL_FILE, json.dumps(info, indent=2))


def _save_holdout(path: Path, valid: Pairs, logits: np.ndarray, temperature: float, spec: CompetitionSpec) -> None:
    frame = pd.DataFrame({"id": valid.ids, "label": valid.labels})
    for k, column in enumerate(spec.label_columns):
        frame[f"logit_{column}"] = logits[:, k]
    probs = softmax(logits, temperature)
    for k, column in enumerate(spec.label_columns):
        frame[column] = probs[:, k]
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.9g")


def new_figure(figsize: tuple[float, float]):
    """A (figure, axes) pair on the headless Agg backend (no display on CI or in kernels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)


def save_png(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_training_curves(metrics: dict, path: Path) -> None:
    fig, ax = new_figure((7, 4))
    if metrics["train_loss_history"]:
        ax.plot(*zip(*[(h["step"], h["loss"]) for h in metrics["train_loss_history"]]), label="train loss")
    if metrics["eval_history"]:
        ax.plot(*zip(*[(h["step"], h["log_loss"]) for h in metrics["eval_history"]]), marker="o", label="holdout log loss")
    ax.axhline(metrics["prior_log_loss"], color="grey", linestyle="--", label="class-prior baseline")
    ax.set_xlabel("step")
    ax.set_ylabel("log loss (nats)")
    ax.legend()
    ax.set_title("training curves")
    fig.tight_layout()
    save_png(fig, path)
