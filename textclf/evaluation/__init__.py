"""Scoring models: accuracy and F1 with bootstrap intervals, the collapse check, seeded stratified
sampling of rows, logits from saved hidden states, and the per-row losses of error analysis."""
