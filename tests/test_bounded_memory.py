"""Stages whose memory must not grow with the rows read them in slices: the same results as reading all at once.

finetune keeps the train rows' token ids on disk (``TokenRowsOnDisk``) instead of in an Arrow table;
error_analysis reads the logits as one array (no object per row), computes the loss in chunks and reads
only the texts of the rows it writes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from conftest import LABELS
from textclf.common.errors import PipelineError
from textclf.evaluation.error_analysis import (
    loss_table,
    per_row_loss,
    read_predictions,
    texts_of_rows,
    with_texts,
    write_predictions,
)


def _encoded_file(path, n_rows: int, seed: int = 0, vocab: int = 1000, row_group_size: int = 7):
    """An encode-stage-like Parquet file: ``input_ids`` (int32 lists of 3 to 20 ids), ``label``."""
    rng = np.random.default_rng(seed)
    ids = [[101, *rng.integers(1000, 1000 + vocab, rng.integers(1, 18)).tolist(), 102] for _ in range(n_rows)]
    table = pa.table(
        {
            "input_ids": pa.array(ids, type=pa.list_(pa.int32())),
            "label": pa.array(rng.integers(0, len(LABELS), n_rows), type=pa.int64()),
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


@pytest.mark.parametrize("rows_per_slice", [1, 5, 10_000])
def test_token_rows_on_disk_equal_the_in_memory_dataset(tmp_path, rows_per_slice):
    from textclf.training.trainer import TokenRowsOnDisk, load_split, token_lengths

    path = _encoded_file(tmp_path / "train.parquet", 53)
    in_memory = load_split(path)
    on_disk = TokenRowsOnDisk(path, tmp_path / "state", rows_per_slice=rows_per_slice)
    assert len(on_disk) == len(in_memory) == 53
    assert [on_disk[i] for i in range(53)] == [in_memory[i] for i in range(53)]
    assert all(type(on_disk[i]["labels"]) is int and type(on_disk[i]["input_ids"][0]) is int for i in (0, 52))
    np.testing.assert_array_equal(token_lengths(on_disk), token_lengths(in_memory))
    assert token_lengths(on_disk).dtype == np.int32
    np.testing.assert_array_equal(on_disk.labels, np.asarray(in_memory["labels"]))
    assert list((tmp_path / "state").iterdir()) == [], "the ids' file is unlinked once open: nothing left behind"
    on_disk.close()


def test_token_rows_on_disk_of_an_empty_file(tmp_path):
    from textclf.training.trainer import TokenRowsOnDisk

    path = tmp_path / "train.parquet"
    pq.write_table(
        pa.table({"input_ids": pa.array([], type=pa.list_(pa.int32())), "label": pa.array([], pa.int64())}), path
    )
    rows = TokenRowsOnDisk(path, tmp_path)
    assert len(rows) == 0 and len(rows.lengths) == 0


def test_damaged_train_file_is_one_line(tmp_path):
    from textclf.training.trainer import TokenRowsOnDisk

    path = tmp_path / "train.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(PipelineError, match=r"train.parquet: not a readable Parquet file"):
        TokenRowsOnDisk(path, tmp_path / "state")


def test_training_on_rows_on_disk_writes_the_same_weights(tmp_path, tiny_model):
    """The same batches in the same order: the weights after a few steps are equal, bit for bit."""
    from transformers import AutoTokenizer

    from conftest import committed_params
    from textclf.common.params import FinetuneParams
    from textclf.training.trainer import TokenRowsOnDisk, build_trainer, load_split

    path = _encoded_file(tmp_path / "train.parquet", 40, row_group_size=6)
    params = FinetuneParams.model_validate(
        {**committed_params()["finetune"], "batch_size": 4, "learning_rate": 1e-3, "warmup_ratio": 0.0}
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    weights, initial = [], None
    for rows in (load_split(path), TokenRowsOnDisk(path, tmp_path / "state", rows_per_slice=3)):
        trainer = build_trainer(
            params,
            str(tiny_model),
            False,
            LABELS,
            tokenizer,
            rows,
            torch.device("cpu"),
            tmp_path / f"out-{type(rows).__name__}",
            max_steps=6,
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
        )
        initial = initial or {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        trainer.train()
        weights.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})
    assert weights[0].keys() == weights[1].keys()
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]), name
    assert any(not torch.equal(v, weights[0][k]) for k, v in initial.items()), "training moved the weights"


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
    table = loss_table(labels, logits, LABELS)
    whole = with_texts(table, [texts[row] for row in table["row"]])  # every row's text
    for top_n in (0, 1, 10, 61, 100):
        top = table.head(top_n)
        written = with_texts(top, texts_of_rows(path, top["row"], rows_per_batch=rows_per_batch))
        pd.testing.assert_frame_equal(written, whole.head(top_n))
    assert texts_of_rows(path, [5, 2, 5], rows_per_batch) == [texts[5], texts[2], texts[5]]
    with pytest.raises(PipelineError, match="no row 61"):
        texts_of_rows(path, [61], rows_per_batch)
