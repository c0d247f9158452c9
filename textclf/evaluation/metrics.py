"""Classification metrics: accuracy and F1, their bootstrap intervals, and the collapse check."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str] | None = None) -> dict:
    """Accuracy, macro F1 (every label counts the same: the rare ones show), weighted F1 (as in the
    notebook); per-label F1 too when ``label_names`` is given. Macro and weighted F1 average over the
    labels present in ``y_true`` or ``y_pred``, as sklearn does."""
    metrics = {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 6),
        "f1_macro": round(float(f1_score(y_true, y_pred, average="macro", zero_division=0)), 6),
        "f1_weighted": round(float(f1_score(y_true, y_pred, average="weighted", zero_division=0)), 6),
    }
    if label_names is not None:
        per_label = f1_score(y_true, y_pred, labels=range(len(label_names)), average=None, zero_division=0)
        metrics["f1_per_label"] = {name: round(float(v), 6) for name, v in zip(label_names, per_label, strict=True)}
    return metrics


# Row indices bootstrap_ci95 draws at a time (32 MB of int64, a few arrays of that size)
BOOTSTRAP_BLOCK = 4_000_000


def bootstrap_ci95(y_true: np.ndarray, y_pred: np.ndarray, resamples: int, seed: int) -> dict:
    """Seeded bootstrap 95% intervals of accuracy and macro F1: ``resamples`` draws of the rows with
    replacement, the 2.5th and 97.5th percentiles of each metric over them. Vectorised: the
    (resamples x rows) index draws come a block of draws at a time (at most ``BOOTSTRAP_BLOCK`` indices:
    memory stays bounded at any row count; the same seeded stream as one draw of them all), per-label
    counts by ``bincount``, no loop over single draws.
    Macro F1 averages, in each draw, over the labels present in its true or predicted rows (as
    ``classification_metrics`` does), so the interval surrounds the point estimate."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    n, n_labels = len(y_true), int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1
    if n == 0 or resamples == 0:
        return {}
    rng, parts = np.random.default_rng(seed), []
    step = max(1, BOOTSTRAP_BLOCK // n)
    for first in range(0, resamples, step):
        draws = rng.integers(0, n, size=(min(step, resamples - first), n))
        parts.append(_bootstrap_block(y_true, y_pred, draws, n_labels))
    values = {name: np.concatenate([part[name] for part in parts]) for name in ("accuracy", "f1_macro")}
    interval = {}
    for name, samples in values.items():
        low, high = np.percentile(samples, [2.5, 97.5])
        interval[f"{name}_ci95_low"], interval[f"{name}_ci95_high"] = round(float(low), 6), round(float(high), 6)
    return interval


def _bootstrap_block(y_true: np.ndarray, y_pred: np.ndarray, draws: np.ndarray, n_labels: int) -> dict:
    """Accuracy and macro F1 of each draw (a row of ``draws``: indices of the rows drawn)."""
    resamples = len(draws)
    true, pred = y_true[draws], y_pred[draws]
    correct = true == pred
    offset = np.arange(resamples)[:, None] * n_labels  # one block of label counts per draw
    counts = lambda labels, weights=None: np.bincount(  # noqa: E731
        (labels + offset).ravel(), weights=None if weights is None else weights.ravel(), minlength=resamples * n_labels
    ).reshape(resamples, n_labels)
    tp, n_true, n_pred = counts(true, correct.astype(float)), counts(true), counts(pred)
    present = (n_true + n_pred) > 0
    f1 = np.divide(2 * tp, n_true + n_pred, out=np.zeros_like(tp), where=present)
    return {"accuracy": correct.mean(axis=1), "f1_macro": f1.sum(axis=1) / present.sum(axis=1)}


# A model that predicts one label for this share of the rows (or more) has collapsed.
COLLAPSE_SHARE = 0.9


def collapse_check(y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str]) -> tuple[dict, str | None]:
    """Whether the predictions collapsed onto one label: metrics to record
    (``collapsed``, ``majority_prediction_share``) and a warning line when they did."""
    y_pred = np.asarray(y_pred)
    counts = np.bincount(y_pred, minlength=len(label_names)) if len(y_pred) else np.zeros(len(label_names), int)
    top = int(counts.argmax())
    share = float(counts[top] / max(len(y_pred), 1))
    collapsed = len(y_pred) > 0 and share >= COLLAPSE_SHARE
    record = {"collapsed": bool(collapsed), "majority_prediction_share": round(share, 6)}
    if not collapsed:
        return record, None
    true_share = float(np.mean(np.asarray(y_true) == top))
    warning = (
        f"the fine-tuned model collapsed: it predicts '{label_names[top]}' for {share:.0%} of the validation rows "
        f"({true_share:.0%} of them have that label); train longer (finetune.epochs), lower "
        "finetune.learning_rate or check the data's labels: see the README, 'When the model collapses'"
    )
    return record, warning
