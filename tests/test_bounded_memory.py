"""Stages whose memory must not grow with the rows read them in slices: the same results as reading all at once.

error_analysis reads the logits as one array (no object per row), computes the loss in chunks and reads
only the texts of the rows it writes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import LABELS
from textclf.analysis import (
    error_table,
    loss_table,
    per_row_loss,
    read_predictions,
    texts_of_rows,
    with_texts,
    write_predictions,
)
from textclf.errors import PipelineError


def _predictions(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(n, len(LABELS))) * 4).astype(np.float32)
    logits[3] = logits[5]  # a tie in loss: row order decides
    labels = rng.integers(0, len(LABELS), n)
    labels[3] = labels[5]
    return labels, logits


def _per_row_loss_all_at_once(logits, labels):
    """The loss as computed before it went in chunks: every row at once."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(labels)), np.asarray(labels)]


@pytest.mark.parametrize("rows_per_chunk", [1, 7, 65_536])
def test_loss_in_chunks_equals_all_rows_at_once(rows_per_chunk):
    labels, logits = _predictions(1003)
    expected = _per_row_loss_all_at_once(logits, labels)
    np.testing.assert_array_equal(per_row_loss(logits, labels, rows_per_chunk=rows_per_chunk), expected)


def test_predictions_read_as_one_array_equal_the_stacked_rows(tmp_path):
    labels, logits = _predictions(101)
    write_predictions(tmp_path / "p", {"validation": (labels, logits)})
    read_labels, read_logits = read_predictions(tmp_path / "p/validation.parquet")
    frame = pd.read_parquet(tmp_path / "p/validation.parquet")  # the earlier way: one numpy array per row
    np.testing.assert_array_equal(read_logits, np.stack(frame["logits"].to_numpy()).astype(np.float32))
    np.testing.assert_array_equal(read_labels, frame["label"].to_numpy())
    assert read_logits.dtype == np.float32 and read_logits.shape == (101, len(LABELS))
    write_predictions(tmp_path / "e", {"validation": (np.zeros(0, int), np.zeros((0, len(LABELS))))})
    empty_labels, empty_logits = read_predictions(tmp_path / "e/validation.parquet")
    assert len(empty_labels) == 0 and empty_logits.shape == (0, 0)


@pytest.mark.parametrize("rows_per_batch", [1, 4, 100_000])
def test_top_rows_with_texts_read_in_slices_equal_the_whole_table(tmp_path, rows_per_batch):
    labels, logits = _predictions(61)
    texts = [f"text of row {i}" for i in range(61)]
    path = tmp_path / "validation.parquet"
    pq.write_table(pa.table({"text": texts, "label": labels}), path, row_group_size=9)
    whole = error_table(texts, labels, logits, LABELS)
    table = loss_table(labels, logits, LABELS)
    for top_n in (0, 1, 10, 61, 100):
        top = table.head(top_n)
        written = with_texts(top, texts_of_rows(path, top["row"], rows_per_batch=rows_per_batch))
        pd.testing.assert_frame_equal(written, whole.head(top_n))
    assert texts_of_rows(path, [5, 2, 5], rows_per_batch) == [texts[5], texts[2], texts[5]]
    with pytest.raises(PipelineError, match="no row 61"):
        texts_of_rows(path, [61], rows_per_batch)
