"""The Kaggle Model card of a trained model dir: what it was trained for and on, its lineage, its settings, its
holdout/CV figures with what they were measured on, and how to load it (kaggle-kit, or transformers + peft).

The client passes every card field through `bleach.clean` (kaggle_api_extended.py `sanitize_markdown`), which turns
'<', '>' and '&' into entities: the card is written without them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from kaggle_kit.config.kaggle_models import ModelHandle, kaggle_license
from kaggle_kit.model.limits import json_object

KAGGLE_INPUT_MODEL = re.compile(r"/kaggle/input/models/([^/]+)/([^/]+)/([^/]+)/([^/]+)/(\d+)/?$")
KAGGLE_MODEL_REF = re.compile(r"^[^/]+/[^/]+/[^/]+/[^/]+/\d+$")
DATASET_REF = re.compile(r"^[A-Za-z0-9_-]+/[A-Za-z0-9_.-]+$")
HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
PATH_SETTINGS = ("backbone", "train_files", "teacher", "exclude_test")  # local paths: only their names are shown
HIDDEN_SETTINGS = ("report_to", "save_total_limit", "calibrate")


@dataclass
class Lineage:
    """Where the backbone came from, in the fields `model-instance-metadata.json` takes."""

    backbone: str  # as the card names it
    instance_type: str = "Unspecified"  # the client's ModelInstanceType names: KaggleVariant, ExternalVariant
    base_model_instance: str = ""  # owner/model/framework/variation of a Kaggle Model backbone
    external_url: str = ""
    license: str | None = None  # the backbone's own licence, when its folder says


@dataclass
class ModelCard:
    title: str
    subtitle: str
    description: str  # the model's page
    overview: str  # the variation's summary
    usage: str  # the variation's usage markdown
    version_notes: str
    lineage: Lineage
    figures: dict = field(default_factory=dict)


def backbone_license(folder: Path) -> str | None:
    """The licence a Hugging Face backbone's README front matter declares (`license:`, or `license_name:` for
    'other'), or None."""
    try:
        text = (folder / "README.md").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if not text.startswith("---"):
        return None
    front = text.split("---", 2)[1] if text.count("---") >= 2 else ""
    found = dict(re.findall(r"^(license|license_name):\s*['\"]?([^'\"\n]+?)['\"]?\s*$", front, re.M))
    name = found.get("license")
    return found.get("license_name", name) if name == "other" else name


def lineage(info: dict, backbone_ref: str | None) -> Lineage:
    """The backbone as a Kaggle Model (`baseModelInstance`), a Hugging Face id (`externalBaseModelUrl`) or a name.
    The project's `[datasets] backbone` counts only when it names the folder the model was trained on."""
    path = str(info.get("backbone") or "")
    folder = Path(path)
    lic = backbone_license(folder) if path else None
    mounted = KAGGLE_INPUT_MODEL.search(path)
    if backbone_ref and folder.name not in backbone_ref.split("/")[1:]:
        backbone_ref = None  # the project's [datasets] backbone is not the folder this model was trained on
    ref = "/".join(mounted.groups()) if mounted else (
        backbone_ref if backbone_ref and KAGGLE_MODEL_REF.match(backbone_ref) else None)
    if ref:
        return Lineage(ref, "KaggleVariant", ref.rsplit("/", 1)[0], license=lic)
    hf = str(json_object(folder / "config.json").get("_name_or_path") or "")
    if HF_ID.match(hf) and not Path(hf).exists():
        return Lineage(hf, "ExternalVariant", external_url=f"https://huggingface.co/{hf}", license=lic)
    return Lineage(backbone_ref or folder.name or "unknown", license=lic)


def _figures(model_dir: Path, metrics: dict) -> dict:
    """Holdout and (for a fold of a cv run) out-of-fold figures, each with what it was measured on."""
    out: dict = {}
    holdout = metrics.get("holdout") or {}
    if "log_loss" in holdout:
        out["holdout"] = {k: holdout.get(k) for k in ("rows", "log_loss", "accuracy", "log_loss_calibrated")}
        out["holdout"]["prior_log_loss"] = metrics.get("prior_log_loss")
        out["holdout"]["learned"] = metrics.get("learned")
    cv = json_object(model_dir.parent / "cv.json") if model_dir.name.startswith("fold-") else {}
    if "oof_log_loss" in cv:
        out["cv"] = {k: cv.get(k) for k in ("folds", "rows", "oof_log_loss", "mean_log_loss", "std_log_loss")}
    return out


