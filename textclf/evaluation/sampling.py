"""Seeded stratified sampling of rows (each label keeps its share)."""

from __future__ import annotations

import numpy as np


def stratified_sample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` rows drawn (seeded) so that each label keeps its share of the rows
    (largest remainders round; every label present keeps at least one row when ``n`` allows)."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    values, counts = np.unique(labels, return_counts=True)
    exact = counts * n / len(labels)
    quota = np.floor(exact).astype(int)
    if n >= len(values):
        quota = np.maximum(quota, 1)
    while quota.sum() < n:  # round up the labels furthest below their exact share, where rows remain
        quota[np.argmax(np.where(quota < counts, exact - quota, -np.inf))] += 1
    while quota.sum() > n:  # the minimum of one row per label overshot: take back from the largest
        quota[np.argmax(quota)] -= 1
    picked = [
        rng.choice(np.flatnonzero(labels == value), q, replace=False) for value, q in zip(values, quota, strict=True)
    ]
    return np.sort(np.concatenate(picked))
