"""Train a LoRA sequence classifier with the HF Trainer: holdout or k-fold, best-by-log-loss, resumable, measured."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from kaggle_kit import __version__
from kaggle_kit.atomic import atomic_path, write_text_atomic
from kaggle_kit.compat import trainer_tokenizer_kwarg, training_arguments
from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.config import ColumnMap, TrainConfig, check_section
from kaggle_kit.config.durations import parse_duration
from kaggle_kit.data.encode import Encoder, EncodingSpec
from kaggle_kit.data.reading import Pairs, is_soft, load_training_files, say_dropped
from kaggle_kit.errors import KitError
from kaggle_kit.metrics import (
    accuracy,
    class_prior,
    log_loss,
    prior_log_loss,
    softmax,
)
from kaggle_kit.model.backbone import (
    CHECKPOINTING_KWARGS,
    attention_of,
    choose_precision,
    load_backbone_model,
    lora_model,
    quantization_config,
    resolve_backbone_path,
    template_for,
)
from kaggle_kit.model.batching import predict_logits
from kaggle_kit.model.limits import fit_max_len
from kaggle_kit.model.model_dir import (
    CHECKPOINTS,
    CURVES_FILE,
    HOLDOUT_FILE,
    METRICS_FILE,
    check_resume_settings,
    prepare_out_dir,
    save_model_dir,
    save_run_config,
)
from kaggle_kit.model.side_head import describe as describe_side_head
from kaggle_kit.model.side_head import fit_calibration, pair_features
from kaggle_kit.plots import training_curves_png
from kaggle_kit.training.folds import fold_splits, grouped_holdout, prompt_groups
from kaggle_kit.training.sharding import check_sharded_training, sharded_training_args
from kaggle_kit.training.targets import (
    PairCollator,
    check_distill_settings,
    check_label_classes,
    read_teacher,
    rows_dataset,
    teacher_rows,
    trainer_class,
)
from kaggle_kit.training.time_limit import time_budget_callback

log = logging.getLogger(__name__)
# Fewer rows than this cannot give a holdout that says anything: refused before a model is loaded.
MIN_TRAIN_ROWS = 20
# A holdout log loss not at least this far below the class prior means the run learned nothing worth using.
LEARNED_MARGIN = 0.005
MAX_HOLDOUT_SHARE = 4  # valid_rows never takes more than 1/4 of the data: enough rows must stay for training


def compute_metrics(eval_pred) -> dict[str, float]:
    logits, labels = eval_pred
    probs = softmax(np.asarray(logits, dtype=np.float64))
    targets = np.asarray(labels, dtype=np.float64)[:, :probs.shape[1]]  # labels are packed [target | teacher]
    return {"log_loss": log_loss(targets, probs), "accuracy": accuracy(targets, probs)}


def holdout_size(n_rows: int, valid_frac: float, valid_rows: int = 0, n_classes: int = 3) -> int:
    """valid_frac of the rows, but at least valid_rows when the data allows (never more than a quarter of it)."""
    return max(n_classes, int(round(n_rows * valid_frac)), min(valid_rows, n_rows // MAX_HOLDOUT_SHARE))


def split_holdout(labels: np.ndarray, valid_frac: float, fold: str | None, seed: int,
                  groups: np.ndarray | None = None, valid_rows: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A holdout grouped by prompt (stratified where classes allow), or fold i of k (grouped like `kaggle-kit cv`):
    (train_index, valid_index). No holdout row shares its prompt with a training row; `groups` None: every row its
    own prompt."""

    if len(labels) < MIN_TRAIN_ROWS:
        raise KitError(f"only {len(labels)} training rows: too few to train and hold out (at least {MIN_TRAIN_ROWS})",
                       hint="use more rows")
    index = np.arange(len(labels))
    groups = index if groups is None else groups
    n_classes = len(np.unique(labels))
    if fold:
        i, k = (int(x) for x in fold.split("/"))
        return fold_splits(labels, groups, k, seed)[i]
    n_valid = holdout_size(len(labels), valid_frac, valid_rows, n_classes)
    present = np.bincount(labels)
    if len(labels) - n_valid < n_classes or present[present > 0].min() < 2:  # soft rows may leave a class empty
        raise KitError(f"only {len(labels)} training rows: too few for a stratified holdout of {n_valid}",
                       hint="use more rows (at least a few dozen)")
    return grouped_holdout(labels, groups, n_valid, seed)


