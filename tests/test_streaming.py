"""Memory bounded by the batch: the data stage in two passes and slices, streamed encoding, compact
token rows, rows written where they belong, and UMAP on a stratified sample of memory-mapped hidden states."""

from __future__ import annotations

import io
import json
import tracemalloc

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import textclf.io.sources
from conftest import LABELS, data_params, few_rows, run_main, write_jsonl, write_params
from textclf.common.errors import PipelineError
from textclf.evaluation.sampling import stratified_sample
from textclf.io.sources import load_dataset
from textclf.io.stage_files import NpyRowWriter, TokenRows, iter_token_rows, open_npy, read_token_rows


def test_encode_streams_in_slices_and_matches_tokenizing_all_at_once(project, monkeypatch):
    import stages.encode as encode
    from textclf.models.loading import encode_texts, load_tokenizer

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


@pytest.mark.parametrize("size", [1, 7, 10, 50, 103, 1000])
def test_token_rows_read_in_slices_equal_all_at_once(tmp_path, size):
    import pyarrow as pa

    rng = np.random.default_rng(0)
    ids = [rng.integers(0, 1000, rng.integers(0, 12)).tolist() for _ in range(103)]
    table = pa.table({"input_ids": pa.array(ids, pa.list_(pa.int32())), "label": rng.integers(0, 4, 103)})
    pq.write_table(table, tmp_path / "train.parquet", row_group_size=10)  # slices cut across row groups
    whole = read_token_rows(tmp_path / "train.parquet")
    assert [whole.row(i).tolist() for i in range(103)] == ids
    starts, rows, labels = [], [], []
    for start, part in iter_token_rows(tmp_path / "train.parquet", size):
        assert len(part) <= size and part.values.dtype == np.int32
        starts.append(start)
        rows += [part.row(i).tolist() for i in range(len(part))]
        labels += part.labels.tolist()
    assert starts == list(range(0, 103, size)) and rows == ids and labels == whole.labels.tolist()


def test_hidden_states_read_in_slices_equal_one_slice(project, monkeypatch):
    import textclf.io.stage_files

    run_main("data")
    run_main("encode")
    run_main("hidden_states@pretrained")
    whole = {
        split: np.load(project / f"data/hidden/pretrained/{split}.npy") for split in ("train", "validation", "test")
    }
    read = []
    original = textclf.io.stage_files.iter_token_rows
    monkeypatch.setattr(textclf.io.stage_files, "ROWS_PER_SLICE", 5)  # 36 train rows: 8 slices, the last of 1 row
    monkeypatch.setattr(
        "stages.hidden_states.iter_token_rows",
        lambda path: (read.append(len(rows)) or (start, rows) for start, rows in original(path)),
    )
    run_main("hidden_states@pretrained")
    assert max(read) == 5 and sum(read) == sum(len(w) for w in whole.values())
    for split, states in whole.items():
        sliced = np.load(project / f"data/hidden/pretrained/{split}.npy")
        assert sliced.shape == states.shape and np.abs(states).sum(1).min() > 0  # every row written
        np.testing.assert_allclose(sliced, states, rtol=1e-5, atol=1e-5)


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
    read_back = open_npy(path)  # the stages' reader (pread, no memory map)
    assert read_back.shape == (50, 7) and np.array_equal(read_back[np.array([3, 40])], values[[3, 40]])


def test_damaged_encoded_file_is_one_line(tmp_path):
    bad = tmp_path / "train.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(PipelineError, match=r"train\.parquet: not a readable Parquet file"):
        read_token_rows(bad)
    pd.DataFrame({"text": ["a"]}).to_parquet(bad)
    with pytest.raises(PipelineError, match=r"train\.parquet: missing column\(s\) input_ids, label"):
        read_token_rows(bad)


@pytest.mark.parametrize("n", [1, 3, 5, 60, 99, 100, 500])
@pytest.mark.parametrize("counts", [[60, 25, 10, 5], [60, 34, 5, 1]], ids=["four-labels", "a-label-of-one-row"])
def test_stratified_sample_keeps_each_labels_share(n, counts):
    """Each label within one row of its share, also with a label of one row (train_test_split refuses
    that) and fewer rows drawn than there are labels."""
    labels = np.random.default_rng(0).permutation(np.repeat([0, 1, 2, 3], counts))
    keep = stratified_sample(labels, n, seed=3)
    assert len(keep) == min(n, 100) and len(set(keep.tolist())) == len(keep) and (np.diff(keep) > 0).all()
    share = np.array(counts) * min(n, 100) / 100
    assert (np.abs(np.bincount(labels[keep], minlength=4) - share) < 1).all()
    assert np.array_equal(keep, stratified_sample(labels, n, seed=3)), "seeded"
    assert n >= 100 or not np.array_equal(keep, stratified_sample(labels, n, seed=4))


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


