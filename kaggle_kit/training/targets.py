"""Soft targets and distillation: teacher probabilities by id, the 1st-place style loss, the Trainer using it, and the
rows it trains on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.data.reading import MAX_IDS_SHOWN, check_unique_ids, read_csv_checked, targets_from_columns
from kaggle_kit.errors import DataError, KitError

TEACHER_FLOOR = 1e-8  # teacher probabilities are clipped here before log: a hard 0 would make KL infinite


def check_label_classes(targets: np.ndarray, spec: CompetitionSpec, files: list[Path]) -> None:
    """Rows that all carry one class leave nothing to learn: the prior already predicts them perfectly."""
    seen = np.flatnonzero(targets.sum(axis=0) > 0)
    if len(seen) < 2:
        what = f"labelled {spec.label_columns[seen[0]]}" if len(seen) else "without a label"
        raise DataError(f"every training row of {', '.join(str(f) for f in files)} is {what}: nothing to learn",
                        hint=f"check the label columns ({', '.join(spec.label_columns)})")


def read_teacher(path: Path, spec: CompetitionSpec) -> dict[str, np.ndarray]:
    """id -> probability row from a CSV with id and the winner columns (an oof.csv, a pseudo-label file)."""
    frame = read_csv_checked(path, [spec.id_column, *spec.label_columns], allow_extra=True)
    check_unique_ids(path, frame, spec.id_column)
    probs = targets_from_columns(path, frame, spec)
    return dict(zip(frame[spec.id_column].astype(str), probs))


def teacher_rows(teacher: dict[str, np.ndarray], ids: list[str], own: np.ndarray, path: Path,
                 dropped: list[str] = ()) -> tuple[np.ndarray, int]:
    """The teacher row of each training id (its own target where the teacher has none) and how many it covered.

    An id the teacher names but the training files lack is an error: a teacher of other data. Ids of rows dropped
    as duplicates or test leaks are ignored."""
    known = set(ids) | set(dropped)
    unknown = [i for i in teacher if i not in known]
    if unknown:
        shown = ", ".join(unknown[:MAX_IDS_SHOWN]) + (f" (+{len(unknown) - MAX_IDS_SHOWN} more)"
                                                      if len(unknown) > MAX_IDS_SHOWN else "")
        raise DataError(f"--teacher {path}: {len(unknown)} id(s) are not training rows: {shown}",
                        hint="the teacher must predict the same training file(s); ids of a 2nd file are prefixed 1:")
    rows = np.array(own, dtype=np.float64, copy=True)
    covered = 0
    for k, i in enumerate(ids):
        if i in teacher:
            rows[k] = teacher[i]
            covered += 1
    return rows, covered


def distill_loss(logits, targets, teacher, weight: float, temperature: float):
    """(1 - W) soft cross-entropy to the targets + W T^2 KL(teacher_T || student_T); a hard target is one-hot."""
    import torch.nn.functional as F

    logits = logits.float()
    ce = -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean()
    if weight <= 0:
        return ce
    t = temperature
    teacher_log = F.log_softmax(teacher.clamp_min(TEACHER_FLOOR).log() / t, dim=-1)
    kl = F.kl_div(F.log_softmax(logits / t, dim=-1), teacher_log, log_target=True, reduction="batchmean") * t * t
    return (1 - weight) * ce + weight * kl


class PairCollator:
    """Right-pads input ids; labels are [target row | teacher row]; with swap columns a row's A/B swap joins it."""

    def __init__(self, pad_id: int, num_labels: int):
        self.pad_id, self.num_labels = pad_id, num_labels

    def __call__(self, features: list[dict]) -> dict:
        import torch

        from kaggle_kit.model.batching import pad_batch

        rows, labels = [], []
        for f in features:
            rows.append(f["input_ids"])
            labels.append(f["labels"])
            if "swap_input_ids" in f:
                rows.append(f["swap_input_ids"])
                labels.append(f["swap_labels"])
        batch = pad_batch(rows, self.pad_id)
        batch["labels"] = torch.tensor(np.asarray(labels, dtype=np.float32))
        return batch


def trainer_class(weight: float, temperature: float, num_labels: int):
    """A Trainer whose loss is `distill_loss` on labels packed as [target | teacher] (transformers 4.46 and 5.x)."""
    from transformers import Trainer

    class SoftTargetTrainer(Trainer):
        loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides by the accumulation steps (5.x)

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.model_accepts_loss_kwargs = False  # same meaning for 4.46: our loss is a per-batch mean

        def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
            inputs = dict(inputs)  # prediction_step reads the labels from the caller's dict afterwards
            packed = inputs.pop("labels")
            outputs = model(**inputs)
            logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
            targets, teacher = packed[:, :num_labels], packed[:, num_labels:]
            loss = distill_loss(logits, targets, teacher, weight, temperature)
            return (loss, outputs) if return_outputs else loss

    return SoftTargetTrainer


def check_distill_settings(weight: float, teacher: str | None, soft_rows: int) -> None:
    """A teacher without a weight (or the reverse with nothing soft to learn from) would silently do nothing."""
    if teacher and weight <= 0:
        raise KitError("--teacher is given but --distill-weight is 0, so the teacher would be ignored",
                       hint="set --distill-weight (e.g. 0.5)")
    if weight > 0 and not teacher and soft_rows == 0:
        raise KitError("--distill-weight needs teacher probabilities: --teacher OOF.csv or soft winner_* columns",
                       hint="pass --teacher, or train on a pseudo-label file")


def rows_dataset(encoded: list[list[int]], targets: np.ndarray, teacher: np.ndarray,
             swap: tuple[list[list[int]], np.ndarray, np.ndarray] | None = None):
    """Rows with labels packed as [target | teacher]; with `swap`, each row also carries its A/B-swapped twin. A plain
    torch Dataset: the Trainer samples and groups it by length as it does a `datasets` one, and training then needs
    no `datasets` (nor its 52 MiB pyarrow) on a GPU box."""
    columns = {"input_ids": encoded, "labels": np.concatenate([targets, teacher], axis=1).tolist()}
    if swap is not None:
        columns["swap_input_ids"] = swap[0]
        columns["swap_labels"] = np.concatenate([swap[1], swap[2]], axis=1).tolist()
    return RowsDataset(columns)


class RowsDataset:
    """Equal-length columns served row by row as dicts (what PairCollator receives)."""

    def __init__(self, columns: dict[str, list]):
        self.columns = columns
        self.rows = len(next(iter(columns.values())))

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, i: int) -> dict:
        return {name: values[i] for name, values in self.columns.items()}