def _number(value, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "n/a"


def _setting(key: str, value) -> str:
    if key in PATH_SETTINGS:
        value = [Path(v).name for v in value] if isinstance(value, list) else Path(str(value)).name
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _measured_on(info: dict, metrics: dict) -> str:
    cfg = info.get("train_config") or {}
    files = ", ".join(Path(f).name for f in cfg.get("train_files") or []) or "the training data"
    rows = (metrics.get("rows") or {}).get("holdout") or (metrics.get("holdout") or {}).get("rows")
    if cfg.get("fold"):
        return f"fold {cfg['fold']} of {files} ({rows} rows, grouped by prompt), never trained on"
    return (f"a holdout of {rows} rows of {files}, split off before training (grouped by prompt, seed "
            f"{cfg.get('seed')}), never trained on")


def _settings_table(info: dict) -> str:
    cfg = info.get("train_config") or {}
    rows = [f"| {k} | {_setting(k, v)} |" for k, v in cfg.items()
            if v is not None and v != [] and k not in HIDDEN_SETTINGS]
    return "\n".join(["| setting | value |", "| --- | --- |", *rows])


def _describe_figures(figures: dict, measured_on: str, metric: str) -> list[str]:
    lines = []
    if "holdout" in figures:
        h = figures["holdout"]
        lines.append(f"- Holdout log loss **{_number(h['log_loss'])}** (accuracy {_number(h['accuracy'], 3)}, "
                     f"after calibration {_number(h['log_loss_calibrated'])}; predicting the class prior scores "
                     f"{_number(h['prior_log_loss'])}), measured on {measured_on}.")
        if h.get("learned") is False:
            lines.append("- This run is no better than the class prior on its holdout.")
    if "cv" in figures:
        c = figures["cv"]
        lines.append(f"- Cross-validation: out-of-fold log loss **{_number(c['oof_log_loss'])}** over {c['folds']} "
                     f"folds ({c['rows']} rows; per fold {_number(c['mean_log_loss'])} +- "
                     f"{_number(c['std_log_loss'])}); this variation is one of those folds.")
    if not lines:
        lines.append("- No holdout figures were found in the model dir (metrics.json).")
    lines.append(f"- The competition scores {metric}; a public leaderboard score is not part of this card.")
    return lines


def _usage(handle: ModelHandle, info: dict, line: Lineage, model_dir: Path) -> str:
    mount = f"/kaggle/input/models/{handle.owner}/{handle.model}/{handle.framework.lower()}/{handle.variation}"
    path = f"{mount}/${{VERSION_NUMBER}}"
    columns = ", ".join(info.get("label_columns") or [])
    enc = info.get("encoding") or {}
    merged = (model_dir / "merged" / "config.json").exists()
    labels = info.get("num_labels")
    load = ([f'model = AutoModelForSequenceClassification.from_pretrained(path + "/merged", num_labels={labels})']
            if merged else
            [f'backbone = "/kaggle/input/..."  # the backbone it was trained on: {line.backbone}',
             f'base = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels={labels})',
             'model = PeftModel.from_pretrained(base, path + "/adapter").merge_and_unload().eval()'])
    side = ("\nThis model adds a small side head on response lengths to its logits: exact probabilities need "
            "kaggle-kit (`predict` or `load_trained`).\n" if info.get("side_head") else "")
    known = KAGGLE_MODEL_REF.match(line.backbone) or DATASET_REF.match(line.backbone)
    backbone_line = (f'backbone = "{line.backbone}"' if known
                     else 'backbone = "owner/slug"  # the dataset or Kaggle Model holding the backbone')
    return "\n".join([
        "# Model Usage",
        "",
        f"Add this model to a notebook; version ${{VERSION_NUMBER}} is mounted at `{path}`.",
        "",
        "## With kaggle-kit",
        "",
        "In `kaggle-kit.toml`, then `kaggle-kit build-kernel infer` and `kaggle-kit push-kernel`:",
        "",
        "```toml",
        "[datasets]",
        f'model = "{handle.ref}/${{VERSION_NUMBER}}"',
        backbone_line,
        "```",
        "",
        "On your machine, after downloading it: `kaggle-kit predict --model MODEL_DIR --test test.csv`; in Python",
        "`kaggle_kit.model.model_dir.load_trained(Path(MODEL_DIR))`.",
        "",
        "## With transformers + peft",
        "",
        "```python",
        "import json",
        "import torch",
        "from peft import PeftModel",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
        "",
        f'path = "{path}"',
        'info = json.load(open(path + "/kaggle_kit_model.json"))',
        'tokenizer = AutoTokenizer.from_pretrained(path + "/tokenizer")',
        *load,
        "batch = ...  # token ids of your rows, encoded as described below",
        "with torch.no_grad():",
        "    logits = model(**batch).logits",
        'probabilities = torch.softmax(logits / info["temperature"], dim=-1)',
        "```",
        "",
        f"Outputs, in order: {columns}. Inputs are encoded as kaggle-kit encodes them (template "
        f"`{enc.get('template')}`, fields {', '.join(enc.get('fields') or [])}, {enc.get('max_len')} tokens, "
        f"{enc.get('truncate')} truncation; `info[\"encoding\"]` holds every detail and "
        "`kaggle_kit.data.encode.Encoder` reproduces it).",
        side,
    ]).rstrip() + "\n"


def build_card(model_dir: Path, handle: ModelHandle, license_name: str, backbone_ref: str | None = None,
               title: str | None = None) -> ModelCard:
    """The card of `model_dir` (read_model_info has checked it) for `handle`."""
    from kaggle_kit.competition.spec import get_spec
    from kaggle_kit.errors import KitError
    from kaggle_kit.model.model_dir import METRICS_FILE, read_model_info

    info = read_model_info(model_dir)
    metrics = json_object(model_dir / METRICS_FILE)
    line = lineage(info, backbone_ref)
    competition = str(info.get("competition") or "unknown")
    try:
        metric = get_spec(competition).metric
    except KitError:
        metric = str(metrics.get("metric") or "its metric")
    figures = _figures(model_dir, metrics)
    measured_on = _measured_on(info, metrics)
    recipe = (info.get("recipe") or {}).get("recipe")
    backbone_lic = (f" Its licence: {line.license}" + (f" (on Kaggle: {kaggle_license(line.license)})."
                                                      if kaggle_license(line.license) else ".")
                    if line.license else "")
    lines = [
        f"# {title or handle.model}",
        "",
        f"A LoRA sequence classifier for the Kaggle competition [{competition}]"
        f"(https://www.kaggle.com/competitions/{competition}), trained with kaggle-kit "
        f"{info.get('kaggle_kit_version', '')}: for each row it gives the probabilities of "
        f"{', '.join(info.get('label_columns') or [])}.",
        "",
        "## Backbone and lineage",
        "",
        f"- Backbone: {line.backbone} ({info.get('model_type')}, trained in {info.get('trained_precision')}"
        + (f", quantised {info['train_config']['quantize']}" if (info.get('train_config') or {}).get('quantize')
           else "") + ")." + backbone_lic,
        f"- This variation is published under {license_name}.",
        "",
        "## Evaluation",
        "",
        *_describe_figures(figures, measured_on, metric),
        "",
        "## Recipe and settings",
        "",
        f"Recipe: {recipe or 'none'}" + (" (chosen for the backbone)" if (info.get("recipe") or {}).get("auto")
                                         else "") + "; settings as trained:",
        "",
        _settings_table(info),
        "",
    ]
    description = "\n".join(lines)
    holdout = figures.get("holdout")
    summary = (f"holdout log loss {_number(holdout['log_loss'])} on {holdout['rows']} rows" if holdout
               else "no holdout figures")
    overview = f"{info.get('model_type')} LoRA for {competition}; {summary}."
    notes = f"kaggle-kit {info.get('kaggle_kit_version', '')}: {summary}" + (
        f"; CV out-of-fold log loss {_number(figures['cv']['oof_log_loss'])}" if "cv" in figures else "")
    subtitle = f"LoRA classifier for {competition}"[:80].ljust(20, ".")
    return ModelCard(title=title or handle.model.replace("-", " ").title(), subtitle=subtitle,
                     description=description, overview=overview[:512],
                     usage=description + "\n" + _usage(handle, info, line, model_dir), version_notes=notes,
                     lineage=line, figures=figures)