# --- the data stage: two passes over the files, rows written a slice at a time ------------------------


def _folder(path, train_rows: list[dict]) -> str:
    write_jsonl(path / "train.jsonl", train_rows)
    for split in ("validation", "test"):
        write_jsonl(path / f"{split}.jsonl", few_rows(split, 2))
    (path / "labels.json").write_text(json.dumps(LABELS))
    return str(path)


def test_data_stage_writes_slices_equal_to_reading_all_at_once(tmp_path, monkeypatch):
    rows = few_rows("train", 6)
    rows[3]["text"], rows[11]["text"] = " ", ""  # dropped: 34 rows left, the first 23 kept
    params = {"source": _folder(tmp_path / "src", rows), "empty_texts": "drop", "max_train_samples": 23}
    whole = load_dataset(data_params(**params))  # one slice: 100,000 rows
    monkeypatch.setattr(textclf.io.sources, "ROWS_PER_SLICE", 5)
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path / "params.yaml", data=params)
    run_main("data")
    for split, groups in (("train", 5), ("validation", 3), ("test", 3)):  # 23 rows: 5 row groups; 12: 3
        path = tmp_path / f"data/prepared/{split}.parquet"
        assert pq.ParquetFile(path).metadata.num_row_groups == groups
        pd.testing.assert_frame_equal(pd.read_parquet(path), whole.splits[split][["text", "label"]])
    assert len(whole.splits["train"]) == 23 and 4 not in whole.splits["train"]["line"].tolist()
    slices = []
    streamed = load_dataset(data_params(**params), sink=lambda split, frame: slices.append((split, len(frame))))
    assert streamed.splits == {} and streamed.rows == {"train": 23, "validation": 12, "test": 12}
    assert slices[:6] == [("train", 5)] * 4 + [("train", 3), ("validation", 5)]


def test_memory_of_the_data_stage_does_not_grow_with_the_rows(tmp_path, monkeypatch):
    """Python's peak allocation while reading, checking and converting 1,000 and 6,000 train rows,
    500 at a time (tracemalloc counts pandas' and numpy's buffers too); with all rows in one slice
    the second peak is 6 times the first."""
    monkeypatch.setattr(textclf.io.sources, "ROWS_PER_SLICE", 500)
    template = few_rows("train", 6)
    peaks = []
    for n in (1_000, 1_000, 6_000):  # the first run imports and caches what it needs once
        rows = [{"text": f"{template[i % 36]['text']} {i}", "label": template[i % 36]["label"]} for i in range(n)]
        params = data_params(source=_folder(tmp_path / f"{len(peaks)}", rows))
        tracemalloc.start()
        load_dataset(params, sink=lambda split, frame: None)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[2] < 1.5 * peaks[1], peaks


def test_a_bad_label_past_the_cap_is_still_reported(tmp_path):
    rows = few_rows("train", 6)
    rows[-1]["label"] = "boredom"
    with pytest.raises(PipelineError, match=r"train\.jsonl: line 36: unknown label 'boredom'"):
        load_dataset(data_params(source=_folder(tmp_path, rows), max_train_samples=5))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [  # a bad byte anywhere comes first, then the first parse error, then a missing column
        (
            "train.jsonl",
            b'{"text": "a", "label": 1}\n{"text": oops}\n'
            + b'{"text": "b", "label": 1}\n' * 20
            + b'{"text": "\xff", "label": 1}\n',
            r"train\.jsonl: line 23: not valid UTF-8 \(byte 0xff\)",
        ),
        (
            "train.txt",
            b"i feel\n" + b"i am;joy\n" * 5 + b"\xfe;joy\n",
            r"train\.txt: line 7: not valid UTF-8 \(byte 0xfe\)",
        ),
        (
            "train.csv",
            b"text,labels\n" + b"i am,joy\n" * 5 + b'"i am,joy\n',
            r"train\.csv: line 7: a quoted field .* never closed",
        ),
        (
            "train.csv",
            b"text,label\n" + b"i am,joy,1\n" + b"i am,joy\n" * 5 + b"\xfe,joy\n",
            r"train\.csv: line 8: not valid UTF-8",
        ),
        ("train.jsonl", b'{"text": "a"}\n' * 5 + b"[1]\n", r"train\.jsonl: line 6: expected a JSON object"),
    ],
    ids=["jsonl", "txt", "csv-header", "csv-fields", "jsonl-columns"],
)
def test_a_parse_error_waits_for_the_end_of_its_file(tmp_path, name, content, message):
    """The first pass reads a file to its end before reporting its parse error: the same error as
    when the whole file was decoded and parsed before any check."""
    _folder(tmp_path, few_rows("train", 4))
    (tmp_path / "train.jsonl").unlink()
    (tmp_path / name).write_bytes(content)
    with pytest.raises(PipelineError, match=message):
        load_dataset(data_params(source=str(tmp_path)))