def _eval_line(state, logs) -> str:
    return (f"step {state.global_step}: holdout log loss {logs['eval_log_loss']:.4f}, "
            f"accuracy {logs['eval_accuracy']:.3f}")


def stderr_progress():
    """On a terminal the usual bar; in logs plain lines every LINE_EVERY_S. Eval results are one line on stderr either
    way, so stdout stays clean for --json. transformers is imported here so the module stays light for the CLI."""
    from tqdm.auto import tqdm
    from transformers.trainer_callback import ProgressCallback, TrainerCallback

    from kaggle_kit.progress import PlainProgress, on_terminal

    class _BarProgress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs and "eval_log_loss" in logs:
                tqdm.write(_eval_line(state, logs), file=sys.stderr)

    class _LineProgress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.bar = PlainProgress(state.max_steps, "train", "step") if state.is_world_process_zero else None

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar:
                self.bar.n = state.global_step - 1
                self.bar.update(1)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs and "eval_log_loss" in logs:
                print(_eval_line(state, logs), file=sys.stderr, flush=True)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar:
                self.bar.close()

    return _BarProgress() if on_terminal() else _LineProgress()


@dataclass
class TrainResult:
    out_dir: Path
    metrics: dict


def _training_args(cfg: TrainConfig, out: Path, steps_per_epoch: int, precision: str, distributed: bool,
                   backbone: Path):
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    eval_steps = cfg.eval_steps or max(1, total // 8)
    args = training_arguments(
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
        # transformers 4.x checkpoints re-entrantly by default: LoRA layers inside a checkpointed block whose input
        # needs no gradient (frozen embeddings) then get none, silently. Non-re-entrant checkpointing has no such hole.
        gradient_checkpointing_kwargs=CHECKPOINTING_KWARGS if cfg.gradient_checkpointing else None,
        ddp_find_unused_parameters=False if distributed else None, disable_tqdm=False,
        remove_unused_columns=False,  # PairCollator builds the model inputs itself
        **sharded_training_args(cfg.fsdp, cfg.deepspeed, backbone),
    )
    return one_gpu_per_process(args)


def one_gpu_per_process(args):
    """A process trains on one GPU: several GPUs are used as DDP ranks (training.launch), never through the Trainer's
    n_gpu > 1 path, which wraps the model in nn.DataParallel (transformers 4.x does so for 4-bit models too, which
    cannot be replicated) and multiplies the batch by n_gpu while steps per epoch count WORLD_SIZE processes."""
    if args.n_gpu > 1:
        args._n_gpu = 1
    return args


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _check_settings(cfg: TrainConfig, backbone: Path) -> None:
    """What the config ranges cannot know alone, checked against the backbone before any model is loaded."""
    config = json.loads((backbone / "config.json").read_text())
    hidden, layers = config.get("hidden_size"), config.get("num_hidden_layers")
    if hidden and cfg.lora_r > hidden:
        raise KitError(f"--lora-r {cfg.lora_r} exceeds the backbone's hidden size {hidden}",
                       hint=f"use a rank of at most {hidden} (8-64 is usual)")
    if layers and cfg.freeze_layers >= layers:
        raise KitError(f"--freeze-layers {cfg.freeze_layers} leaves no layer to train (the backbone has {layers})",
                       hint=f"use at most {layers - 1}")
    if cfg.quantize:
        quantization_config(cfg.quantize, choose_precision(cfg.precision).dtype)  # refused here, before any data
    if cfg.full_swap and cfg.swap_augment:
        raise KitError("--full-swap and --swap-augment both add swapped rows", hint="choose one")
    if cfg.teacher and not Path(cfg.teacher).is_file():
        raise KitError(f"--teacher {cfg.teacher} not found", hint="pass an oof.csv written by `kaggle-kit cv`")
    check_sharded_training(cfg.fsdp, cfg.deepspeed, cfg.quantize, backbone)


def run_settings(cfg: TrainConfig, backbone: Path, train_files: list[Path], exclude_test: Path | None) -> dict:
    """What an interrupted run must be resumed with: the config, the resolved backbone and the data files."""
    settings = {**asdict(cfg), "backbone": str(backbone)}
    settings["train_files"] = [str(Path(p).resolve()) for p in train_files]
    settings["exclude_test"] = str(Path(exclude_test).resolve()) if exclude_test else None
    return settings


def train(train_files: list[Path], out: Path, cfg: TrainConfig, spec: CompetitionSpec,
          column_maps: dict[str, ColumnMap] | None = None, exclude_test: Path | None = None,
          resume: bool = False, overwrite: bool = False, callbacks: list | None = None,
          recipe_note: dict | None = None, budget_start: float | None = None) -> TrainResult:
    """The whole run: data -> split -> encode -> LoRA model -> Trainer -> best checkpoint -> model dir + metrics.

    `recipe_note`: which recipe settings were applied and where each value came from (config.layers.run_note),
    recorded in the model dir.
    `budget_start`: the time.monotonic() cfg.time_budget counts from (default: this process's start)."""
    from transformers import EarlyStoppingCallback, set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    check_section(cfg, "setting")  # a TrainConfig built in code gets the same range checks as flags and toml
    backbone = resolve_backbone_path(cfg.backbone)
    _check_settings(cfg, backbone)
    precision = choose_precision(cfg.precision)
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))  # set by torchrun
    settings = run_settings(cfg, backbone, train_files, exclude_test)
    if rank == 0:
        prepare_out_dir(out, resume, overwrite)
        if resume:
            check_resume_settings(out, settings)
    warnings: list[str] = []
    max_len, limit = fit_max_len(cfg.max_len, backbone)
    if max_len < cfg.max_len:
        warnings.append(f"--max-len {cfg.max_len} lowered to {max_len}: the backbone's limit ({limit.reason})")
        if rank == 0:
            log.warning("warning: %s", warnings[-1])
        cfg = replace(cfg, max_len=max_len)
    set_seed(cfg.seed)

    train_set = load_training_files(train_files, spec, column_maps, exclude_test)
    if rank == 0:
        say_dropped(train_set)
    pairs = train_set.pairs
    n = spec.num_labels
    all_targets = pairs.target_rows(n)
    check_label_classes(all_targets, spec, train_files)
    check_distill_settings(cfg.distill_weight, cfg.teacher, int(is_soft(all_targets).sum()))
    teacher, covered = all_targets, 0
    if cfg.teacher:
        teacher, covered = teacher_rows(read_teacher(Path(cfg.teacher), spec), pairs.ids, all_targets,
                                        Path(cfg.teacher), train_set.dropped_ids)
    groups = prompt_groups(pairs, spec)
    train_idx, valid_idx = split_holdout(pairs.labels, cfg.valid_frac, cfg.fold, cfg.seed, groups, cfg.valid_rows)
    fit_pairs, valid_pairs = pairs.subset(train_idx), pairs.subset(valid_idx)
    if recipe_note and recipe_note.get("applied") and rank == 0:  # inputs are checked: say which settings run
        from kaggle_kit.config.recipes import describe_note

        log.warning(describe_note(recipe_note))
    fit_targets, fit_teacher, valid_targets = all_targets[train_idx], teacher[train_idx], all_targets[valid_idx]

    kind, template = template_for(backbone)
    model, tokenizer = load_backbone_model(backbone, precision, cfg.quantize, spec.num_labels)
    encoding = EncodingSpec(max_len=cfg.max_len, template=template, fields=spec.text_columns, truncate=cfg.truncate,
                            prompt_budget=cfg.prompt_budget, length_header=cfg.length_header)
    encoder = Encoder(tokenizer, encoding)
    fit_encoded = encoder.encode(fit_pairs, progress=True)
    swap_of = list(spec.label_swap)  # label_swap is its own inverse: it maps probability columns too
    swap_part = None
    if cfg.swap_augment or cfg.full_swap:
        swap_part = (encoder.encode(fit_pairs.swapped(spec), progress=True), fit_targets[:, swap_of],
                     fit_teacher[:, swap_of])
    if cfg.swap_augment:
        fit_encoded = fit_encoded + swap_part[0]
        fit_targets = np.concatenate([fit_targets, swap_part[1]])
        fit_teacher = np.concatenate([fit_teacher, swap_part[2]])
    valid_encoded = encoder.encode(valid_pairs, progress=True)

    model = lora_model(model, kind, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.rslora, cfg.target_modules,
                       cfg.quantize, cfg.gradient_checkpointing, cfg.freeze_layers)
    steps_per_epoch = math.ceil(len(fit_encoded) / (cfg.batch_size * cfg.grad_accum * world))
    args = _training_args(cfg, out, steps_per_epoch, precision.name, distributed=world > 1, backbone=backbone)
    trainer_cls = trainer_class(cfg.distill_weight, cfg.distill_temperature, n)
    if rank == 0 and not resume:  # before the Trainer makes checkpoints/: the record that the folder is ours
        save_run_config(out, settings)
    trainer = trainer_cls(
        model=model, args=args,
        train_dataset=rows_dataset(fit_encoded, fit_targets, fit_teacher, swap_part if cfg.full_swap else None),
        eval_dataset=rows_dataset(valid_encoded, valid_targets, valid_targets), **trainer_tokenizer_kwarg(tokenizer),
        data_collator=PairCollator(tokenizer.pad_token_id, n), compute_metrics=compute_metrics,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.patience), *(callbacks or [])],
    )
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(stderr_progress())
    budget = None
    if cfg.time_budget is not None:
        budget = time_budget_callback(parse_duration(cfg.time_budget), budget_start)
        trainer.add_callback(budget)
    trainer.train(resume_from_checkpoint=True if resume else None)
    stopped = budget is not None and budget.stopped_at is not None

    # Our own ordered inference (Trainer's eval sampler groups by length and would reorder rows), at the length
    # predict will use (a recipe may predict longer than it trains), so the temperature or side head fitted on these
    # logits and the holdout file describe the submission's probabilities.
    trainer.model.eval()
    predict_len = predict_max_len(cfg.max_len, limit.tokens, recipe_note)
    if predict_len != cfg.max_len:
        valid_encoded = Encoder(tokenizer, replace(encoding, max_len=predict_len)).encode(valid_pairs, progress=True)
    holdout_logits = predict_logits(trainer.model, tokenizer.pad_token_id, valid_encoded,
                                    max_tokens=cfg.eval_batch_size * predict_len, num_labels=spec.num_labels,
                                    progress=False).astype(np.float64)
    if not trainer.is_world_process_zero():
        return TrainResult(out, {})
    # The temperature predict uses is fitted on every holdout row; the probabilities written (and so cv's oof.csv,
    # blends and the calibrated figure) are cross-fitted: each row scaled by a temperature fitted without it. A
    # temperature that does not help out of sample is dropped (1.0), like a blend or rule that does not.
    # The side head's probabilities, when it is kept, are its out-of-fold ones: what blends and cv gather may trust.
    features = pair_features(valid_pairs, spec) if cfg.length_head else None
    temperature, head, holdout_probs, head_report = fit_calibration(holdout_logits, valid_targets, features, cfg.seed,
                                                                    cfg.calibrate)
    if head_report is not None:
        log.warning("%s", describe_side_head(head_report))
    prior = class_prior(fit_targets, n)
    metrics = _metrics(trainer, holdout_logits, valid_targets, prior, temperature, holdout_probs, train_set,
                       len(fit_pairs), len(fit_encoded))
    if cfg.length_head:
        metrics["side_head"] = head_report
    metrics["world_size"] = world
    metrics["soft_rows"] = {"train": int(is_soft(fit_targets).sum()), "holdout": int(is_soft(valid_targets).sum())}
    if cfg.teacher:
        metrics["teacher_rows"] = covered
    if not metrics["learned"]:
        warnings.append(f"holdout log loss {metrics['holdout']['log_loss']:.4f} is no better than the class prior "
                        f"{metrics['prior_log_loss']:.4f}: the model learned nothing useful (try another --lr, more "
                        "--epochs or more data)")
    if stopped:
        metrics["stopped_early"] = {"reason": "time budget", "time_budget": cfg.time_budget,
                                    "step": budget.stopped_at, "max_steps": trainer.state.max_steps}
        warnings.append(f"training stopped at step {budget.stopped_at} of {trainer.state.max_steps}: the time budget "
                        f"{cfg.time_budget} ran out; this model dir holds the best checkpoint so far (resume with "
                        "--resume in the same --out)")
    metrics["warnings"] = warnings
    metrics["metric"] = spec.metric  # the competition's; holdout carries log loss and accuracy either way
    if (note := spec.metric_note()) and rank == 0:
        metrics["notes"] = [note]
        log.warning("note: %s", note)
    metrics["recipe"] = recipe_note
    info = {
        "kaggle_kit_version": __version__, "competition": spec.slug, "backbone": str(backbone), "model_type": kind,
        "num_labels": spec.num_labels, "label_columns": list(spec.label_columns), "encoding": encoding.to_dict(),
        "temperature": temperature, "trained_precision": precision.name, "train_config": settings,
        "max_len": {"requested": settings["max_len"], "used": cfg.max_len, "backbone_limit": limit.tokens,
                    "reason": limit.reason, "predict": predict_len},
        "recipe": recipe_note, "side_head": head, "stopped_early": stopped,
        "attn_implementation": attention_of(trainer.model),
    }
    save_model_dir(out, trainer.model, tokenizer, info, merge=cfg.merge, merge_from=backbone if cfg.quantize else None)
    _save_holdout(out / HOLDOUT_FILE, valid_pairs, valid_targets, holdout_logits, holdout_probs, spec)
    write_text_atomic(out / METRICS_FILE, json.dumps(metrics, indent=2))
    training_curves_png(metrics, out / CURVES_FILE)
    for warning in warnings[-2:]:
        if warning.startswith(("holdout log loss", "training stopped")):
            log.warning("warning: %s", warning)
    return TrainResult(out, metrics)


