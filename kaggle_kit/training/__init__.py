"""Training: train, targets and distillation, prompt-grouped folds, cross-validation, memory plans."""
