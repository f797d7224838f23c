"""`runs`, `leaderboard`: which run scored what, and where the best score stands; plus the ledger notes the other
commands make (a failure to record is one warning line, never a failed command)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from kaggle_kit.cli.app import emit, main, warn
from kaggle_kit.cli.options import KitContext, config_option, json_option, pass_kit
from kaggle_kit.errors import KitError

REFRESH_TIMEOUT_S = 15.0  # `runs` asks Kaggle for pending scores, briefly: the table is the point, not the wait


def note(what: str, record: str, *args, **kwargs):
    """Call `kaggle_kit.ledger.<record>`; whatever goes wrong (the import included) is a warning and the command
    goes on: the ledger is a record of the work, never a reason to lose it."""
    try:
        from kaggle_kit import ledger

        return getattr(ledger, record)(*args, **kwargs)
    except KitError as exc:
        warn(f"{what} not recorded in the runs ledger: {exc.format_line()}")
    except Exception as exc:  # noqa: BLE001 - see the docstring
        warn(f"{what} not recorded in the runs ledger: {type(exc).__name__}: {exc}")
    return None


def note_run(kind: str, out: Path, spec, score_key: str, score_kind: str, figures: dict, settings: dict | None,
             data_files) -> None:
    """A finished train/cv/blend (and average): its headline figure is `figures[score_key]`."""
    note(f"{kind} run", "record_run", kind, out, competition=spec.slug, metric=spec.metric,
         score=figures.get(score_key), score_kind=score_kind, figures=figures, settings=settings,
         data_files=[Path(f) for f in data_files])


def note_scores(spec, subs: list[dict]) -> None:
    note("public scores", "record_scores", spec.slug, subs)


def _refresh(spec) -> None:
    """Ask Kaggle (newest page, short timeout) for the scores of the ledger's pending submissions."""
    from kaggle_kit import ledger
    from kaggle_kit.remote.submit import list_submissions

    if not ledger.pending_refs(spec.slug):
        return
    try:
        subs = list_submissions(spec, limit=20, timeout=REFRESH_TIMEOUT_S)
    except KitError as exc:
        warn(f"public scores not refreshed (shown as recorded): {exc.format_line()}")
        return
    note_scores(spec, subs)


def _short(path: str | None) -> str:
    if not path:
        return "-"
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _run_label(run: dict | None) -> str:
    return "-" if run is None else f"#{run['id']} {run['kind']} {_short(run['model_dir'])}"


def _figure(run: dict | None) -> str:
    if run is None or run["score"] is None:
        return "-"
    return f"{run['score_kind'] or ''} {run['score']:.4f}".strip()


def _submission_label(sub: dict | None) -> str:
    if sub is None:
        return "-"
    what = f"{sub['kernel']} v{sub['kernel_version']}" if sub["kernel"] else _short(sub["file"])
    return f"ref {sub['ref']} {sub['status'] or ''} ({what})"


def _table(rows: list[dict]) -> str:
    lines = [(_run_label(r["run"]), _figure(r["run"]), _submission_label(r["submission"]),
              (r["submission"] or {}).get("public_score") or "-", r["date"].replace("T", " ")[:16]) for r in rows]
    head = ("run", "CV/holdout", "submission", "public", "date")
    widths = [max(len(str(x)) for x in column) for column in zip(head, *lines)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head, *lines])


def _plot(rows: list[dict], spec, path: Path) -> dict:
    """CV/holdout against public score for every run+submission that has both, with Spearman's rank correlation."""
    import math

    from scipy.stats import spearmanr

    from kaggle_kit.plots import cv_vs_public_png
    from kaggle_kit.remote.leaderboard import as_score

    points = [(f"#{r['run']['id']}", r["run"]["score"], as_score(r["submission"]["public_score"])) for r in rows
              if r["run"] and r["submission"] and r["run"]["score"] is not None
              and r["submission"]["competition"] == spec.slug]
    points = [p for p in points if p[2] is not None]
    if len(points) < 2:
        raise KitError(f"runs --plot needs 2 or more submissions with both a CV/holdout figure and a public score; "
                       f"the ledger has {len(points)} for {spec.slug}",
                       hint="submit the output of a recorded run (predict, then submit), and wait for its score")
    rho = float(spearmanr([p[1] for p in points], [p[2] for p in points]).statistic)
    rho = rho if math.isfinite(rho) else 0.0  # all figures equal on one axis: no ranking to agree with
    cv_vs_public_png(points, rho, spec.metric_name, path)
    return {"plot": str(path), "points": len(points), "spearman": rho}


@main.command("runs")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), metavar="FILE.png",
              help="Draw CV/holdout against public score into FILE.png, with Spearman's rank correlation.")
@click.option("--offline", is_flag=True, help="Show the ledger as recorded: do not ask Kaggle for pending scores.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --plot file.")
@config_option
@json_option
@pass_kit
def runs_cmd(kit: KitContext, plot_path: Path | None, offline: bool, overwrite: bool, as_json: bool) -> None:
    """Every recorded run (train, cv, blend, average), newest first: its CV/holdout figure, the submission it led
    to and that submission's public score."""
    from kaggle_kit import ledger
    from kaggle_kit.atomic import check_writable, refuse_overwrite

    if plot_path is not None:
        check_writable(plot_path)
        refuse_overwrite(plot_path, overwrite)
    if not offline and ledger.ledger_file().exists():
        _refresh(kit.spec)
    rows = ledger.runs_table()
    if plot_path is not None:
        drawn = _plot(rows, kit.spec, plot_path)
        emit(drawn, as_json, f"wrote {plot_path}: {drawn['points']} submissions, Spearman rank correlation "
                             f"{drawn['spearman']:+.2f} between CV/holdout and public score")
        return
    if not rows:
        emit([], as_json, f"no runs recorded yet in {ledger.ledger_file()} (train, cv, blend, predict and submit "
                          "record them)")
        return
    emit(rows, as_json, _table(rows))


def _placement_text(spec, best: dict, placement) -> str:
    zone = f"in the {placement.medal} zone" if placement.medal else "outside the medal zones"
    lines = [f"{spec.slug}: your best public score {placement.score:g} (ref {best['ref']}) ranks {placement.rank} "
             f"of {placement.teams} teams (top {placement.percentile:g}%), {zone}"]
    for line in placement.lines:
        if not line.rank:
            lines.append(f"  {line.medal:<6} no {line.medal} medals for {placement.teams} teams")
            continue
        side = "inside by" if line.distance >= 0 else "short by"
        lines.append(f"  {line.medal:<6} top {line.rank:<4} line {line.score:g}: {side} {abs(line.distance):.5g}")
    lines.append("medal lines on the public leaderboard are an estimate: Kaggle awards medals on the private one")
    return "\n".join(lines)


@main.command("leaderboard")
@config_option
@json_option
@pass_kit
def leaderboard_cmd(kit: KitContext, as_json: bool) -> None:
    """Your best public score placed on the public leaderboard: rank, percentile, distance to the medal lines."""
    from kaggle_kit.competition.medals import place
    from kaggle_kit.remote.leaderboard import as_score, best_public_score, lower_is_better, public_leaderboard

    spec = kit.spec
    best = best_public_score(spec)
    board = public_leaderboard(spec)
    placement = place(as_score(best["public_score"]), [t["score"] for t in board if t["score"] is not None],
                      lower_is_better(spec))
    emit({"competition": spec.slug, "submission": best, **placement.as_dict()}, as_json,
         _placement_text(spec, best, placement))
