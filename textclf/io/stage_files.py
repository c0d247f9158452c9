"""Reading back the files stages pass each other (JSON, Parquet, ``.npy``): a damaged one is one line naming it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.lib import format as npy

from textclf.common.errors import PipelineError, first_line
from textclf.common.escape import terminal

REBUILD_HINT = "restore it with `dvc checkout` or rebuild it with `dvc repro --force <stage>`"


def _existing(path: Path | str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: not found (run the stage that writes it first: dvc repro)")
    return path


def read_json(path: Path | str) -> object:
    path = _existing(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{path}: not valid UTF-8 (byte {exc.start}): {REBUILD_HINT}") from None
    except json.JSONDecodeError as exc:
        raise PipelineError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): {REBUILD_HINT}"
        ) from None


def unreadable_parquet(path: Path | str, exc: BaseException, hint: str = REBUILD_HINT) -> PipelineError:
    return PipelineError(f"{path}: not a readable Parquet file ({first_line(exc)})" + (f": {hint}" if hint else ""))


def open_parquet(path: Path | str, columns: tuple[str, ...] = (), hint: str = REBUILD_HINT) -> pq.ParquetFile:
    """An open ``pq.ParquetFile`` with ``columns``, the one way this project opens Parquet; errors end in ``hint``."""
    path = _existing(path)
    try:  # pyarrow raises ArrowInvalid, OSError and more for damaged files
        handle = pq.ParquetFile(path)
    except Exception as exc:
        raise unreadable_parquet(path, exc, hint) from None
    missing_columns(path, handle.schema_arrow.names, columns, hint)
    return handle


def missing_columns(path: Path | str, found: Sequence, required: Sequence[str], hint: str = "") -> None:
    if missing := [c for c in required if c not in found]:
        found = ", ".join(map(terminal, found)) or "none"  # a column name may hold a line break
        raise PipelineError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {found})" + (f": {hint}" if hint else "")
        )


def read_table(path: Path | str, columns: tuple[str, ...] = (), then: Callable = lambda table: table):
    """``then(table)`` of ``columns`` of a stage's Parquet file; pyarrow's errors in either are one line."""
    handle = open_parquet(path, columns)
    try:
        return then(handle.read(columns=list(columns) or None))
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and more for damaged files
        raise unreadable_parquet(path, exc) from None


def read_parquet(path: Path | str, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    return read_table(path, columns, pa.Table.to_pandas)


def parquet_rows(path: Path | str, columns: tuple[str, ...] = ()) -> int:
    return open_parquet(path, columns).metadata.num_rows


def iter_parquet(
    path: Path | str, columns: tuple[str, ...], rows_per_batch: int = 10_000, hint: str = REBUILD_HINT, only=True
):
    """``(first row, RecordBatch)`` of ``columns`` (every column, ``only`` False), each fully validated."""
    handle, start = open_parquet(path, columns, hint), 0
    try:  # a consumer's exceptions never reach this frame: only pyarrow's (ArrowInvalid, OSError, ...) are caught
        for batch in handle.iter_batches(batch_size=rows_per_batch, columns=list(columns) if only else None):
            batch.validate(full=True)
            yield start, batch
            start += batch.num_rows
    except Exception as exc:
        raise unreadable_parquet(path, exc, hint) from None


@dataclass
class TokenRows:
    """Token ids of many rows as one flat int32 array cut by offsets (4 bytes a token, not a list's 36), with labels."""

    values: np.ndarray  # int32, every row's ids one after another
    offsets: np.ndarray  # int64, len(rows) + 1: row i is values[offsets[i]:offsets[i + 1]]
    labels: np.ndarray | None = None

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]], labels: Sequence[int] | None = None) -> TokenRows:
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        values = np.fromiter((i for r in rows for i in r), dtype=np.int32, count=int(lengths.sum()))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return cls(values, offsets, None if labels is None else np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def take(self, index: np.ndarray) -> TokenRows:
        index = np.asarray(index, dtype=np.int64)
        values = np.concatenate([np.empty(0, np.int32)] + [self.row(i) for i in index.tolist()])
        offsets = np.concatenate([[0], np.cumsum(self.lengths[index])]).astype(np.int64)
        return TokenRows(values, offsets, None if self.labels is None else self.labels[index])


def read_token_rows(path: Path | str) -> TokenRows:
    return token_rows_of(read_token_table(path))


def read_token_table(path: Path | str) -> pa.Table:
    # validated: a damaged page can hold list offsets past the values
    return read_table(path, ("input_ids", "label"), lambda table: table.validate(full=True) or table)


def list_lengths(column) -> np.ndarray:
    """Items per row of a chunked pyarrow list column, as int32 (no row is decoded)."""
    parts = [pc.list_value_length(c).to_numpy(zero_copy_only=False) for c in column.chunks]
    return np.concatenate(parts).astype(np.int32, copy=False) if parts else np.empty(0, np.int32)


def token_rows_of(table) -> TokenRows:
    """A pyarrow table's ``input_ids`` and ``label`` as ``TokenRows``, the ids copied once."""
    ids = table.column("input_ids")
    offsets = np.concatenate([[0], np.cumsum(list_lengths(ids), dtype=np.int64)])
    flat = [pc.list_flatten(chunk).to_numpy(zero_copy_only=False) for chunk in ids.chunks]
    values = np.concatenate([np.empty(0, np.int32), *flat]).astype(np.int32, copy=False)
    return TokenRows(values, offsets, table.column("label").to_numpy().astype(np.int64, copy=False))


# Rows of one slice that ``iter_token_rows`` holds at a time (a few tens of MB of token ids)
ROWS_PER_SLICE = 262_144


def iter_token_rows(path: Path | str, rows_per_slice: int | None = None) -> Iterator[tuple[int, TokenRows]]:
    """``(first row, TokenRows)`` of the encode stage's file, ``rows_per_slice`` rows at a time."""
    for start, batch in iter_parquet(path, ("input_ids", "label"), rows_per_slice or ROWS_PER_SLICE):
        yield start, token_rows_of(pa.Table.from_batches([batch]))


class NpyRowWriter:
    """A float32 (rows x width) ``.npy`` file, created sparse, whose rows any process writes with ``pwrite``."""

    def __init__(self, path: Path | str, n_rows: int, width: int, create: bool):
        self.path, self.width = Path(path), width
        if create and n_rows == 0:
            np.save(self.path, np.zeros((0, width), dtype=np.float32))
        elif create:
            npy.open_memmap(self.path, mode="w+", dtype=np.float32, shape=(n_rows, width)).flush()
        self.offset = self.path.stat().st_size - n_rows * width * 4
        self.fd = os.open(self.path, os.O_WRONLY)

    def write(self, index: np.ndarray, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=np.float32)
        for i, row in zip(index.tolist(), values, strict=True):
            os.pwrite(self.fd, row.tobytes(), self.offset + i * self.width * 4)

    def close(self) -> None:
        os.close(self.fd)


class NpyRows:
    """The rows of a 2-D ``.npy`` file, read when indexed; never memory-mapped: touched pages of a map count in
    the RSS (12.5M rows of states read through a map gave a stage a peak RSS of the file's size)."""

    SLICE_ROWS = 65_536  # rows read at once when most rows of a slice are wanted

    def __init__(self, path: Path, shape: tuple[int, int], dtype: np.dtype, offset: int):
        self.path, self.shape, self.dtype, self.offset = path, shape, dtype, offset
        self.ndim, self.row_bytes = 2, shape[1] * dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, fd: int, start: int, stop: int) -> np.ndarray:
        data = os.pread(fd, (stop - start) * self.row_bytes, self.offset + start * self.row_bytes)
        return np.frombuffer(data, dtype=self.dtype).reshape(stop - start, self.shape[1]).copy()

    def __getitem__(self, key) -> np.ndarray:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if isinstance(key, slice):
                start, stop, step = key.indices(len(self))
                if step != 1:
                    raise ValueError("NpyRows: slices with a step are not supported")
                return self._read(fd, start, max(start, stop))
            index = np.asarray(key, dtype=np.int64)
            if len(index) and (index.min() < 0 or index.max() >= len(self)):
                raise IndexError(f"{self.path}: rows out of range 0..{len(self) - 1}")
            order = np.argsort(index, kind="stable")
            wanted = index[order]
            out = np.empty((len(index), self.shape[1]), dtype=self.dtype)
            for start in range(0, len(self), self.SLICE_ROWS):
                lo, hi = np.searchsorted(wanted, [start, start + self.SLICE_ROWS])
                if hi == lo:
                    continue
                if hi - lo < self.SLICE_ROWS // 8:  # a few rows of this slice: read just those
                    out[order[lo:hi]] = np.stack([self._read(fd, i, i + 1)[0] for i in wanted[lo:hi].tolist()])
                else:
                    block = self._read(fd, start, min(start + self.SLICE_ROWS, len(self)))
                    out[order[lo:hi]] = block[wanted[lo:hi] - start]
            return out
        finally:
            os.close(fd)