def predict_max_len(used: int, limit: int | None, recipe_note: dict | None) -> int:
    """Tokens per row at inference: the recipe's inference length when max_len came from the recipe (e.g. Gemma-2
    1024 train / 2048 inference), else the training length; never above the backbone's limit."""
    wanted = used
    if recipe_note and recipe_note.get("recipe") and "max_len" in recipe_note.get("applied", {}):
        from kaggle_kit.config.recipes import get_recipe

        # the note carries it (a recipe file is not at hand later); a note written without it names a shipped recipe
        wanted = max(used, recipe_note.get("predict_max_len") or get_recipe(recipe_note["recipe"]).predict_max_len)
    return min(wanted, limit) if limit else wanted


def _metrics(trainer, logits: np.ndarray, labels: np.ndarray, prior: np.ndarray, temperature: float,
             calibrated: np.ndarray, train_set, n_fit: int, n_sequences: int) -> dict:
    """`n_sequences`: what the Trainer trained on (rows, plus their swaps under --swap-augment)."""
    history = trainer.state.log_history
    evals = [{"step": h["step"], "log_loss": h["eval_log_loss"], "accuracy": h["eval_accuracy"]}
             for h in history if "eval_log_loss" in h]
    losses = [{"step": h["step"], "loss": h["loss"]} for h in history if "loss" in h]
    probs = softmax(logits)
    best_step = None
    if trainer.state.best_model_checkpoint:
        best_step = int(Path(trainer.state.best_model_checkpoint).name.split("-")[-1])
    holdout_loss = log_loss(labels, probs)
    baseline = prior_log_loss(prior, labels)
    return {
        "holdout": {
            "rows": len(labels), "log_loss": holdout_loss, "accuracy": accuracy(labels, probs),
            # out of sample: the cross-fitted temperature's, or the side head's cross-validated probabilities
            "log_loss_calibrated": log_loss(labels, calibrated),
        },
        "prior_log_loss": baseline,
        "learned": holdout_loss < baseline - LEARNED_MARGIN,
        "class_prior": prior.tolist(),
        "temperature": temperature,
        "best_step": best_step,
        "eval_history": evals,
        "train_loss_history": losses,
        "rows": {"train": n_fit, "sequences": n_sequences, "holdout": len(labels), "per_file": train_set.per_file_rows,
                 "duplicates_dropped": train_set.duplicates_dropped,
                 "test_leaks_dropped": train_set.test_leaks_dropped},
    }


def _save_holdout(path: Path, valid: Pairs, targets: np.ndarray, logits: np.ndarray, probs: np.ndarray,
                  spec: CompetitionSpec) -> None:
    frame = pd.DataFrame({"id": valid.ids, "label": valid.labels})
    for k, column in enumerate(spec.label_columns):
        frame[f"logit_{column}"] = logits[:, k]
    for k, column in enumerate(spec.label_columns):
        frame[column] = probs[:, k]
    for k, column in enumerate(spec.label_columns):  # soft labels: what the holdout log loss is measured against
        frame[f"target_{column}"] = targets[:, k]
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.9g")
