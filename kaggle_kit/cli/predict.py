"""`predict`, `blend`, `pseudo-label`: inference and the recipes built on it."""

from __future__ import annotations

from pathlib import Path

import click

from kaggle_kit.cli.app import emit, main
from kaggle_kit.cli.options import (
    CONFIG_HINT,
    KitContext,
    config_flags,
    config_option,
    flag_values,
    json_option,
    pass_kit,
)
from kaggle_kit.cli.param_types import PROBABILITY
from kaggle_kit.config import PredictConfig

# The [predict] settings predict and pseudo-label show as flags; the others are --set predict.KEY=VALUE (their old
# flags still work, hidden, and say so in one line).
PREDICT_FLAGS = ("tta", "blend", "time_budget", "batching")


@main.command("predict", epilog=CONFIG_HINT)
@click.option("--test", "test_path", required=True, type=click.Path(path_type=Path), help="test.csv to predict.")
@click.option("--model", "models", multiple=True, type=click.Path(path_type=Path),
              help="Model dir written by train; repeat to ensemble (or --blend blend.json).")
@click.option("--weights", help="Comma-separated ensemble weights, one per --model (default: equal).")
@click.option("--backbone", help="Backbone folder to use instead of the one recorded at training time.")
@config_flags(PredictConfig, first_class=PREDICT_FLAGS)
@click.option("--sample-submission", type=click.Path(path_type=Path),
              help="Row order and ids (default: sample_submission.csv beside test.csv, else test order).")
@click.option("--name", default="submission", show_default=True, help="Written to submissions/<name>.csv.")
@click.option("--out", "out_path", type=click.Path(path_type=Path),
              help="Exact output file instead of submissions/<name>.csv.")
