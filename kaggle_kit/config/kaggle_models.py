"""Kaggle Model handles and licences, checked before anything is staged or sent (standard library only: a kernel's
config check imports this too).

A handle names a variation: owner/model/framework/variation; kernels mount a version of it (…/variation/N)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# kagglesdk 0.1.38 `ModelFramework` without its MODEL_FRAMEWORK_ prefix, spelled as Kaggle's docs spell them
# (tests/test_kaggle_models.py checks this list against the installed client's enum).
MODEL_FRAMEWORKS = ("tensorFlow1", "tensorFlow2", "tfLite", "tfJs", "pyTorch", "jax", "flax", "pax", "maxText",
                    "gemmaCpp", "ggml", "gguf", "coral", "scikitLearn", "mxnet", "onnx", "keras", "transformers", "api",
                    "other", "tensorRtLlm", "triton", "vllm")
# The licence names Kaggle accepts for a model variation (kaggle-cli docs/models_metadata.md, "Licenses"); the
# client sends `licenseName` as written and Kaggle answers 200 with an error for any other.
MODEL_LICENSES = (
    "Apache 2.0", "Attribution 3.0 IGO (CC BY 3.0 IGO)", "Attribution 3.0 Unported (CC BY 3.0)",
    "Attribution 4.0 International (CC BY 4.0)", "Attribution-NoDerivatives 4.0 International (CC BY-ND 4.0)",
    "Attribution-NonCommercial 4.0 International (CC BY-NC 4.0)",
    "Attribution-NonCommercial-NoDerivatives 4.0 International (CC BY-NC-ND 4.0)",
    "Attribution-NonCommercial-ShareAlike 3.0 IGO (CC BY-NC-SA 3.0 IGO)", "BSD-3-Clause", "CC BY-NC-SA 4.0",
    "CC BY-SA 3.0", "CC BY-SA 4.0", "CC0: Public Domain", "Community Data License Agreement - Permissive - Version 1.0",
    "Community Data License Agreement - Sharing - Version 1.0", "GNU Affero General Public License 3.0",
    "GNU Free Documentation License 1.3", "GNU Lesser General Public License 3.0", "GPL 2", "MIT",
    "ODC Attribution License (ODC-By)", "ODC Public Domain Dedication and Licence (PDDL)", "GPL 3",
)
# SPDX ids (what Hugging Face model cards write in `license:`) -> Kaggle's name.
SPDX_LICENSES = {
    "apache-2.0": "Apache 2.0", "mit": "MIT", "cc0-1.0": "CC0: Public Domain", "bsd-3-clause": "BSD-3-Clause",
    "cc-by-4.0": "Attribution 4.0 International (CC BY 4.0)", "cc-by-3.0": "Attribution 3.0 Unported (CC BY 3.0)",
    "cc-by-sa-4.0": "CC BY-SA 4.0", "cc-by-sa-3.0": "CC BY-SA 3.0", "cc-by-nc-sa-4.0": "CC BY-NC-SA 4.0",
    "cc-by-nc-4.0": "Attribution-NonCommercial 4.0 International (CC BY-NC 4.0)",
    "cc-by-nd-4.0": "Attribution-NoDerivatives 4.0 International (CC BY-ND 4.0)",
    "cc-by-nc-nd-4.0": "Attribution-NonCommercial-NoDerivatives 4.0 International (CC BY-NC-ND 4.0)",
    "gpl-2.0": "GPL 2", "gpl-3.0": "GPL 3", "agpl-3.0": "GNU Affero General Public License 3.0",
    "lgpl-3.0": "GNU Lesser General Public License 3.0",
}
# The client's slug rules (kaggle_api_extended.py `_validate_slug_syntax`): owners may hold '_', model slugs not.
_OWNER_RE = re.compile(r"^[a-z0-9]+(?:[_-][a-z0-9]+)*$")
_MODEL_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_VARIATION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class ModelHandle:
    owner: str
    model: str
    framework: str
    variation: str

    @property
    def model_ref(self) -> str:
        return f"{self.owner}/{self.model}"

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.model}/{self.framework}/{self.variation}"

    def version(self, number: int) -> str:
        """What kernel-metadata's model_sources and `[datasets] model` take."""
        return f"{self.ref}/{number}"

    @property
    def url(self) -> str:
        return f"https://www.kaggle.com/models/{self.ref}"


def _framework(name: str) -> str | None:
    """The client's own matching (`lookup_enum`): case and '_' do not matter, '-' does."""
    wanted = name.lower().replace("_", "")
    return next((f for f in MODEL_FRAMEWORKS if f.lower() == wanted), None)


def handle_problem(value: str) -> str | None:
    """Why `value` is not owner/model/framework/variation, or None."""
    parts = value.split("/")
    if len(parts) == 5 and parts[4].isdigit():
        return "names a version: give owner/model/framework/variation (each upload makes the next version)"
    if len(parts) != 4 or not all(parts):
        return "must be owner/model/framework/variation, e.g. you/lmsys-deberta/transformers/v1"
    owner, model, framework, variation = parts
    if not _OWNER_RE.match(owner):
        return f"owner '{owner}' must be lowercase letters, digits, '-' and '_'"
    if not _MODEL_RE.match(model):
        return f"model slug '{model}' must be lowercase letters, digits and single '-' (no '_')"
    if _framework(framework) is None:
        return f"framework '{framework}' is not one of Kaggle's ({', '.join(MODEL_FRAMEWORKS)})"
    if not _VARIATION_RE.match(variation):
        return f"variation '{variation}' must be letters, digits, '.', '-' and '_'"
    return None


def parse_handle(value: str) -> ModelHandle:
    """A checked handle; ValueError (one line) otherwise."""
    problem = handle_problem(value)
    if problem:
        raise ValueError(f"Kaggle Model '{value}' {problem}")
    return ModelHandle(*value.split("/"))


def kaggle_license(name: str) -> str | None:
    """Kaggle's spelling of a licence name (any case, or its SPDX id), or None when Kaggle has no such model licence."""
    wanted = name.strip().lower()
    exact = next((lic for lic in MODEL_LICENSES if lic.lower() == wanted), None)
    return exact or SPDX_LICENSES.get(wanted)


def license_problem(value: str) -> str | None:
    if kaggle_license(value):
        return None
    return "is not a Kaggle model licence (e.g. 'Apache 2.0', 'MIT', 'CC BY-NC-SA 4.0', or an SPDX id: apache-2.0)"
