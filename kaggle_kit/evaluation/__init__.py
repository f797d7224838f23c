"""Evaluation: reports and benchmarks."""
