"""The Kaggle kernel, kernel side: building the bundle, its entry point, the preflight and the offline wheels."""
