"""Property-based tests (Hypothesis) of what the tools read and show: generated strings, tables and bytes."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import data_params
from textclf.commands import predict
from textclf.common.errors import PipelineError, one_line
from textclf.common.escape import inert, markdown_cell, terminal
from textclf.io.sources import RawNumber, load_dataset, read_label_names, read_records
from textclf.io.stage_files import iter_parquet, iter_token_rows, read_json, read_parquet, read_states, read_token_rows

FAST = settings(max_examples=80, deadline=None)
# any code point, lone surrogates and controls included, with the troublesome ones often
ANY_TEXT = st.text(
    st.one_of(st.characters(codec=None), st.sampled_from("\x1b\r\n\t|<>\\`*&\u202e\u2028\x9b\x00")), max_size=40
)


def _raw_control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs") or ch in "\u2028\u2029\u202e\u2066" for ch in text)


@FAST
@given(ANY_TEXT)
def test_terminal_text_holds_no_control_character(text):
    shown = terminal(text)
    assert not _raw_control(shown)
    assert shown == text or _raw_control(text)  # plain text is left as it is
    assert not _raw_control(one_line(text)) and "\n" not in one_line(text)


@FAST
@given(ANY_TEXT)
def test_a_markdown_cell_is_one_line_with_every_pipe_and_tag_escaped(text):
    cell = markdown_cell(text)
    assert "\n" not in cell and "\r" not in cell and not _raw_control(cell)
    # every |, < and > is preceded by an odd number of backslashes: escaped, never a cell border or a tag
    for match in re.finditer(r"(\\*)([|<>])", cell):
        assert len(match.group(1)) % 2 == 1, cell


@FAST
@given(ANY_TEXT)
def test_page_text_never_forms_a_tag(text):
    assert "<" not in inert(text) and ">" not in inert(text)


# --- what predict reads comes back as it was: columns, values and types -----------------------------

TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=30).filter(str.strip)  # surrogate-free
NOTE = st.one_of(st.none(), st.text(st.characters(codec="utf-8"), max_size=30))
NUMBER = st.one_of(st.none(), st.integers(-(2**70), 2**70))
ROWS = st.lists(st.tuples(TEXT, NOTE, NUMBER), min_size=1, max_size=8)


def _relabel(source: Path, out: Path) -> None:
    """predict's reading and writing, three rows a slice, with a stand-in for the model."""
    with predict.OutputWriter(out, None) as writer:
        for frame in predict.read_input(source, [], rows_per_slice=3):
            probabilities = np.tile([0.25, 0.75], (len(frame), 1))
            writer.write(predict.label_rows(frame, probabilities, ["a", "b"], True, out.suffix != ".jsonl"))


def _round_trip(rows, suffix: str, write, out_suffix: str) -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        source, out = Path(folder) / f"in{suffix}", Path(folder) / f"out{out_suffix}"
        write(source, rows)
        _relabel(source, out)
        if out_suffix == ".parquet":
            return pq.read_table(out)
        got = [row for _, row in read_records(out, ("text", "label"))]
    assert all(row["label"] == "b" and row["score"] in ("0.75", 0.75, "0.75") for row in got)
    return [{k: v for k, v in row.items() if k in ("text", "note", "n")} for row in got]


def _write_csv(path: Path, rows, delimiter=",") -> None:
    cells = [["text", "note", "n"], *(["" if v is None else v for v in row] for row in rows)]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        if delimiter == "\t":  # TSV: fields as they are, no quoting
            handle.write("".join("\t".join(map(str, row)) + "\n" for row in cells))
        else:
            csv.writer(handle).writerows(cells)


@FAST
@given(ROWS)
def test_csv_fields_come_back_as_written(rows):
    expected = [{"text": t, "note": note or "", "n": "" if n is None else str(n)} for t, note, n in rows]
    assert _round_trip(rows, ".csv", _write_csv, ".csv") == expected


@FAST
@given(
    st.lists(
        st.tuples(TEXT, NOTE, NUMBER).filter(lambda r: not re.search("[\t\r\n]", f"{r[0]}{r[1]}")),
        min_size=1,
        max_size=8,
    )
)
@example([('"she said" hi', '"', None), ("'x'", '""', 2**64)])
def test_tsv_fields_with_quotes_come_back_as_written(rows):
    """TSV has no quoting: a quote at the start of a field is part of the text."""
    expected = [{"text": t, "note": note or "", "n": "" if n is None else str(n)} for t, note, n in rows]
    assert _round_trip(rows, ".tsv", lambda p, r: _write_csv(p, r, "\t"), ".csv") == expected


