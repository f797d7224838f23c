"""`kaggle-kit init`: a commented kaggle-kit.toml and a .gitignore for a new project; never overwrites."""

from __future__ import annotations

from pathlib import Path

from kaggle_kit.atomic import write_text_atomic
from kaggle_kit.competition.spec import get_spec
from kaggle_kit.config import CONFIG_FILE
from kaggle_kit.errors import KitError

GITIGNORE_LINES = ["submissions/*.csv", "models/", "outputs/", "kernels/build/", "quickstart/", "data/", ".venv/",
                   "kaggle.json", "access_token*", "credentials.json", ".env",
                   ".kaggle-kit/"]


def config_text(competition: str, username: str | None) -> str:
    """The commented toml; without a username, the user line and the dataset refs stay commented out (kernels are
    then created under the account of the Kaggle credentials)."""
    owner = username or "OWNER"
    on = "" if username else "# "
    return f'''# kaggle-kit project settings. Precedence: command-line flags > this file > built-in defaults.
# `kaggle-kit config` prints the resolved result.
competition = "{competition}"
{on}username = "{owner}"          # your Kaggle username (default: the account of your Kaggle credentials)
# data_dir = "data/{competition}"

[datasets]                        # Kaggle datasets, as owner/slug; mounted at /kaggle/input/<slug> in kernels
{on}backbone = "{owner}/deberta-v3-base"      # the backbone weights (kaggle-kit upload model PATH --dataset ...)
# model = "{owner}/lmsys-model"           # a trained model dir; unset: infer reads the train kernel's output
{on}wheels = "{owner}/kaggle-kit-wheels"      # offline wheels for internet-off kernels (kaggle-kit upload wheels)

[kernel]
train_slug = "lmsys-train"
infer_slug = "lmsys-infer"
accelerator = "NvidiaTeslaT4"     # T4 x2 on Kaggle; fp16 is chosen automatically there
train_internet = false
infer_internet = false            # code competitions score kernels with the internet off

[train]
max_len = 1024
epochs = 2.0
learning_rate = 1e-3
batch_size = 8
lora_r = 16
lora_alpha = 32
valid_frac = 0.05
# quantize = "4bit"               # QLoRA for 7B+ backbones (CUDA only)
# swap_augment = true

[predict]
max_tokens = 16384                # padded tokens per batch: lower it on CUDA out-of-memory
tta = "swap"                      # predict's own default is "none"; swap TTA doubles inference time \
(LMSYS: +0.007-0.015)

# Extra training files with another schema are mapped, not edited:
# [column_maps.extra]
# match = "lmsys-33k*.csv"
# columns = {{ winner_model_a = "winner_a", winner_model_b = "winner_b" }}
# plain_text = ["prompt", "response_a", "response_b"]
'''


def init_project(directory: Path, competition: str, username: str | None) -> list[Path]:
    get_spec(competition)
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
