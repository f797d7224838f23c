"""Everything that talks to Kaggle. Only kaggle_kit.cli imports this package; kernel bundles never contain it."""