@FAST
@given(ROWS, st.sampled_from([".jsonl", ".json"]))
def test_json_values_come_back_with_their_types(rows, suffix):
    """Strings stay strings, integers (even past 2**63) stay integers as written, nulls stay null."""
    records = [{"text": t, "note": note, "n": n} for t, note, n in rows]

    def write(path, _):
        lines = [json.dumps(r, ensure_ascii=False) for r in records]
        path.write_text(
            "\n".join(lines) + "\n" if suffix == ".jsonl" else "[" + ",\n".join(lines) + "]", encoding="utf-8"
        )

    got = _round_trip(rows, suffix, write, ".jsonl")
    assert [{k: json.loads(v) if isinstance(v, RawNumber) else v for k, v in r.items()} for r in got] == records


@FAST
@given(ROWS)
def test_parquet_columns_come_back_with_their_types(rows):
    table = pa.table(
        {
            "text": pa.array([t for t, _, _ in rows], pa.string()),
            "note": pa.array([note for _, note, _ in rows], pa.large_string()),
            "n": pa.array([None if n is None else n % 2**63 for _, _, n in rows], pa.int64()),
        }
    )
    got = _round_trip(rows, ".parquet", lambda p, _: pq.write_table(table, p), ".parquet")
    assert got.select(["text", "note", "n"]).equals(table)


def test_huge_fields_come_back_whole(tmp_path):
    """A field past the csv module's default limit (128 KiB) is read like any other."""
    big = "x" * 300_000
    for suffix, delimiter in ((".csv", ","), (".tsv", "\t")):
        rows = [(big, big, 1), ("small", "", None)]
        expected = [{"text": big, "note": big, "n": "1"}, {"text": "small", "note": "", "n": ""}]
        assert _round_trip(rows, suffix, lambda p, r, d=delimiter: _write_csv(p, r, d), ".csv") == expected


# --- every file the tools read gives its result or one line naming it, on any bytes ------------------


def _valid_files() -> dict[str, bytes]:
    """A small valid file of each format read (split files, labels.json, predict inputs, stage files)."""
    rows = [{"text": f"i feel {w}", "label": w} for w in ("sad", "glad", "sad", "glad")]
    buffer = io.BytesIO()
    pq.write_table(pa.table({"text": [r["text"] for r in rows], "label": [r["label"] for r in rows]}), buffer)
    npy = io.BytesIO()
    np.save(npy, np.arange(12, dtype=np.float32).reshape(4, 3))
    return {
        ".jsonl": "".join(json.dumps(r) + "\n" for r in rows).encode(),
        ".csv": ("text,label\n" + "".join(f'"{r["text"]}",{r["label"]}\n' for r in rows)).encode(),
        ".tsv": ("text\tlabel\n" + "".join(f"{r['text']}\t{r['label']}\n" for r in rows)).encode(),
        ".txt": "".join(f"{r['text']};{r['label']}\n" for r in rows).encode(),
        ".json": json.dumps(rows).encode(),
        ".parquet": buffer.getvalue(),
        ".npy": npy.getvalue(),
    }


VALID = _valid_files()


def _damaged(valid: bytes):
    """Random bytes, a truncation, or one byte changed, of a valid file."""
    return st.one_of(
        st.binary(max_size=200),
        st.integers(0, len(valid) - 1).map(lambda n: valid[:n]),
        st.tuples(st.integers(0, len(valid) - 1), st.binary(min_size=1, max_size=3)).map(
            lambda p: valid[: p[0]] + p[1] + valid[p[0] + len(p[1]) :]
        ),
    )


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=8,
)


def _any_shape(suffix: str):
    """A damaged file, or for JSON formats rows of JSON values of any shape (objects with odd values)."""
    if suffix not in (".jsonl", ".json"):
        return _damaged(VALID[suffix])
    rows = st.lists(JSON_VALUES | st.fixed_dictionaries({"text": JSON_VALUES, "label": JSON_VALUES}), max_size=5)
    join = (lambda r: "\n".join(map(json.dumps, r))) if suffix == ".jsonl" else json.dumps
    return st.one_of(_damaged(VALID[suffix]), rows.map(lambda r: join(r).encode()))


def _one_line_or_result(read, path: Path, hint: str = ""):
    """``read(path)``'s result, or None after a PipelineError of one line naming ``path`` (and ``hint``: what
    to do): never another exception type."""
    try:
        return read(path)
    except PipelineError as exc:
        assert str(path) in str(exc) and hint in str(exc) and "\n" not in str(exc), str(exc)
        return None


