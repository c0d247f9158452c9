"""Classification metrics: the agreed keys, macro F1 beside weighted F1, and bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from textclf.evaluation.metrics import classification_metrics


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


def _noisy_predictions(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Six imbalanced labels, about 80% of them predicted right."""
    rng = np.random.default_rng(seed)
    y_true = rng.choice(6, size=rows, p=[0.3, 0.3, 0.15, 0.15, 0.06, 0.04])
    wrong = rng.random(rows) < 0.2
    return y_true, np.where(wrong, rng.integers(0, 6, rows), y_true)


def test_bootstrap_interval_is_seeded_contains_the_estimate_and_narrows_with_more_rows():
    from textclf.evaluation.metrics import bootstrap_ci95

    y_true, y_pred = _noisy_predictions(60)
    first = bootstrap_ci95(y_true, y_pred, resamples=1000, seed=7)
    assert first == bootstrap_ci95(y_true, y_pred, resamples=1000, seed=7), "same seed, same interval"
    assert first != bootstrap_ci95(y_true, y_pred, resamples=1000, seed=8)
    point = classification_metrics(y_true, y_pred)
    for name in ("accuracy", "f1_macro"):
        assert first[f"{name}_ci95_low"] < point[name] < first[f"{name}_ci95_high"], name

    big_true, big_pred = _noisy_predictions(2000)
    wide = bootstrap_ci95(big_true[:60], big_pred[:60], 1000, seed=7)
    narrow = bootstrap_ci95(big_true, big_pred, 1000, seed=7)
    for name in ("accuracy", "f1_macro"):
        width = lambda ci, name=name: ci[f"{name}_ci95_high"] - ci[f"{name}_ci95_low"]
        assert width(narrow) < width(wide) / 3, name  # 33x the rows: about 1/sqrt(33) of the width


@pytest.mark.parametrize("block", [1, 59, 10**9])
def test_bootstrap_in_batches_gives_the_interval_of_one_batch(monkeypatch, block):
    """Memory bounded at any row count: scipy draws a batch of resamples at a time (1 and 59 indices: one
    resample a batch), from the same seeded stream, so the interval does not depend on the batch size."""
    import textclf.evaluation.metrics
    from textclf.evaluation.metrics import bootstrap_ci95

    y_true, y_pred = _noisy_predictions(500)
    whole = bootstrap_ci95(y_true, y_pred, resamples=101, seed=3)
    monkeypatch.setattr(textclf.evaluation.metrics, "BOOTSTRAP_BLOCK", block)
    assert bootstrap_ci95(y_true, y_pred, resamples=101, seed=3) == whole


def test_resample_scores_match_sklearn_on_each_resample():
    """The vectorized statistic scipy's bootstrap calls: per resample (a row), sklearn's accuracy and macro F1."""
    from textclf.evaluation.metrics import resample_scores

    y_true, y_pred = _noisy_predictions(40, seed=3)
    draws = np.random.default_rng(5).integers(0, 40, size=(3, 40))
    scores = resample_scores(y_true[draws], y_pred[draws], 6, axis=-1)
    for i, d in enumerate(draws):
        expected = classification_metrics(y_true[d], y_pred[d])
        assert scores[:, i] == pytest.approx([expected["accuracy"], expected["f1_macro"]], abs=1e-6)