@click.option("--probabilities", "probabilities", type=click.Path(path_type=Path),
              help="Also write the class probabilities here (id + one column per class), e.g. to blend submissions "
                   "of competitions scored on labels.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@config_option
@json_option
@pass_kit
def predict_cmd(kit: KitContext, test_path: Path, models, weights, backbone, sample_submission, name: str, out_path,
                probabilities: Path | None, overwrite: bool, as_json: bool, **flags) -> None:
    """Predict test.csv and write a validated, sample_submission-ordered CSV."""
    from kaggle_kit.config import with_overrides
    from kaggle_kit.inference.run import predict_to_submission
    from kaggle_kit.submission import submission_path

    cfg = with_overrides(kit.config.predict, **flag_values(flags, PredictConfig))
    if cfg.time_budget is not None:
        _not_used(kit, flags, "shard_rows", "is for the sharded, resumable predict; under a time budget "
                                            "(--time-budget / [predict] time_budget) predict runs in one pass and "
                                            "writes no shards")
    path = out_path or submission_path(name)
    result = predict_to_submission(list(models), test_path, path, kit.spec, cfg, _parse_weights(weights), backbone,
                                   sample_submission, overwrite=overwrite, progress=not as_json,
                                   echo=None if as_json else lambda m: click.echo(m, err=True),
                                   probabilities=probabilities)
    if _other_rank(result):
        return
    _note_output(Path(result["path"]), list(models), cfg.blend)
    tta = f", {result['tta_rows']} with swap TTA" if "tta_rows" in result and cfg.tta == "swap" else ""
    batches = (f"; {result['batching']} batches, {result['padding_fraction']:.1%} padding"
               if result.get("batching") else "")
    emit(result, as_json, f"wrote {result['path']} ({result['rows']} rows{tta}, valid) in {result['seconds']:.1f}s"
                          f"{batches}" + _ranks_line(result))


def _note_output(path: Path, models: list[Path], blend: str) -> None:
    """The file and what produced it: the model dirs, or blend.json (its model dirs kept as members)."""
    from kaggle_kit.cli.runs import note

    if not blend.endswith(".json"):
        note(str(path), "record_output", path, models)
        return
    from kaggle_kit.inference.blending import read_blend, used_model_dirs

    note(str(path), "record_output", path, [Path(blend)], members=used_model_dirs(read_blend(Path(blend))))


def _not_used(kit: KitContext, flags: dict, name: str, why: str) -> None:
    """A [predict] setting this run would ignore: given as a flag, refused in one line; set in kaggle-kit.toml (shared
    with runs that use it), said in a note."""
    from kaggle_kit.errors import UsageProblem

    flag = "--" + name.replace("_", "-")
    source = kit.config.sources.get(f"predict.{name}", "default")
    if flags.get(name) is not None or source == "--set":
        raise UsageProblem(f"{flag} {why}", hint=f"drop {flag}")
    if source not in ("default", "flag") and not source.startswith("recipe"):
        click.echo(f"note: [predict] {name} is not used here: it {why}", err=True)


def _other_rank(result: dict) -> bool:
    """A torchrun rank other than 0 says on stderr what it predicted; rank 0 alone prints the result (one JSON)."""
    if result.get("merged") is not False:
        return False
    click.echo(f"rank {result['rank']}/{result['world_size']}: predicted {result['rows']} row(s) in "
               f"{result['shards']} shard(s) in {result['seconds']:.1f}s; rank 0 writes {result['path']}", err=True)
    return True


def _ranks_line(result: dict) -> str:
    """Rank 0's summary of the shards: who predicted what, what an earlier run had already done."""
    if "ranks" not in result:
        return ""
    ranks = ", ".join(f"rank {r['rank']} {r['rows']}" for r in result["ranks"])
    reused = f"; {result['shards_reused']} of {result['shards']} shard(s) kept from an earlier run" \
        if result["shards_reused"] else ""
    return f"\n{result['world_size']} process(es), rows predicted: {ranks}{reused}"


def _parse_weights(weights: str | None) -> list[float] | None:
    if not weights:
        return None
    try:
        return [float(w) for w in weights.split(",")]
    except ValueError:
        raise click.BadParameter(f"'{weights}' is not a comma-separated list of numbers",
                                 param_hint="--weights") from None


def _backbone_sources(values: tuple[str, ...]) -> dict[str, str]:
    """NAME=REF pairs, each REF a source an infer kernel can mount (checked now, not in the kernel)."""
    from kaggle_kit.kernel.inputs import metadata_sources

    sources: dict[str, str] = {}
    for value in values:
        name, sep, ref = value.partition("=")
        problem = None if sep and name else "must be NAME=REF"
        if problem is None:
            try:  # build-kernel's own check (a Kaggle Model needs its version in model_sources), made now
                metadata_sources([ref])
            except ValueError as exc:
                problem = str(exc)
        if problem or ref.startswith("kernel:"):
            raise click.BadParameter(f"'{value}': {problem or 'a backbone comes from a dataset or a Kaggle Model'}",
                                     param_hint="--backbone-source")
        sources[name] = ref
    return sources


@main.command("blend")
@click.option("--oof", "oofs", multiple=True, required=True,
              help="An oof.csv of `cv` (its fold models are found via cv.json), or FILE=MODEL_DIR[,MODEL_DIR]; repeat.")
@click.option("--train", "train_files", multiple=True, type=click.Path(path_type=Path),
              help="The training file(s) of the OOF rows: test the post-processing rules on them.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="blend.json to write.")
@click.option("--backbone-source", "backbone_sources", multiple=True, metavar="NAME=REF",
              help="Where an infer kernel finds the backbone folder NAME of some members: a dataset owner/slug or a "
                   "Kaggle Model owner/model/framework/variation/version; repeat per backbone (default: [datasets] "
                   "backbone).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@config_option
@json_option
@pass_kit
def blend_cmd(kit: KitContext, oofs, train_files, out: Path, backbone_sources, overwrite: bool,
              as_json: bool) -> None:
    """Fit non-negative weights and a temperature on OOF predictions; keep only rules that help; write blend.json."""
    from kaggle_kit.atomic import check_writable, refuse_overwrite, refuse_same_file
    from kaggle_kit.inference.blending import fit_blend, parse_member, save_blend

    check_writable(out)
    sources = _backbone_sources(backbone_sources)  # before reading or fitting anything
    members = [parse_member(o) for o in oofs]
    refuse_same_file(out, [*(m.oof for m in members), *train_files])
    refuse_overwrite(out, overwrite)
    fitted = fit_blend(members, kit.spec, list(train_files), kit.config.column_maps, sources)
    save_blend(fitted, out, overwrite=overwrite)
    r = fitted.report
    lines = [f"{m.name}: OOF log loss {m.oof_log_loss:.4f}, weight {m.weight:.3f}" for m in fitted.members]
    best = r["best_single"]
    lines.append(f"blend: OOF log loss {r['cv_blend_log_loss']:.4f} cross-validated, {r['blend_log_loss']:.4f} "
                 f"in-sample, over {r['rows']} rows (best single {best['name']} {best['log_loss']:.4f}), temperature "
                 f"{fitted.temperature:.3f}")
    if not r["fitted_blend_kept"]:
        lines.append(f"blend: the fitted weights do not beat {best['name']} out of fold: {best['name']} alone is kept")
    if kit.spec.metric != "log_loss" and f"blend_{kit.spec.metric}" in r:  # log loss: said on the line above
        lines.append(f"blend: OOF {kit.spec.metric_name} {r['blend_' + kit.spec.metric]:.4f} in-sample (the "
                     "competition's metric, with the weights fitted on these rows)")
    if isinstance(r["rules"], list):
        lines += [f"rule {x['rule']}: {x['rows']} row(s), cross-validated log loss {x['log_loss_before']:.4f} -> "
                  f"{x['log_loss_after']:.4f}: {'kept' if x['kept'] else 'dropped'}" for x in r["rules"]]
    else:
        lines.append(f"rules: {r['rules']}")
    lines.append(f"wrote {out}")
    _note_blend(kit.spec, out, r, oofs, sources, [*(m.oof for m in members), *train_files])
    data = {"out": str(out), "temperature": fitted.temperature, "rules": fitted.rules, **r,
            "members": [{"name": m.name, "weight": m.weight, "oof_log_loss": m.oof_log_loss} for m in fitted.members]}
    emit(data, as_json, "\n".join(lines))


def _note_blend(spec, out: Path, report: dict, oofs, sources: dict, data_files) -> None:
    from kaggle_kit.cli.runs import note_run

    figures = {k: v for k, v in report.items() if isinstance(v, float)}
    # what blend.json predicts: the fitted blend, or the best single member when the fit did not beat it
    figures["kept_log_loss"] = (report["cv_blend_log_loss"] if report["fitted_blend_kept"]
                                else report["best_single"]["log_loss"])
    key = "kept_log_loss" if spec.metric == "log_loss" else f"blend_{spec.metric}"
    note_run("blend", out, spec, key, "oof blend", figures, {"oof": list(oofs), "backbone_sources": sources},
             data_files)


@main.command("pseudo-label", epilog=CONFIG_HINT)
@click.option("--model", "models", multiple=True, type=click.Path(path_type=Path),
              help="Model dir written by train; repeat to blend (or --blend blend.json).")
@click.option("--weights", help="Comma-separated weights, one per --model (default: equal).")
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="Unlabelled pairs in test format (id, prompt, response_a, response_b; extra columns ignored).")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path),
              help="Train-format CSV to write (winner_* columns hold probabilities; a label column the most probable "
                   "class).")
