"""Plot files: the confusion and UMAP plot data (CSV, read by DVC's templates) and their PNGs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # stages run headless
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

from textclf.common.escape import inert_labels
from textclf.io.outputs import atomic_path

# The notebook's colour maps, one per label; cycled when there are more labels.
UMAP_CMAPS = ["Greys", "Blues", "Oranges", "Reds", "Purples", "Greens"]


def write_predictions_csv(path: Path, y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str]) -> None:
    """The confusion template's input: a row per (actual, predicted) pair seen or diagonal, ``weight`` its count."""
    names, n = np.asarray(inert_labels(label_names)), len(label_names)
    counts = np.bincount(np.asarray(y_true) * n + np.asarray(y_pred), minlength=n * n)
    actual, predicted = np.divmod(np.arange(n * n), n)
    drawn = (counts > 0) | (actual == predicted)  # empty cells stay blank, as with a row per prediction
    counts, actual, predicted = counts[drawn], actual[drawn], predicted[drawn]
    columns = {"actual": names[actual], "predicted": names[predicted], "actual_id": actual, "predicted_id": predicted}
    with atomic_path(path) as tmp:
        pd.DataFrame({**columns, "weight": counts}).to_csv(tmp, index=False)


def write_umap_csv(path: Path, xy: np.ndarray, labels: np.ndarray, label_names: list[str]) -> pd.DataFrame:
    """The UMAP plot data (x, y to 4 decimals, label names inert); returns the points with the names as they are."""
    points = pd.DataFrame({"x": xy[:, 0].round(4), "y": xy[:, 1].round(4), "label": np.asarray(label_names)[labels]})
    with atomic_path(path) as tmp:
        points.assign(label=inert_labels(points["label"])).to_csv(tmp, index=False)
    return points


def save_png(fig, path: Path, dpi: int) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)


def save_confusion_png(path: Path, y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str], title: str) -> None:
    """The notebook's normalized confusion matrix, as a PNG (labels in id order, title wrapped to fit)."""
    matrix = confusion_matrix(y_true, y_pred, labels=range(len(label_names)), normalize="true")
    fig, ax = plt.subplots(figsize=(6.5, 6.5))
    ConfusionMatrixDisplay(matrix, display_labels=label_names).plot(
        cmap="Blues", values_format=".2f", ax=ax, colorbar=True, xticks_rotation=45
    )
    ax.set_title(textwrap.fill(title, width=45))
    fig.tight_layout()
    save_png(fig, path, dpi=100)


def umap_figure(points: pd.DataFrame, label_names: list[str], title: str):
    """The notebook's figure: one hexbin panel per label on shared axes, every row as faint grey points behind."""
    cols = 3
    rows = -(-len(label_names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 4 * rows), squeeze=False, sharex=True, sharey=True)
    axes = axes.flatten()
    extent = (points["x"].min(), points["x"].max(), points["y"].min(), points["y"].max()) if len(points) else None
    for i, name in enumerate(label_names):
        subset = points[points["label"] == name]
        axes[i].scatter(points["x"], points["y"], s=2, c="0.8", linewidths=0, rasterized=True)
        if len(subset):
            cmap = UMAP_CMAPS[i % len(UMAP_CMAPS)]
            axes[i].hexbin(subset["x"], subset["y"], cmap=cmap, gridsize=60, extent=extent, mincnt=1, linewidths=(0,))
        axes[i].set(title=name, xticks=[], yticks=[])
    for ax in axes[len(label_names) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
