"""Property-based tests (Hypothesis) of what the tools read and show: generated strings, tables and bytes."""

from __future__ import annotations

import csv
import json
import re
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from textclf.commands import predict
from textclf.common.errors import one_line
from textclf.common.escape import inert, markdown_cell, terminal
from textclf.io.sources import RawNumber, read_records

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
