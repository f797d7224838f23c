"""`kaggle-kit init`: a commented kaggle-kit.toml and a .gitignore for a new project; never overwrites."""

from __future__ import annotations

from pathlib import Path

from kaggle_kit.atomic import write_text_atomic
from kaggle_kit.competition.spec import get_spec
from kaggle_kit.config import CONFIG_FILE
from kaggle_kit.config.project import username_problem
from kaggle_kit.config.recipes import RECIPES
from kaggle_kit.errors import KitError, UsageProblem

GITIGNORE_LINES = ["submissions/*.csv", "models/", "outputs/", "kernels/build/", "quickstart/", "data/", ".venv/",
                   "kaggle.json", "access_token*", "credentials.json", ".env",
                   ".kaggle-kit/"]


TEMPLATE_RECIPE = "deberta-v3-base"  # the backbone the template's [datasets] names
# Recipe-driven [train] settings the template shows, commented out: written as values they would outrank every recipe.
TEMPLATE_TRAIN_KEYS = ("max_len", "epochs", "learning_rate", "warmup", "batch_size", "grad_accum", "lora_r",
                       "lora_alpha")


def _toml_value(value) -> str:
    return str(value).lower() if isinstance(value, bool) else f'"{value}"' if isinstance(value, str) else repr(value)


def config_text(competition: str, username: str | None) -> str:
    """The commented toml; without a username, the user line and the dataset refs stay commented out (kernels are
    then created under the account of the Kaggle credentials)."""
    owner = username or "OWNER"
    on = "" if username else "# "
    recipe = RECIPES[TEMPLATE_RECIPE]
    recipe_lines = "\n".join(f"# {key} = {_toml_value(value)}" for key, value in recipe.settings().items()
                             if key in TEMPLATE_TRAIN_KEYS)
    short = competition.split("-")[0]  # the kernel and dataset slugs' prefix: lmsys-train, wsdm-train, ...
    tta_gain = ("LMSYS: +0.007-0.015" if competition == "lmsys-chatbot-arena" else
                "its gain was measured on LMSYS only: +0.007-0.015 log loss")
    return f'''# kaggle-kit project settings. Layers, lowest first: defaults < recipe < this file < --set < flags.
# `kaggle-kit config` prints the resolved result and where each key came from.
competition = "{competition}"
{on}username = "{owner}"          # your Kaggle username (default: the account of your Kaggle credentials)
# data_dir = "data/{competition}"

# Kaggle datasets, as owner/slug; kernels find them at /kaggle/input/datasets/<owner>/<slug> (or the older
# /kaggle/input/<slug>)
[datasets]
{on}backbone = "{owner}/deberta-v3-base"      # the backbone weights (kaggle-kit upload model PATH --dataset ...)
# model = "{owner}/{short}-model"           # a trained model dir; unset: infer reads the train kernel's output
{on}wheels = "{owner}/kaggle-kit-wheels"      # offline wheels for internet-off kernels (kaggle-kit upload wheels)

[kernel]
train_slug = "{short}-train"
infer_slug = "{short}-infer"
accelerator = "NvidiaTeslaT4"     # T4 x2 on Kaggle; fp16 is chosen automatically there
train_internet = false
infer_internet = false            # code competitions score kernels with the internet off

[train]
# Unset settings come from the backbone's recipe (`kaggle-kit recipes`; `train --recipe NAME` names one); a value
# set here outranks every recipe. Uncomment only what you choose. The values shown are recipe {recipe.name}'s:
{recipe_lines}
# quantize = "4bit"               # QLoRA for 7B+ backbones (CUDA only)
# swap_augment = true

[predict]
max_tokens = 16384                # padded tokens per batch: lower it on CUDA out-of-memory
tta = "swap"                      # predict's own default is "none"; swap TTA doubles inference time \
({tta_gain})

# Extra training files with another schema are mapped, not edited:
# [column_maps.extra]
# match = "lmsys-33k*.csv"
# columns = {{ winner_model_a = "winner_a", winner_model_b = "winner_b" }}
# plain_text = ["prompt", "response_a", "response_b"]
'''


def init_project(directory: Path, competition: str, username: str | None) -> list[Path]:
    get_spec(competition)
    problem = username_problem(username) if username is not None else None
    if problem:  # the toml would be refused by every later command
        raise UsageProblem(f"--username {username!r} {problem}", hint="letters, digits, '-' and '_'")
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / CONFIG_FILE
    if config.exists():
        raise KitError(f"{config} already exists", hint="edit it, or run init in another folder")
    write_text_atomic(config, config_text(competition, username))
    written = [config]
    gitignore = directory / ".gitignore"
    existing = gitignore.read_text().splitlines() if gitignore.exists() else []
    missing = [line for line in GITIGNORE_LINES if line not in existing]
    if missing:  # only ever appends: lines the user wrote stay as they are
        write_text_atomic(gitignore, "\n".join([*existing, *missing]) + "\n")
        written.append(gitignore)
    return written
