"""Library chatter (HF load reports, advisory warnings, bitsandbytes' CPU kernel notice) would bury our one-line
facts, in a terminal and in kernel logs alike."""

from __future__ import annotations

import logging
import os
import warnings


def quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # also transformers' "Loading weights" bars
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    # "Failed to load CPU gemm_4bit_forward from kernels-community": harmless on CPU, irrelevant on CUDA.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
