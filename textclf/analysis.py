"""Per-row outputs of a classifier (evaluate writes them) and their error analysis on one split: per-row
loss, the highest-loss rows, per-label mean loss.

The rows' texts go only into the git-tracked table of the highest-loss rows; nothing here logs them
(they are the user's data: CI logs and the comparison report never show them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from textclf.errors import PipelineError
from textclf.files import atomic_path
from textclf.pagetext import inert_labels
from textclf.tables import read_parquet


def per_row_loss(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy of each row (natural log), computed in float64 from the logits."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(labels)), np.asarray(labels)]


def error_table(texts: list[str], labels: np.ndarray, logits: np.ndarray, label_names: list[str]) -> pd.DataFrame:
    """Every row with its gold and predicted label names and loss, highest loss first (ties: row order).

    ``row`` is the row's position in the split, ``rank`` its place by loss (1 = highest)."""
    labels = np.asarray(labels)
    if len(texts) != len(labels) or len(labels) != len(logits):
        raise PipelineError(f"error analysis: {len(texts)} texts, {len(labels)} labels, {len(logits)} predictions")
    if logits.shape[1] != len(label_names):
        raise PipelineError(f"the model predicts {logits.shape[1]} labels, the data has {len(label_names)}")
    names = np.asarray(label_names, dtype=object)
    table = pd.DataFrame(
        {
            "row": np.arange(len(labels)),
            "text": list(texts),
            "label": names[labels],
            "predicted": names[logits.argmax(axis=1)],
            "loss": per_row_loss(logits, labels),
        }
    )
    table = table.sort_values("loss", ascending=False, kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def label_loss(table: pd.DataFrame, label_names: list[str]) -> pd.DataFrame:
    """Per gold label: mean loss, rows and misclassified rows (labels without rows: mean_loss NaN)."""
    grouped = table.groupby("label", sort=False)
    frame = pd.DataFrame(
        {
            "label": label_names,
            "mean_loss": [grouped["loss"].mean().get(name, np.nan) for name in label_names],
            "rows": [int(grouped.size().get(name, 0)) for name in label_names],
            "errors": [int((table["label"].eq(name) & table["predicted"].ne(name)).sum()) for name in label_names],
        }
    )
    frame["mean_loss"] = frame["mean_loss"].round(6)
    return frame


def summary(table: pd.DataFrame, per_label: pd.DataFrame) -> dict:
    """The metrics file's numbers (no texts): overall mean loss, error count, per-label mean loss."""
    return {
        "mean_loss": round(float(table["loss"].mean()), 6),
        "rows": int(len(table)),
        "errors": int((table["label"] != table["predicted"]).sum()),
        "label_loss": {
            row.label: (None if pd.isna(row.mean_loss) else float(row.mean_loss)) for row in per_label.itertuples()
        },
    }


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """A CSV, atomically; losses rounded to 6 decimals so that reruns give the same bytes; label names
    made inert for the plots page (textclf.pagetext)."""
    frame = frame.assign(**({"loss": frame["loss"].round(6)} if "loss" in frame else {}))
    frame = frame.assign(**{col: inert_labels(frame[col]) for col in ("label", "predicted") if col in frame})
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_predictions(folder: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """``<folder>/<split>.parquet`` per split, atomically (the folder as a whole): one row per data row,
    in data order, with its gold ``label`` id, ``predicted`` id, ``loss`` (cross-entropy) and ``logits``."""
    with atomic_path(folder, is_dir=True) as out:
        for split, (labels, logits) in splits.items():
            labels, logits = np.asarray(labels, dtype=np.int64), np.ascontiguousarray(logits, dtype=np.float32)
            table = pa.table(
                {
                    "label": labels,
                    "predicted": logits.argmax(axis=1).astype(np.int64),
                    "loss": per_row_loss(logits, labels) if len(labels) else np.zeros(0),
                    "logits": pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1)), logits.shape[1]),
                }
            )
            pq.write_table(table, out / f"{split}.parquet")


def read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(gold label ids, logits) of a split written by ``write_predictions``; a damaged file is one line."""
    frame = read_parquet(path, columns=("label", "logits"))
    logits = np.stack(frame["logits"].to_numpy()) if len(frame) else np.zeros((0, 0), dtype=np.float32)
    return frame["label"].to_numpy(), logits.astype(np.float32)
