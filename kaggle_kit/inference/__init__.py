"""Inference: plain, budgeted and blended prediction, rules, pseudo-labels and time plans."""
