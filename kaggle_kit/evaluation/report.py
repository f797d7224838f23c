"""`kaggle-kit report MODEL_DIR`: holdout metrics vs the prior, confusion matrix, reliability diagram, loss curves."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from kaggle_kit.atomic import write_text_atomic
from kaggle_kit.errors import KitError
from kaggle_kit.metrics import accuracy, log_loss
from kaggle_kit.model.model_dir import CURVES_FILE, HOLDOUT_FILE, METRICS_FILE, REPORT_DIR, read_model_info
from kaggle_kit.plots import confusion_png, reliability_png, training_curves_png

REPORT_FILES = ("confusion_matrix.png", "reliability.png", CURVES_FILE, "report.html")


def build_report(model_dir: Path, out: Path | None = None, overwrite: bool = False) -> dict:
    holdout_path, metrics_path = model_dir / HOLDOUT_FILE, model_dir / METRICS_FILE
    if not holdout_path.exists() or not metrics_path.exists():
        raise KitError(f"{model_dir} has no {HOLDOUT_FILE}/{METRICS_FILE}",
                       hint="pass a folder written by `kaggle-kit train`")
    try:
        metrics = json.loads(metrics_path.read_text())
    except json.JSONDecodeError:
        raise KitError(f"{metrics_path} is corrupt", hint="train the model again") from None
    names = read_model_info(model_dir).get("label_columns") or []
    frame = pd.read_csv(holdout_path)
    labels = frame["label"].to_numpy(dtype=int)
    probs = frame[names].to_numpy(dtype=float)
    out = out or model_dir / REPORT_DIR
    existing = [name for name in REPORT_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise KitError(f"{out} already holds a report", hint="pass --overwrite to replace it, or choose --out")
    out.mkdir(parents=True, exist_ok=True)
    matrix = confusion_png(labels, probs, names, out / "confusion_matrix.png")
    reliability_png(labels, probs, out / "reliability.png")
    training_curves_png(metrics, out / CURVES_FILE)
    summary = {"rows": int(len(labels)), "log_loss": log_loss(labels, probs),
               "accuracy": accuracy(labels, probs), "prior_log_loss": metrics["prior_log_loss"],
               "temperature": metrics.get("temperature"), "best_step": metrics.get("best_step"),
               "confusion_matrix": matrix.tolist(), "html": str(out / "report.html")}
    _write_html(out, model_dir, summary, names)
    return summary


def _write_html(out: Path, model_dir: Path, s: dict, names: list[str]) -> None:
    def img(name: str) -> str:  # embedded, so the page is one self-contained file; also linked to the PNG beside it
        data = base64.b64encode((out / name).read_bytes()).decode()
        return f'<a href="{name}"><img alt="{name}" src="data:image/png;base64,{data}"></a>'

    gain = s["prior_log_loss"] - s["log_loss"]
    rows = "".join(f"<tr><th>{html.escape(names[i])}</th>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
                   for i, row in enumerate(s["confusion_matrix"]))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>kaggle-kit report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{padding:4px 10px;border:1px solid #ccc}}
img{{max-width:48%;margin:1%}}</style></head><body>
<h1>Holdout report: {html.escape(str(model_dir))}</h1>
<table><tr><th>rows</th><td>{s['rows']}</td></tr>
<tr><th>log loss (calibrated)</th><td>{s['log_loss']:.4f}</td></tr>
<tr><th>class-prior baseline</th><td>{s['prior_log_loss']:.4f} ({gain:+.4f} nats better)</td></tr>
<tr><th>accuracy</th><td>{s['accuracy']:.3f}</td></tr>
<tr><th>temperature</th><td>{s['temperature']}</td></tr><tr><th>best step</th><td>{s['best_step']}</td></tr></table>
<h2>Confusion matrix (rows: true, columns: predicted)</h2>
<table><tr><th></th>{''.join(f'<th>{html.escape(n)}</th>' for n in names)}</tr>{rows}</table>
<h2>Plots</h2>{img('confusion_matrix.png')}{img('reliability.png')}{img(CURVES_FILE)}
</body></html>"""
    write_text_atomic(out / "report.html", page)
