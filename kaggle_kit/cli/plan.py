"""`plan train` and `plan infer`: memory and time plans before a kernel runs."""

from __future__ import annotations

from pathlib import Path

import click

from kaggle_kit.cli.app import KitGroup, emit, main
from kaggle_kit.cli.options import (
    KitContext,
    config_option,
    json_option,
    pass_kit,
)


@main.group("plan", cls=KitGroup)
def plan_group() -> None:
    """Estimate memory and time before pushing a kernel."""


@plan_group.command("train")
@click.option("--recipe", required=True, help="Recipe name (`kaggle-kit recipes`).")
@click.option("--gpus", type=click.Choice(["t4x2", "l4", "t4", "a100x8", "h100x8"]), default="t4x2",
              show_default=True,
              help="Kaggle GPU: T4 x2 (NvidiaTeslaT4, memory per device; two DDP ranks, 4-bit included), one L4 "
                   "(NvidiaL4, 24 GB, bf16), or one T4 device; or beyond Kaggle, nodes of 8 A100 / H100 80 GB "
                   "training sharded (--nodes, --shard).")
@click.option("--nodes", type=click.IntRange(min=1), default=1, show_default=True,
              help="With a100x8 / h100x8: how many such machines share the run.")
@click.option("--shard", "engine", type=click.Choice(["zero3", "zero2"]),
              help="With a100x8 / h100x8: zero3 (train --fsdp full_shard, or train --deepspeed zero3) divides "
                   "weights, gradients and optimizer states; zero2 (train --fsdp shard_grad_op, or train --deepspeed "
                   "zero2: 4-bit too) gradients and optimizer states; the plan names the flags train accepts.  "
                   "[default: zero3]")
@click.option("--backbone-config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A backbone's config.json (e.g. a 72B teacher's) planned with the recipe's settings.")
@click.option("--batch-size", type=click.IntRange(1, 4096), help="Rows per device (default: the recipe's).")
@click.option("--max-len", type=click.IntRange(16, 1 << 20), help="Tokens per row (default: the recipe's).")
@click.option("--full-swap", is_flag=True, help="Plan train --full-swap: each row beside its swapped twin.")
@json_option
def plan_train_cmd(recipe: str, gpus: str, nodes: int, engine: str, backbone_config: Path | None,
                   batch_size: int | None, max_len: int | None, full_swap: bool, as_json: bool) -> None:
    """Weights + LoRA + activations of a recipe's training step against the GPU's memory: fits or not."""
    from kaggle_kit.model.backbone_shape import read_backbone_shape

    shape = read_backbone_shape(backbone_config) if backbone_config else None
    if gpus in ("a100x8", "h100x8"):
        from kaggle_kit.training.sharded_plan import plan_sharded

        if full_swap:
            raise click.BadParameter("is planned for Kaggle's GPUs (t4x2, l4, t4), not a sharded cluster",
                                     param_hint="--full-swap")
        plan = plan_sharded(recipe, gpus, nodes, engine or "zero3", batch_size, max_len, shape)
    else:
        from kaggle_kit.training.memory_plan import plan_train

        if nodes != 1:
            raise click.BadParameter("is for a100x8 / h100x8 (a Kaggle session is one machine)",
                                     param_hint="--nodes")
        if engine is not None:
            raise click.BadParameter(f"{engine} is for a100x8 / h100x8 (one Kaggle GPU holds the whole model; T4 x2 "
                                     "trains DDP)", param_hint="--shard")
        plan = plan_train(recipe, gpus, batch_size, max_len, shape=shape, full_swap=full_swap)
    emit(plan.to_dict(), as_json, plan.summary())


@plan_group.command("infer")
@click.option("--from", "source", required=True, type=click.Path(path_type=Path),
              help="A measured throughput: `predict --time-budget --json` output, a kernel's kaggle_kit_run.json or "
                   "`bench predict --json` output.")
