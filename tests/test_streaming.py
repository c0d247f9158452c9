"""Memory bounded by the batch: streamed encoding, compact token rows, rows written where they belong,
and UMAP on a stratified sample of memory-mapped hidden states."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import run_main
from textclf.errors import PipelineError
from textclf.evaluation import stratified_sample
from textclf.io import NpyRowWriter, TokenRows, read_npy, read_token_rows


def test_encode_streams_in_slices_and_matches_tokenizing_all_at_once(project, monkeypatch):
    import stages.encode as encode
    from textclf.modeling import encode_texts, load_tokenizer

    monkeypatch.setattr(encode, "ROWS_PER_SLICE", 5)  # 36 train rows: 8 slices, 8 row groups
    run_main("data")
    run_main("encode")
    path = project / "data/encoded/train.parquet"
    assert pq.ParquetFile(path).metadata.num_row_groups == 8
    texts = pd.read_parquet(project / "data/prepared/train.parquet")
    tokenizer = load_tokenizer(str(project / "data/encoded/tokenizer"))
    rows = read_token_rows(path)
    expected = encode_texts(tokenizer, texts["text"].tolist(), 32)
    assert len(rows) == len(expected) == 36 and rows.values.dtype == np.int32
    assert [rows.row(i).tolist() for i in range(len(rows))] == expected
    assert rows.labels.tolist() == texts["label"].tolist()


def test_token_rows_from_lists_and_lengths():
    rows = TokenRows.from_lists([[5, 6, 7], [8], [], [9, 10]], labels=[0, 1, 2, 3])
    assert len(rows) == 4 and rows.lengths.tolist() == [3, 1, 0, 2]
    assert rows.row(0).tolist() == [5, 6, 7] and rows.row(2).tolist() == [] and rows.row(3).tolist() == [9, 10]


def test_rows_written_in_any_order_by_two_writers_equal_np_save(tmp_path):
    values = np.random.default_rng(0).normal(size=(50, 7)).astype(np.float32)
    path = tmp_path / "out.npy"
    NpyRowWriter(path, 50, 7, create=True).close()
    order = np.random.default_rng(1).permutation(50)
    writers = [NpyRowWriter(path, 50, 7, create=False) for _ in range(2)]  # two processes' share each
    for start in range(0, 50, 6):
        index = order[start : start + 6]
        writers[(start // 6) % 2].write(index, values[index])
    for writer in writers:
        writer.close()
    np.save(tmp_path / "reference.npy", values)
    assert path.read_bytes() == (tmp_path / "reference.npy").read_bytes()
    mapped = read_npy(path, mmap=True)
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped[[3, 40]], values[[3, 40]])


def test_damaged_encoded_file_is_one_line(tmp_path):
    bad = tmp_path / "train.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(PipelineError, match=r"train\.parquet: not a readable Parquet file"):
        read_token_rows(bad)
    pd.DataFrame({"text": ["a"]}).to_parquet(bad)
    with pytest.raises(PipelineError, match=r"train\.parquet: missing column\(s\) input_ids, label"):
        read_token_rows(bad)


@pytest.mark.parametrize("n", [1, 5, 60, 99, 100, 500])
def test_stratified_sample_keeps_each_labels_share(n):
    labels = np.repeat([0, 1, 2, 3], [60, 25, 10, 5])
    keep = stratified_sample(labels, n, seed=3)
    assert len(keep) == min(n, 100) and len(set(keep.tolist())) == len(keep) and (np.diff(keep) > 0).all()
    counts = np.bincount(labels[keep], minlength=4)
    share = np.array([60, 25, 10, 5]) * min(n, 100) / 100
    assert (np.abs(counts - share) <= 1).all() or n < 4, counts
    if n >= 4:
        assert (counts >= 1).all(), "every label keeps a row"
    assert np.array_equal(keep, stratified_sample(labels, n, seed=3)), "seeded"


def test_umap_stage_embeds_a_stratified_sample(project):
    import yaml

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["umap"]["max_points"] = 12
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    run_main("data")
    train = pd.read_parquet(project / "data/prepared/train.parquet")
    hidden = project / "data/hidden/pretrained"
    hidden.mkdir(parents=True)
    np.save(hidden / "train.npy", np.random.default_rng(0).normal(size=(len(train), 8)).astype(np.float32))
    run_main("umap@pretrained")
    points = pd.read_csv(project / "plots/umap/pretrained.csv")
    assert len(points) == 12
    assert points["label"].value_counts().tolist() == [2] * 6  # 36 rows, 6 a label: 2 of each
