"""Library chatter (HF load reports, advisory warnings, bitsandbytes' CPU kernel notices) would bury our one-line
facts, in a terminal and in kernel logs alike. Only the libraries' own advisory warnings are hidden: a UserWarning
from anywhere else (the user's code, torch's data loading, ours) still shows."""

from __future__ import annotations

import logging
import os
import warnings

# bitsandbytes' CPU backend asks the `kernels` package for a hub kernel at import; offline (HF_HUB_OFFLINE, set
# below) that package logs "Skipping publisher trust check for '...' because Hugging Face Hub is in offline mode."
# on every run: it reads like a download and is not one. Matched by its start, on that package's logger only.
OFFLINE_TRUST_NOTICE = ("kernels._internals.hf_hub", "Skipping publisher trust check")


class _DropMessage(logging.Filter):
    def __init__(self, start: str):
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.start)


# Where the advisory UserWarnings come from (peft's "found a peft_config", torch's checkpoint "use_reentrant" notes,
# bitsandbytes' dtype casts, transformers' deprecations): matched against the warning's module.
CHATTY_MODULES = r"(peft|bitsandbytes|transformers|accelerate|torch\.utils\.checkpoint)(\.|$)"


def quiet_libraries() -> None:
    # TOKENIZERS_PARALLELISM is left alone: batch tokenisation keeps its threads (tokenizers turns them off itself
    # in a forked child, where they could deadlock).
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # also transformers' "Loading weights" bars
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    # "Failed to load CPU gemm_4bit_forward from kernels-community": harmless on CPU, irrelevant on CUDA.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    notice_logger = logging.getLogger(OFFLINE_TRUST_NOTICE[0])
    if not any(isinstance(f, _DropMessage) for f in notice_logger.filters):
        notice_logger.addFilter(_DropMessage(OFFLINE_TRUST_NOTICE[1]))
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=CHATTY_MODULES)
