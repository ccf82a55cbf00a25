"""Evaluation: metrics (numpy only) and running trained models on held-out data."""
