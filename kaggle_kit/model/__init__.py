"""The model: backbones (real and tiny), their limits, the model-dir format, batching, the length side head."""
