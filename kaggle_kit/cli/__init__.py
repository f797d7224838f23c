"""The `kaggle-kit` command line: thin commands, one module per command group, that turn flags into one call and
print the result. Importing the modules registers their commands on `main`."""

from kaggle_kit.cli import data, kaggle, kernels, plan, predict, runs, tools, train  # noqa: F401  (registers commands)
from kaggle_kit.cli.app import main

__all__ = ["main"]
