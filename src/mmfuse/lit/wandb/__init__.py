"""Weights & Biases: the logger, media and figures, tables and the ablation run."""
