"""kaggle-kit: LoRA preference classifiers for Kaggle code competitions, from laptop to kernel."""

__version__ = "0.1.0"