def open_npy(path: Path | str) -> NpyRows:
    path = _existing(path)
    try:
        with open(path, "rb") as handle:
            v1 = npy.read_magic(handle) == (1, 0)
            shape, fortran_order, dtype = (npy.read_array_header_1_0 if v1 else npy.read_array_header_2_0)(handle)
            offset = handle.tell()
    except Exception as exc:  # numpy raises ValueError, EOFError, SyntaxError and more for a damaged header
        raise PipelineError(f"{path}: not a readable .npy array ({first_line(exc)}): {REBUILD_HINT}") from None
    if len(shape) != 2 or fortran_order or not np.issubdtype(dtype, np.number) or dtype.hasobject:
        raise PipelineError(f"{path}: expected a 2-D numeric array, found shape {shape}: {REBUILD_HINT}")
    if path.stat().st_size < offset + shape[0] * shape[1] * dtype.itemsize:
        raise PipelineError(f"{path}: shorter than its {shape} array (truncated?): {REBUILD_HINT}")
    return NpyRows(path, shape, dtype, offset)


def read_states(
    folder: Path | str, split: str, n_rows: int, sample_ok: bool = False
) -> tuple[NpyRows, np.ndarray | None]:
    """A hidden_states folder's ``<split>.npy`` of ``n_rows``, and ``<split>_rows.npy``'s positions (or None)."""
    folder = Path(folder)
    path, rows_path = folder / f"{split}.npy", folder / f"{split}{ROWS_SUFFIX}"
    states = open_npy(path)
    if not rows_path.exists():
        if len(states) != n_rows:
            raise PipelineError(f"{path}: {len(states)} rows, the split has {n_rows} (rerun: dvc repro)")
        return states, None
    try:
        rows = np.load(rows_path, allow_pickle=False)
    except Exception as exc:  # as in open_npy
        raise PipelineError(f"{rows_path}: not a readable .npy array ({first_line(exc)}): {REBUILD_HINT}") from None
    if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer) or len(rows) != len(states):
        raise PipelineError(
            f"{rows_path}: expected {len(states)} row positions, found shape {rows.shape}: {REBUILD_HINT}"
        )
    if not sample_ok:
        raise PipelineError(
            f"{path}: holds {len(rows)} of the split's {n_rows} rows, every row is needed (rerun: dvc repro)"
        )
    if len(rows) and rows[-1] >= n_rows:
        raise PipelineError(f"{rows_path}: rows beyond the split's {n_rows} (rerun: dvc repro)")
    return states, rows


# beside a hidden-states split that holds some of its rows: their positions (hidden_states@finetuned's train)
ROWS_SUFFIX = "_rows.npy"
