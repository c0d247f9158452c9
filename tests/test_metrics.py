"""Classification metrics: the agreed keys, macro F1 beside weighted F1, and bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from textclf.evaluation import classification_metrics


def test_metric_keys_and_macro_f1_shows_a_missed_rare_label():
    # 18 rows of label 0, 2 of label 1: predicting 0 everywhere is 90% accurate, weighted F1 high,
    # macro F1 low (label 1 scores 0)
    y_true = np.array([0] * 18 + [1] * 2)
    y_pred = np.zeros(20, dtype=int)
    metrics = classification_metrics(y_true, y_pred, ["big", "rare"])
    assert set(metrics) == {"accuracy", "f1_macro", "f1_weighted", "f1_per_label"}
    assert metrics["accuracy"] == pytest.approx(0.9)
    assert metrics["f1_per_label"] == {"big": pytest.approx(2 * 0.9 / 1.9, abs=1e-6), "rare": 0.0}
    assert metrics["f1_macro"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0), abs=1e-6)
    assert metrics["f1_macro"] < 0.5 < 0.8 < metrics["f1_weighted"]
