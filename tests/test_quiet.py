"""quiet_libraries: library advice hidden, everything else kept; batch tokenisation keeps its threads."""

from __future__ import annotations

import os
import warnings

from kaggle_kit.quiet import quiet_libraries


def test_only_the_libraries_advisory_warnings_are_hidden(monkeypatch):
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_libraries()
        warnings.warn_explicit("advice", UserWarning, "peft/tuners/lora/model.py", 1, module="peft.tuners.lora.model")
        warnings.warn_explicit("checkpoint advice", UserWarning, "torch/utils/checkpoint.py", 1,
                               module="torch.utils.checkpoint")
        warnings.warn_explicit("your data has a problem", UserWarning, "train.py", 1, module="__main__")
        warnings.warn_explicit("a worker died", UserWarning, "torch/utils/data/dataloader.py", 1,
                               module="torch.utils.data.dataloader")
    assert [str(w.message) for w in seen] == ["your data has a problem", "a worker died"]
    assert "TOKENIZERS_PARALLELISM" not in os.environ  # not switched off for batch tokenisation
