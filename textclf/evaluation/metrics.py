"""Classification metrics: accuracy and F1, their bootstrap intervals, and the collapse check."""

from __future__ import annotations

import numpy as np
from scipy.stats import bootstrap
from sklearn.metrics import accuracy_score, f1_score


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str] | None = None) -> dict:
    """Accuracy, macro and weighted F1 over the labels present (as sklearn does); per-label F1 given ``label_names``."""
    metrics = {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 6),
        "f1_macro": round(float(f1_score(y_true, y_pred, average="macro", zero_division=0)), 6),
        "f1_weighted": round(float(f1_score(y_true, y_pred, average="weighted", zero_division=0)), 6),
    }
    if label_names is not None:
        per_label = f1_score(y_true, y_pred, labels=range(len(label_names)), average=None, zero_division=0)
        metrics["f1_per_label"] = {name: round(float(v), 6) for name, v in zip(label_names, per_label, strict=True)}
    return metrics


# Row indices a batch of bootstrap resamples holds (32 MB of int64, a few arrays of that size)
BOOTSTRAP_BLOCK = 4_000_000


def bootstrap_ci95(y_true: np.ndarray, y_pred: np.ndarray, resamples: int, seed: int) -> dict:
    """Seeded percentile bootstrap 95% intervals of accuracy and macro F1, ``BOOTSTRAP_BLOCK`` indices at a time."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if len(y_true) == 0 or resamples == 0:
        return {}
    if len(y_true) == 1:  # scipy refuses one row; its resamples are those of two copies (test_bootstrap_of_one_row)
        y_true, y_pred = np.repeat(y_true, 2), np.repeat(y_pred, 2)
    n_labels = int(max(y_true.max(), y_pred.max())) + 1
    result = bootstrap(
        (y_true, y_pred),
        lambda true, pred, axis: resample_scores(true, pred, n_labels, axis),
        n_resamples=resamples,
        batch=max(1, BOOTSTRAP_BLOCK // len(y_true)),
        vectorized=True,
        paired=True,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return {
        f"{name}_ci95_{end}": round(float(value[i]), 6)
        for i, name in enumerate(("accuracy", "f1_macro"))
        for end, value in (("low", low), ("high", high))
    }


def resample_scores(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int, axis: int = -1) -> np.ndarray:
    """Accuracy and macro F1 (labels present, as ``classification_metrics``) of each resample along ``axis``."""
    f1, present = 0.0, 0
    for label in range(n_labels):
        true, pred = y_true == label, y_pred == label
        support = true.sum(axis) + pred.sum(axis)
        f1 = f1 + np.divide(2 * (true & pred).sum(axis), support, out=np.zeros(support.shape), where=support > 0)
        present = present + (support > 0)
    return np.stack([(y_true == y_pred).mean(axis), f1 / present])


# A model that predicts one label for this share of the rows (or more) has collapsed.
COLLAPSE_SHARE = 0.9


def collapse_check(y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str]) -> tuple[dict, str | None]:
    """Whether the predictions collapsed onto one label: metrics to record and a warning line when they did."""
    counts = np.bincount(np.asarray(y_pred, dtype=np.int64), minlength=len(label_names))
    top = int(counts.argmax())
    share = float(counts[top] / max(len(y_pred), 1))
    collapsed = share >= COLLAPSE_SHARE  # no rows: share 0
    record = {"collapsed": collapsed, "majority_prediction_share": round(share, 6)}
    if not collapsed:
        return record, None
    true_share = float(np.mean(np.asarray(y_true) == top))
    warning = (
        f"the fine-tuned model collapsed: it predicts '{label_names[top]}' for {share:.0%} of the validation rows "
        f"({true_share:.0%} of them have that label); train longer (finetune.epochs), lower "
        "finetune.learning_rate or check the data's labels: see the README, 'When the model collapses'"
    )
    return record, warning
