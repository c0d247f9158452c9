"""Scoring models: metrics with bootstrap intervals, the collapse check, sampling, error analysis."""
