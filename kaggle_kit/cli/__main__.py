"""`python -m kaggle_kit.cli` (and `torchrun ... -m kaggle_kit.cli train`)."""

from kaggle_kit.cli import main

main()