@click.option("--rows", type=click.IntRange(min=1), help="Hidden test rows (default: the competition's).")
@click.option("--limit", help="Runtime limit, e.g. 9h (default: the competition's).")
@click.option("--budget", "time_budget",
              help="The kernel's time budget (default: [predict] time_budget, else a safe share of the limit).")
@click.option("--max-len", "max_lens", multiple=True, type=click.IntRange(min=16),
              help="max_len to project (repeatable; default: the measured one).")
@click.option("--models", default=2, show_default=True, type=click.IntRange(1, 8),
              help="Project blends of 1 up to this many models.")
@click.option("--model", "model_dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Instead of --models: the model dirs the kernel will run (repeat); an averaged model is one pass.")
@click.option("--gpus", type=click.Choice(["t4x2", "l4"]),
              help="Project for Kaggle's T4 x2 (2 replicas) or one L4 (1 replica) at the measured per-GPU speed "
                   "(default: as measured).")
@click.option("--backbone-config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The backbone's config.json: also show where its weights go on the GPUs (fp16 or 4-bit replica "
                   "per GPU, or fp16 layers split over them), with the memory of each.")
@config_option
@json_option
@pass_kit
def plan_infer_cmd(kit: KitContext, source: Path, rows, limit, time_budget, max_lens, models, model_dirs, gpus,
                   backbone_config: Path | None, as_json) -> None:
    """Project the infer kernel's runtime on the hidden test per option set (TTA, max_len, models); flag misfits."""
    from kaggle_kit.config.durations import default_budget, format_duration, parse_duration
    from kaggle_kit.inference.plan_infer import plan_dict, plan_infer, plan_table, read_measurement

    spec = kit.spec
    limit_s = _duration(limit, "--limit") if limit else spec.time_limit_s
    if not limit_s:
        raise click.UsageError(f"no runtime limit known for {spec.slug}: pass --limit")
    rows = rows or spec.hidden_test_rows
    if not rows:
        raise click.UsageError(f"no hidden test size known for {spec.slug}: pass --rows")
    budget_s = (_duration(time_budget, "--budget") if time_budget else
                parse_duration(kit.config.predict.time_budget) if kit.config.predict.time_budget is not None else
                default_budget(limit_s))
    if budget_s > limit_s:  # a budgeted run would be stopped at the limit: nothing past it "fits"
        origin = "--budget" if time_budget else "[predict] time_budget"
        raise click.BadParameter(f"the budget {format_duration(budget_s)} is above the runtime limit "
                                 f"{format_duration(limit_s)}", param_hint=origin)
    passes = None
    if model_dirs:
        from kaggle_kit.inference.plan_infer import model_passes

        if click.get_current_context().get_parameter_source("models") != click.core.ParameterSource.DEFAULT:
            raise click.UsageError("--model counts the passes itself: drop --models")
        passes = model_passes(list(model_dirs))
        models = len(passes)
    measured = read_measurement(source)
    if gpus:
        from kaggle_kit.inference.plan_infer import retarget

        measured = retarget(measured, gpus)
    projections = plan_infer(measured, rows, budget_s, limit_s, list(max_lens) or [measured.max_len], models)
    data, text = plan_dict(measured, rows, budget_s, limit_s, projections), plan_table(measured, rows, budget_s,
                                                                                        limit_s, projections)
    if passes is not None:
        from kaggle_kit.inference.plan_infer import describe_passes

        data, text = {**data, "passes": len(passes), "model_passes": passes}, f"{describe_passes(passes)}\n{text}"
    if backbone_config is not None:
        from kaggle_kit.inference.placement import placement_plan, placement_table
        from kaggle_kit.model.backbone_shape import read_backbone_shape

        placement = placement_plan(read_backbone_shape(backbone_config), gpus or "t4x2",
                                   max(list(max_lens) or [measured.max_len]), kit.config.predict.max_tokens)
        data["placement"] = placement
        text += "\n" + placement_table(placement)
    emit(data, as_json, text)


def _duration(value: str, flag: str) -> float:
    from kaggle_kit.config.durations import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} {exc}", param_hint=flag) from None