def test_csv_lines_end_where_the_csv_module_ended_them(tmp_path):
    """Read a line at a time, a CSV is split where io.StringIO(newline="") split it before: at
    "\\r\\n", a lone "\\r" and "\\n" (not at U+2028 or form feeds)."""
    text = 'text,label\r\n"one\rtwo",joy\rthree\u2028x,sadness\n\r\nfour\x0c,joy\r'
    path = tmp_path / "train.csv"
    path.write_bytes(text.encode())
    lines = list(textclf.io.sources._csv_lines(textclf.io.sources._lines(path, breaks=True)))
    assert lines == list(io.StringIO(text, newline="")) and len(lines) == 6


def test_token_rows_take_and_a_damaged_sample_positions_file_is_one_line(tmp_path):
    from textclf.common.errors import PipelineError
    from textclf.io.stage_files import TokenRows, read_states

    rows = TokenRows.from_lists([[1, 2], [3], [4, 5, 6], [7]], labels=[0, 1, 2, 3])
    taken = rows.take(np.array([2, 0]))
    assert [taken.row(i).tolist() for i in range(len(taken))] == [[4, 5, 6], [1, 2]]
    assert taken.labels.tolist() == [2, 0] and len(rows.take(np.array([], dtype=np.int64))) == 0

    np.save(tmp_path / "train.npy", np.zeros((3, 4), dtype=np.float32))
    states, positions = read_states(tmp_path, "train", 3)
    assert states.shape == (3, 4) and positions is None
    with pytest.raises(PipelineError, match=r"train\.npy: 3 rows, the split has 4 \(rerun: dvc repro\)"):
        read_states(tmp_path, "train", 4)
    np.save(tmp_path / "train_rows.npy", np.array([1, 5, 9]))
    assert read_states(tmp_path, "train", 10, sample_ok=True)[1].tolist() == [1, 5, 9]
    with pytest.raises(PipelineError, match=r"train\.npy: holds 3 of the split's 10 rows, every row is needed"):
        read_states(tmp_path, "train", 10)  # the baselines need every row
    with pytest.raises(PipelineError, match=r"train_rows\.npy: rows beyond the split's 9"):
        read_states(tmp_path, "train", 9, sample_ok=True)
    np.save(tmp_path / "train_rows.npy", np.array([1, 5]))
    with pytest.raises(PipelineError, match=r"train_rows\.npy: expected 3 row positions"):
        read_states(tmp_path, "train", 10, sample_ok=True)


@pytest.mark.parametrize("slice_rows", [8, 65_536])
def test_npy_rows_read_from_disk_equal_the_array(tmp_path, monkeypatch, slice_rows):
    """open_npy reads rows with pread (no memory map, whose touched pages would all count in RSS): slices,
    sorted and unsorted positions, a few rows of a slice and most of one, all equal np.load's."""
    from textclf.io.stage_files import NpyRows, open_npy

    monkeypatch.setattr(NpyRows, "SLICE_ROWS", slice_rows)
    array = np.random.default_rng(0).normal(size=(203, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", array)
    rows = open_npy(tmp_path / "x.npy")
    assert rows.shape == (203, 5) and len(rows) == 203
    np.testing.assert_array_equal(rows[10:50], array[10:50])
    np.testing.assert_array_equal(rows[200:400], array[200:])
    for index in ([5, 3, 200, 3], list(range(0, 203, 2)), list(range(40)), []):
        np.testing.assert_array_equal(rows[np.array(index, dtype=np.int64)], array[index])
    with pytest.raises(IndexError):
        rows[np.array([203])]

    (tmp_path / "short.npy").write_bytes((tmp_path / "x.npy").read_bytes()[:-7])
    with pytest.raises(PipelineError, match=r"short\.npy: shorter than its \(203, 5\) array"):
        open_npy(tmp_path / "short.npy")
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    with pytest.raises(PipelineError, match=r"bad\.npy: not a readable \.npy array"):
        open_npy(tmp_path / "bad.npy")
    np.save(tmp_path / "flat.npy", np.zeros(4, dtype=np.float32))
    with pytest.raises(PipelineError, match=r"flat\.npy: expected a 2-D numeric array"):
        open_npy(tmp_path / "flat.npy")