@FAST
@given(st.data(), st.sampled_from([".jsonl", ".csv", ".txt", ".parquet"]))
def test_a_damaged_split_file_is_read_or_one_line(data, suffix):
    """The data stage's whole check of a folder whose train file is damaged."""
    content = data.draw(_any_shape(suffix))
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for split in ("validation", "test"):
            (folder / f"{split}.jsonl").write_bytes(VALID[".jsonl"])
        name = "train.txt" if suffix == ".txt" else f"train{suffix}"
        (folder / name).write_bytes(content)
        try:
            load_dataset(data_params(source=str(folder)))
        except PipelineError as exc:
            assert str(folder) in str(exc) and "\n" not in str(exc), str(exc)


@FAST
@given(st.data(), st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".txt", ".parquet"]))
def test_a_damaged_predict_input_is_read_or_one_line(data, suffix):
    content = data.draw(_any_shape(suffix))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"in{suffix}"
        path.write_bytes(content)
        frames = _one_line_or_result(lambda p: list(predict.read_input(p, [])), path)
        for frame in frames or []:
            assert all(isinstance(text, str) and text.strip() for text in frame["text"])


@FAST
@given(st.one_of(JSON_VALUES.map(lambda v: json.dumps(v).encode()), _damaged(b'["sadness", "joy"]')))
def test_labels_json_of_any_shape_is_a_list_of_names_or_one_line(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "labels.json"
        path.write_bytes(content)
        names = _one_line_or_result(read_label_names, path)
        assert names is None or all(isinstance(n, str) for n in names)


@FAST
@given(st.data(), st.sampled_from([".json", ".parquet", "tokens.parquet", ".npy", "rows.npy"]))
def test_a_damaged_stage_file_is_read_or_one_line(data, kind):
    """What stages pass each other: JSON, Parquet, the encode stage's token rows, a hidden-states .npy and
    its row positions."""
    valid = VALID[".npy"] if kind.endswith(".npy") else VALID.get(kind)
    if kind == "rows.npy":
        rows = io.BytesIO()
        np.save(rows, np.arange(4))
        valid = rows.getvalue()
    if kind == "tokens.parquet":
        tokens = io.BytesIO()
        pq.write_table(pa.table({"input_ids": [[101, 7, 102], [101, 102]], "label": [0, 1]}), tokens)
        valid = tokens.getvalue()
    content = data.draw(_damaged(valid))
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        if kind == ".json":
            (folder / "f.json").write_bytes(content)
            _one_line_or_result(read_json, folder / "f.json", "dvc")
        elif kind == "tokens.parquet":
            (folder / "f.parquet").write_bytes(content)
            _one_line_or_result(read_token_rows, folder / "f.parquet", "dvc")
            _one_line_or_result(lambda p: list(iter_token_rows(p, 1)), folder / "f.parquet", "dvc")
        elif kind == ".parquet":
            (folder / "f.parquet").write_bytes(content)
            _one_line_or_result(read_parquet, folder / "f.parquet", "dvc")
            _one_line_or_result(lambda p: list(iter_parquet(p, ("text",))), folder / "f.parquet", "dvc")
        else:
            (folder / "train.npy").write_bytes(content if kind == ".npy" else VALID[".npy"])
            if kind == "rows.npy":
                (folder / "train_rows.npy").write_bytes(content)
            states = _one_line_or_result(lambda _: read_states(folder, "train", 4, sample_ok=True), folder, "dvc")
            if states is not None:
                assert states[0][0 : len(states[0])].shape[0] == len(states[0])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
# the shape `dvc exp show --json` prints (DVC 3), with any value in any place
EXP_SHOW = st.lists(
    st.fixed_dictionaries(
        {"rev": st.text(max_size=8), "name": st.none() | st.text(max_size=8)},
        optional={
            "data": st.fixed_dictionaries(
                {},
                optional={"params": JSON_VALUES, "metrics": JSON_VALUES, "rev": JSON_VALUES},
            ),
            "experiments": st.none() | st.lists(st.dictionaries(st.sampled_from(["revs", "name"]), JSON_VALUES)),
        },
    ),
    max_size=3,
)


@settings(max_examples=80, deadline=None)
@given(shown=EXP_SHOW | JSON_VALUES, conflict=st.booleans())
def test_sweep_reads_any_exp_show_json_or_says_one_line(shown, conflict):
    """`textclf sweep --exp-show-json` on any JSON (DVC 2's shapes, missing keys, wrong types) or on a file with
    merge-conflict markers: exit 0 with a table, or exit 2 with one line, never a traceback."""
    from textclf.commands import sweep

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "shown.json"
        text = json.dumps(shown)
        path.write_text(f"<<<<<<< HEAD\n{text}\n=======\n{text}\n>>>>>>> other\n" if conflict else text)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = sweep.cli(["--exp-show-json", str(path)])
    err = err.getvalue()
    assert code in (0, 2), err
    if code == 2:
        assert err.startswith("error: ") and err.count("\n") == 1, err
