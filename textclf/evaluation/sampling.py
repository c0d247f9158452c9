"""Seeded stratified sampling of rows (each label keeps its share)."""

from __future__ import annotations

import numpy as np
from sklearn.utils import resample


def stratified_sample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` rows, seeded, each label keeping its share to within one row (``sklearn.utils.resample``:
    unlike ``train_test_split`` it takes a label of one row, and fewer rows than labels)."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    return np.sort(resample(np.arange(len(labels)), replace=False, n_samples=n, random_state=seed, stratify=labels))
