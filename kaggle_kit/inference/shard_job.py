"""The models of a predict / pseudo-label run as a sharded job (shards.py): which model dirs, how their probabilities
combine (predict.blend for a --model list, blending.combine_folds for a blend.json), and what the shards'
fingerprint covers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kaggle_kit.atomic import file_sha256
from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.config import PredictConfig
from kaggle_kit.data.reading import Pairs
from kaggle_kit.errors import UsageProblem
from kaggle_kit.inference.fingerprints import folder_fingerprint, rows_digest
from kaggle_kit.inference.shards import ShardJob, World, current_world, run_sharded


@dataclass
class ModelSet:
    model_dirs: list[Path]
    backbones: list[str | None]
    combine: Callable[[list[np.ndarray]], np.ndarray]


def plain_models(model_dirs: list[Path], weights: list[float] | None, how: str, backbone: str | None) -> ModelSet:
    from kaggle_kit.inference.predict import blend

    def combine(sets: list[np.ndarray]) -> np.ndarray:  # one model alone, else predict.blend
        return sets[0] if len(sets) == 1 and not weights else blend(sets, weights, how)

    return ModelSet(list(model_dirs), [backbone] * len(model_dirs), combine)


def fitted_models(fitted, backbone: str | None) -> ModelSet:
    """A blend.json's members with weight > 0, model dir by model dir, combined fold by fold
    (blending.combine_folds)."""
    from kaggle_kit.inference.blending import combine_folds

    used = [m for m in fitted.members if m.weight > 0]
    dirs = [d for m in used for d in m.model_dirs]
    backbones = [backbone or m.backbone for m in used for _ in m.model_dirs]
    sizes = [len(m.model_dirs) for m in used]

    def combine(sets: list[np.ndarray]) -> np.ndarray:
        starts = np.cumsum([0, *sizes])
        member_sets = [sets[starts[k]:starts[k + 1]] for k in range(len(used))]
        return combine_folds(member_sets, [m.weight for m in used], fitted.temperature)

    return ModelSet(dirs, backbones, combine)


def refuse_budget_under_torchrun(cfg: PredictConfig, budget, world: World | None = None) -> None:
    world = world or current_world()
    if world.sharded and (budget is not None or cfg.time_budget is not None):
        raise UsageProblem(f"--time-budget is for one process; this is rank {world.rank} of {world.size} under "
                           "torchrun", hint="drop --time-budget (the shards make a stopped run resume instead)")


def row_tokens(model_dir: Path, pairs: Pairs) -> np.ndarray:
    """Each row's encoded length under the first model's tokenizer and encoding (what a forward pass costs)."""
    from kaggle_kit.inference.predict import encoder_for
    from kaggle_kit.model.backbone import load_tokenizer
    from kaggle_kit.model.model_dir import TrainedModel, read_model_info, tokenizer_dir

    tokenizer = load_tokenizer(tokenizer_dir(model_dir))
    encoder = encoder_for(TrainedModel(model=None, tokenizer=tokenizer, info=read_model_info(model_dir)))
    return np.asarray([len(ids) for ids in encoder.encode(pairs)])


def shard_settings(cfg: PredictConfig, weights: list[float] | None, spec: CompetitionSpec) -> dict:
    """The settings the shards' numbers depend on: precision as it resolves on this machine ("auto" is bf16 on one
    GPU, fp16 on another). Not --max-tokens (it only regroups rows into batches: lowering it after an out-of-memory
    stop keeps the shards), nor --shard-rows (a resumed run keeps the earlier cut), nor the output path, nor the
    post-processing (rules, --min-confidence) done after the merge."""
    from kaggle_kit.model.backbone import choose_precision

    blend = cfg.blend if not cfg.blend.endswith(".json") else "json:" + file_sha256(Path(cfg.blend))
    return {"competition": spec.slug, "tta": cfg.tta, "blend": blend, "weights": weights,
            "precision": choose_precision(cfg.precision).name, "quantize": cfg.quantize}


def shard_fingerprint(models: ModelSet, pairs: Pairs, settings: dict) -> dict:
    """Everything the shards' numbers hang on: the rows, each model dir's prediction files (not its metrics, report
    or checkpoints), the backbone folder each one loads (--backbone, or the one recorded; a mounted dataset's new
    version can sit under the same path) and the settings."""
    from kaggle_kit.model.model_dir import MERGED_DIR, PREDICTION_ENTRIES, find_backbone, read_model_info

    backbones = []
    for model_dir, override in zip(models.model_dirs, models.backbones):
        if (Path(model_dir) / MERGED_DIR / "config.json").exists():
            backbones.append(None)  # a merged model loads no backbone
            continue
        backbones.append(folder_fingerprint(find_backbone(Path(model_dir), read_model_info(model_dir), override)))
    return {"input": rows_digest(pairs.ids, pairs.texts),
            "models": [folder_fingerprint(d, PREDICTION_ENTRIES) for d in models.model_dirs],
            "backbones": backbones, "settings": settings}


def predict_in_shards(kind: str, models: ModelSet, pairs: Pairs, spec: CompetitionSpec, cfg: PredictConfig,
                      input_path: Path, out_path: Path, weights: list[float] | None, overwrite: bool,
                      progress: bool, echo: Callable[[str], None] | None) -> tuple[np.ndarray | None, dict]:
    """The combined probabilities in input order (None on ranks other than 0) and the shard report."""
    from kaggle_kit.inference.placement import load_placed
    from kaggle_kit.inference.predict import gpu_replicas, predict_probs
    from kaggle_kit.model.backbone import free_model_memory, rank_device
    from kaggle_kit.model.batching import BatchStats
    from kaggle_kit.model.model_dir import load_trained

    loaded: dict[int, tuple] = {}  # model index -> (the model, its copies on the other GPUs), loaded once
    stats = BatchStats()

    def predict(model: int, rows: list[int]) -> np.ndarray:
        if model not in loaded:
            release()
            trained = load_placed(load_trained, models.model_dirs[model], models.backbones[model], cfg,
                                  device=rank_device())
            loaded[model] = (trained, gpu_replicas(trained.model, trained.reload))
        trained, replicas = loaded[model]
        return predict_probs(trained, pairs.subset(rows), spec, cfg.max_tokens, tta=cfg.tta, progress=False,
                             replicas=replicas, batching=cfg.batching, stats=stats)

    def release() -> None:
        if loaded:
            loaded.clear()
            free_model_memory()

    job = ShardJob(kind=kind, rows=len(pairs), num_labels=spec.num_labels, shard_rows=cfg.shard_rows,
                   fingerprint=lambda: shard_fingerprint(models, pairs, shard_settings(cfg, weights, spec)),
                   model_count=len(models.model_dirs), predict=predict, release=release,
                   costs=lambda: row_tokens(models.model_dirs[0], pairs), cost_per_row=2 if cfg.tta == "swap" else 1,
                   progress=progress, echo=echo or (lambda message: None))
    prob_sets, report = run_sharded(job, out_path, overwrite)
    # models: each model dir is one pass over the rows (an averaged model is one); the tokens: this run's shards
    report = {**report, "models": len(models.model_dirs), **stats.report()}
    return (None if prob_sets is None else models.combine(prob_sets)), report
