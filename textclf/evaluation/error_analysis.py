"""Per-row outputs of a classifier and their error analysis; texts go only into the highest-loss table, never a log."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.special import log_softmax

from textclf.common.errors import PipelineError
from textclf.common.escape import inert_labels
from textclf.io.outputs import atomic_path
from textclf.io.stage_files import iter_parquet, read_table

# Rows whose loss ``per_row_loss`` computes at a time (its float64 temporaries: a few MB each)
LOSS_ROWS = 65_536


def per_row_loss(logits: np.ndarray, labels: np.ndarray, rows_per_chunk: int = LOSS_ROWS) -> np.ndarray:
    """Cross-entropy of each row: ``scipy.special.log_softmax`` of the logits in float64, a chunk of rows at a time."""
    labels = np.asarray(labels)
    loss = np.empty(len(labels), dtype=np.float64)
    for start in range(0, len(labels), rows_per_chunk):
        log_probs = log_softmax(np.asarray(logits[start : start + rows_per_chunk], dtype=np.float64), axis=1)
        picked = labels[start : start + len(log_probs), None]
        loss[start : start + len(log_probs)] = -np.take_along_axis(log_probs, picked, axis=1)[:, 0]
    return loss


def loss_table(labels: np.ndarray, logits: np.ndarray, label_names: list[str]) -> pd.DataFrame:
    """Every row (``row``: its position) with gold and predicted label and loss, ranked by loss (ties: row order)."""
    labels = np.asarray(labels)
    if len(labels) != len(logits):
        raise PipelineError(f"error analysis: {len(labels)} labels, {len(logits)} predictions")
    if logits.shape[1] != len(label_names):
        raise PipelineError(f"the model predicts {logits.shape[1]} labels, the data has {len(label_names)}")
    names = np.asarray(label_names, dtype=object)
    table = pd.DataFrame(
        {
            "row": np.arange(len(labels)),
            "label": names[labels],
            "predicted": names[logits.argmax(axis=1)],
            "loss": per_row_loss(logits, labels),
        }
    )
    table = table.sort_values("loss", ascending=False, kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def with_texts(table: pd.DataFrame, texts: Sequence[str]) -> pd.DataFrame:
    """``table`` (rows of ``loss_table``) with ``texts[i]``, the i-th row's text, after ``row``."""
    table = table.copy()
    table.insert(2, "text", pd.Series(list(texts), index=table.index, dtype="str"))  # as pandas infers it
    return table


def texts_of_rows(path: Path, rows: Sequence[int], rows_per_batch: int = 100_000) -> list[str]:
    """The ``text`` of each of ``rows`` of the data stage's file ``path``, in that order, read a slice at a time."""
    rows = np.asarray(rows, dtype=np.int64)
    found: dict[int, str] = {}
    wanted = np.unique(rows)
    for start, batch in iter_parquet(path, ("text",), rows_per_batch):
        here = wanted[(wanted >= start) & (wanted < start + batch.num_rows)]
        if len(here):
            picked = batch.column(0).take(pa.array(here - start)).to_pylist()
            found.update(zip(here.tolist(), picked, strict=True))
    if missing := [int(r) for r in wanted if int(r) not in found]:
        raise PipelineError(f"{path}: no row {missing[0]} (rerun evaluate: dvc repro)")
    return [found[int(r)] for r in rows]


def label_loss(table: pd.DataFrame, label_names: list[str]) -> pd.DataFrame:
    """Per gold label: mean loss, rows and misclassified rows (labels without rows: mean_loss NaN)."""
    grouped = table.assign(error=table["label"] != table["predicted"]).groupby("label")
    frame = grouped.agg(mean_loss=("loss", "mean"), rows=("loss", "size"), errors=("error", "sum"))
    frame = frame.reindex(pd.Index(label_names, name="label")).fillna({"rows": 0, "errors": 0})
    return frame.astype({"rows": int, "errors": int}).round({"mean_loss": 6}).reset_index()


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
    """A CSV, atomically: losses to 6 decimals (reruns give the same bytes), label names inert for the plots page."""
    frame = frame.assign(**({"loss": frame["loss"].round(6)} if "loss" in frame else {}))
    frame = frame.assign(**{col: inert_labels(frame[col]) for col in ("label", "predicted") if col in frame})
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_predictions(folder: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """``<folder>/<split>.parquet`` per split, atomically: each row's ``label``, ``predicted``, ``loss``, ``logits``."""
    with atomic_path(folder, is_dir=True) as out:
        for split, (labels, logits) in splits.items():
            labels, logits = np.asarray(labels, dtype=np.int64), np.ascontiguousarray(logits, dtype=np.float32)
            table = pa.table(
                {
                    "label": labels,
                    "predicted": logits.argmax(axis=1).astype(np.int64),
                    "loss": per_row_loss(logits, labels),
                    "logits": pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1)), logits.shape[1]),
                }
            )
            pq.write_table(table, out / f"{split}.parquet")


def read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(gold label ids, float32 logits) of a ``write_predictions`` file, straight from Arrow; damaged: one line."""
    table = read_table(path, ("label", "logits"))
    labels = table.column("label").to_numpy()
    if not len(table):
        return labels, np.zeros((0, 0), dtype=np.float32)
    values = [chunk.flatten().to_numpy(zero_copy_only=False) for chunk in table.column("logits").chunks]
    return labels, np.concatenate(values).astype(np.float32, copy=False).reshape(len(table), -1)