@click.option("--min-confidence", default=0.0, show_default=True, type=PROBABILITY,
              help="Keep only rows whose most likely class has at least this probability.")
@click.option("--backbone", help="Backbone folder to use instead of the one recorded at training time.")
@config_flags(PredictConfig, first_class=PREDICT_FLAGS)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@config_option
@json_option
@pass_kit
def pseudo_label_cmd(kit: KitContext, models, weights, input_path: Path, out_path: Path, min_confidence: float,
                     backbone, overwrite: bool, as_json: bool, **flags) -> None:
    """Predict unlabelled pairs and write them as soft labels (hard labels where the train file holds a class value):
    `train --train train.csv --train PL.csv` uses them."""
    from kaggle_kit.config import with_overrides
    from kaggle_kit.inference.pseudo_label import pseudo_label

    cfg = with_overrides(kit.config.predict, **flag_values(flags, PredictConfig))
    _not_used(kit, flags, "time_budget", "is for predict: pseudo-label labels every row, in resumable shards")
    note = kit.spec.pseudo_label_note()
    if note and not as_json:
        click.echo(f"note: {note}", err=True)
    r = pseudo_label(list(models), input_path, out_path, kit.spec, cfg, _parse_weights(weights), min_confidence,
                     backbone, overwrite=overwrite, progress=not as_json,
                     echo=None if as_json else lambda m: click.echo(m, err=True))
    if _other_rank(r):
        return
    r = {**r, "notes": [note]} if note else r
    emit(r, as_json, f"wrote {r['path']}: {r['rows']} of {r['rows_in']} rows (mean confidence "
                     f"{r['mean_confidence']:.3f}; {r['dropped_low_confidence']} below --min-confidence)"
                     + _ranks_line(r))
