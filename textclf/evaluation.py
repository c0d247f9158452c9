"""Metrics and plots shared by the baselines, evaluate and umap stages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # stages run headless
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score, confusion_matrix, f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from textclf.io import atomic_path
from textclf.pagetext import inert_labels

# The notebook's colour maps, one per label; cycled when there are more labels.
UMAP_CMAPS = ["Greys", "Blues", "Oranges", "Reds", "Purples", "Greens"]


def baseline_classifiers(max_iter: int, seed: int) -> dict:
    """The notebook's three baselines, seeded. The logistic regression sees standardized features:
    raw hidden states have a few dimensions of large scale, and lbfgs needs far fewer iterations
    (and seconds) to converge on standardized ones."""
    return {
        "dummy_uniform": DummyClassifier(strategy="uniform", random_state=seed),
        "dummy_most_frequent": DummyClassifier(strategy="most_frequent"),
        "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed)),
    }


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
        metrics["f1_per_label"] = {name: round(float(v), 6) for name, v in zip(label_names, per_label)}
    return metrics


def bootstrap_ci95(y_true: np.ndarray, y_pred: np.ndarray, resamples: int, seed: int) -> dict:
    """Seeded bootstrap 95% intervals of accuracy and macro F1: ``resamples`` draws of the rows with
    replacement, the 2.5th and 97.5th percentiles of each metric over them. Vectorised: one
    (resamples x rows) index draw and per-label counts by ``bincount``, no loop over draws.
    Macro F1 averages, in each draw, over the labels present in its true or predicted rows (as
    ``classification_metrics`` does), so the interval surrounds the point estimate."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    n, n_labels = len(y_true), int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1
    if n == 0 or resamples == 0:
        return {}
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    true, pred = y_true[draws], y_pred[draws]
    correct = true == pred
    offset = np.arange(resamples)[:, None] * n_labels  # one block of label counts per draw
    counts = lambda labels, weights=None: np.bincount(  # noqa: E731
        (labels + offset).ravel(), weights=None if weights is None else weights.ravel(), minlength=resamples * n_labels
    ).reshape(resamples, n_labels)
    tp, n_true, n_pred = counts(true, correct.astype(float)), counts(true), counts(pred)
    present = (n_true + n_pred) > 0
    f1 = np.divide(2 * tp, n_true + n_pred, out=np.zeros_like(tp), where=present)
    values = {"accuracy": correct.mean(axis=1), "f1_macro": f1.sum(axis=1) / present.sum(axis=1)}
    interval = {}
    for name, samples in values.items():
        low, high = np.percentile(samples, [2.5, 97.5])
        interval[f"{name}_ci95_low"], interval[f"{name}_ci95_high"] = round(float(low), 6), round(float(high), 6)
    return interval


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


def write_predictions_csv(path: Path, y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str]) -> None:
    """Rows of (actual, predicted) label names with their ids, the input of the confusion template
    (.dvc/plots/confusion.json): one row per prediction (weight 1), then one weight-0 row per label so
    that every label has a row and a column, in id order, even one that is never predicted. Label names
    are made inert for the plots page (textclf.pagetext)."""
    names, ids = np.asarray(inert_labels(label_names)), np.arange(len(label_names))
    frame = pd.DataFrame({
        "actual": np.concatenate([names[y_true], names]),
        "predicted": np.concatenate([names[y_pred], names]),
        "actual_id": np.concatenate([y_true, ids]),
        "predicted_id": np.concatenate([y_pred, ids]),
        "weight": np.concatenate([np.ones(len(y_true), dtype=int), np.zeros(len(names), dtype=int)]),
    })
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_umap_csv(path: Path, xy: np.ndarray, labels: np.ndarray, label_names: list[str]) -> pd.DataFrame:
    """The UMAP plot data (x, y rounded to 4 decimals, label name made inert for the plots page, see
    textclf.pagetext); returns the points with the label names as they are, for the PNG."""
    points = pd.DataFrame({"x": xy[:, 0].round(4), "y": xy[:, 1].round(4), "label": np.asarray(label_names)[labels]})
    with atomic_path(path) as tmp:
        points.assign(label=inert_labels(points["label"])).to_csv(tmp, index=False)
    return points


def save_confusion_png(path: Path, y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str], title: str) -> None:
    """The notebook's normalized confusion matrix, as a PNG (labels in id order, title wrapped to fit)."""
    matrix = confusion_matrix(y_true, y_pred, labels=range(len(label_names)), normalize="true")
    fig, ax = plt.subplots(figsize=(6.5, 6.5))
    ConfusionMatrixDisplay(matrix, display_labels=label_names).plot(
        cmap="Blues", values_format=".2f", ax=ax, colorbar=True, xticks_rotation=45
    )
    ax.set_title(textwrap.fill(title, width=45))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def save_umap_png(path: Path, points: pd.DataFrame, label_names: list[str], title: str) -> None:
    """``umap_figure`` as a PNG."""
    fig = umap_figure(points, label_names, title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def umap_figure(points: pd.DataFrame, label_names: list[str], title: str):
    """The notebook's figure, one hexbin panel per label in its own colour map, on axes shared by every
    panel (the same bins and limits: a cluster sits in the same place in each), with every row as faint
    grey points behind, so each label's cloud reads against the whole."""
    cols = 3
    rows = -(-len(label_names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 4 * rows), squeeze=False, sharex=True, sharey=True)
    axes = axes.flatten()
    extent = (points["x"].min(), points["x"].max(), points["y"].min(), points["y"].max()) if len(points) else None
    for i, name in enumerate(label_names):
        subset = points[points["label"] == name]
        axes[i].scatter(points["x"], points["y"], s=2, c="0.8", linewidths=0, rasterized=True)
        if len(subset):
            axes[i].hexbin(subset["x"], subset["y"], cmap=UMAP_CMAPS[i % len(UMAP_CMAPS)], gridsize=60,
                           extent=extent, mincnt=1, linewidths=(0,))
        axes[i].set_title(name)
        axes[i].set_xticks([])
        axes[i].set_yticks([])
    for ax in axes[len(label_names) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


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
    picked = [rng.choice(np.flatnonzero(labels == value), q, replace=False) for value, q in zip(values, quota)]
    return np.sort(np.concatenate(picked))


def embed_2d(X: np.ndarray, n_neighbors: int, min_dist: float, seed: int) -> np.ndarray:
    """MinMaxScaler then UMAP(n_components=2, metric="cosine"), as in the notebook, seeded."""
    from sklearn.preprocessing import MinMaxScaler
    from umap import UMAP

    scaled = MinMaxScaler().fit_transform(X)
    mapper = UMAP(
        n_components=2, metric="cosine", n_neighbors=min(n_neighbors, len(X) - 1),
        min_dist=min_dist, random_state=seed,
    )
    return mapper.fit_transform(scaled)
