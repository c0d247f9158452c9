"""Atomic outputs: write into a temporary sibling, move into place only on success.

A crash or Ctrl-C mid-write leaves the previous output (or none), never a truncated file
that DVC would hash as good.
"""

from __future__ import annotations

import errno
import functools
import glob
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from textclf.errors import PipelineError
from textclf.paths import user_path  # noqa: F401  (moved to textclf.paths; modeling imports it from here)


# Written into every folder this project's commands create: an existing folder is replaced only when it
# holds this file (the command wrote it), never a folder of the user's. Constant bytes: outputs reproduce.
MARKER = ".textclf-output"
MARKER_TEXT = "written by textclf: its commands replace this folder only while this file is in it\n"
# Files and folders that mark a project root (never replaced, whatever it holds).
_ROOT_MARKERS = (".git", ".dvc", "dvc.yaml")
# Errors of the file system written to (not of an input): full, over quota, read-only, file too large.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)


def _overlaps(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` are the same path or one is inside the other."""
    return a == b or a in b.parents or b in a.parents


def check_output(target: Path | str, inputs: Sequence[Path | str] = (), is_dir: bool = False) -> Path:
    """Refuse (one line) to replace ``target`` when that would delete what this command did not write:
    the current folder or one of its parents, a project root, one of ``inputs`` (the model, data or files
    being read), a folder inside them or holding them, or an existing folder without this project's marker
    (a file output never replaces a folder). Returns ``target``."""
    target = Path(target)
    resolved = target.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise PipelineError(f"{target}: is the current folder or one of its parents; "
                            "name a new file or folder inside it")
    if resolved.is_dir() and any((resolved / name).exists() for name in _ROOT_MARKERS):
        found = ", ".join(n for n in _ROOT_MARKERS if (resolved / n).exists())
        raise PipelineError(f"{target}: is a project root ({found}); name a new folder instead")
    for source in inputs:
        if _overlaps(resolved, Path(source).resolve()):
            raise PipelineError(f"{target}: would replace {source}, which this command reads; write somewhere else")
    if is_dir and resolved.exists() and not resolved.is_dir():
        raise PipelineError(f"{target}: is a file, not a folder; name a folder (the file is left as it is)")
    if resolved.is_dir() and not target.is_symlink():
        if not is_dir:
            raise PipelineError(f"{target}: is a folder; name a file (the folder is left as it is)")
        if not (resolved / MARKER).is_file():
            raise PipelineError(f"{target}: is a folder this project did not write (no {MARKER} in it); "
                                "move it away or name another folder: it is left as it is")
    return target


@contextmanager
def atomic_path(target: Path | str, is_dir: bool = False, inputs: Sequence[Path | str] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (an empty folder holding ``MARKER`` when ``is_dir``); on
    success it replaces ``target``, on any exception it is removed and ``target`` stays as it was.
    ``check_output`` runs first: a target that is not this project's own output is refused, untouched."""
    target = check_output(target, inputs, is_dir)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # A process killed with SIGKILL cannot clean up: its leftovers go at the next write of the same
        # output (one writer per output: DVC locks the repository). `.*.tmp` is git-ignored meanwhile.
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:  # a read-only or full file system, a file where a folder should be
        raise PipelineError(f"{target}: cannot write here ({exc.strerror or exc})") from None
    work = tmp / target.name
    try:
        if is_dir:
            work.mkdir()
            (work / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
        try:
            yield work
        except OSError as exc:
            if exc.errno not in _WRITE_ERRNOS:
                raise
            raise PipelineError(f"{target}: could not write it ({exc.strerror}); nothing was replaced") from None
        check_output(target, inputs, is_dir)  # again: the target may have appeared while writing
        try:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(work, target)
        except OSError as exc:
            raise PipelineError(f"{target}: could not move the new output into place ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: Path | str, data: object, inputs: Sequence[Path | str] = ()) -> None:
    """``data`` as indented JSON, written atomically (``atomic_path``)."""
    with atomic_path(path, inputs=inputs) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# What to do about a damaged pipeline output: DVC restores the cached copy, or the stage rewrites it.
REBUILD_HINT = "restore it with `dvc checkout` or rebuild it with `dvc repro --force <stage>`"


def _existing(path: Path | str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: not found (run the stage that writes it first: dvc repro)")
    return path


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split("\n")[0].split())
    return text or type(exc).__name__


def read_json(path: Path | str) -> object:
    """A JSON file written by a stage; unreadable or invalid JSON is one line naming the file."""
    path = _existing(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{path}: not valid UTF-8 (byte {exc.start}): {REBUILD_HINT}") from None
    except json.JSONDecodeError as exc:
        raise PipelineError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): {REBUILD_HINT}"
        ) from None


def read_parquet(path: Path | str, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A Parquet file written by a stage (only ``columns``, when given); a truncated or corrupt file,
    or one without the ``columns`` asked for, is one line naming the file."""
    handle = _parquet_file(path, columns)
    try:
        return handle.read(columns=list(columns) or None).to_pandas()
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and others for damaged files
        raise PipelineError(f"{path}: not a readable Parquet file ({_first_line(exc)}): {REBUILD_HINT}") from None


def _parquet_file(path: Path | str, columns: tuple[str, ...]):
    """An open ``pyarrow.parquet.ParquetFile`` holding ``columns``; a damaged file is one line naming it."""
    import pyarrow.parquet as pq

    path = _existing(path)
    try:
        handle = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and others for damaged files
        raise PipelineError(f"{path}: not a readable Parquet file ({_first_line(exc)}): {REBUILD_HINT}") from None
    found = handle.schema_arrow.names
    missing = [c for c in columns if c not in found]
    if missing:
        raise PipelineError(f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(found)}): {REBUILD_HINT}")
    return handle


def parquet_rows(path: Path | str) -> int:
    """Rows in a stage's Parquet file (from its footer: nothing else is read)."""
    return _parquet_file(path, ()).metadata.num_rows


def iter_parquet(path: Path | str, columns: tuple[str, ...], rows_per_batch: int = 10_000):
    """``(first row, pyarrow.RecordBatch)`` pairs of ``columns``: a file read a slice at a time, so that
    memory holds one slice, whatever the file's size."""
    handle, start = _parquet_file(path, columns), 0
    try:
        for batch in handle.iter_batches(batch_size=rows_per_batch, columns=list(columns)):
            yield start, batch
            start += batch.num_rows
    except OSError as exc:
        raise PipelineError(f"{path}: not a readable Parquet file ({_first_line(exc)}): {REBUILD_HINT}") from None


@dataclass
class TokenRows:
    """Token ids of many rows as one flat int32 array cut by offsets, with their labels.

    4 bytes a token (80 MB for a million tweets) where Python lists of ints take about 36: the
    inference and training stages hold all rows this way and pad one batch at a time.
    """

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


def read_token_rows(path: Path | str) -> TokenRows:
    """The encode stage's ``input_ids`` and ``label`` columns as ``TokenRows``."""
    import pyarrow.compute as pc

    handle = _parquet_file(path, ("input_ids", "label"))
    try:
        table = handle.read(columns=["input_ids", "label"])
    except OSError as exc:
        raise PipelineError(f"{path}: not a readable Parquet file ({_first_line(exc)}): {REBUILD_HINT}") from None
    ids = table.column("input_ids")
    lengths = np.concatenate([[0]] + [pc.list_value_length(c).to_numpy(zero_copy_only=False) for c in ids.chunks])
    values = [pc.list_flatten(c).to_numpy(zero_copy_only=False) for c in ids.chunks]
    return TokenRows(
        values=np.concatenate(values or [np.empty(0)]).astype(np.int32, copy=False),
        offsets=np.cumsum(lengths, dtype=np.int64),
        labels=table.column("label").to_numpy().astype(np.int64, copy=False),
    )


class NpyRowWriter:
    """A float32 (rows x width) ``.npy`` file whose rows are written in any order, by any process.

    The file is created at full size (sparse) with its header; each ``write`` puts rows at their own
    offsets with ``pwrite``. Nothing is mapped into memory, so the process holds one batch, not the
    array (a million 384-wide rows are 1.5 GB), and several processes can fill one file.
    """

    def __init__(self, path: Path | str, n_rows: int, width: int, create: bool):
        self.path, self.width = Path(path), width
        if create and n_rows == 0:
            np.save(self.path, np.zeros((0, width), dtype=np.float32))
        elif create:
            np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float32, shape=(n_rows, width)).flush()
        self.offset = self.path.stat().st_size - n_rows * width * 4
        self.fd = os.open(self.path, os.O_WRONLY)

    def write(self, index: np.ndarray, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=np.float32)
        row_bytes = self.width * 4
        for i, row in zip(index.tolist(), values):
            os.pwrite(self.fd, row.tobytes(), self.offset + i * row_bytes)

    def close(self) -> None:
        os.close(self.fd)


def read_npy(path: Path | str, mmap: bool = False) -> np.ndarray:
    """A 2-D array (rows x features) written by a stage; a damaged file is one line naming it.
    ``mmap`` maps the file instead of reading it: rows are read from disk when indexed."""
    path = _existing(path)
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (ValueError, OSError, EOFError) as exc:
        raise PipelineError(f"{path}: not a readable .npy array ({_first_line(exc)}): {REBUILD_HINT}") from None
    if not isinstance(array, np.ndarray) or array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        shape = getattr(array, "shape", "?")
        raise PipelineError(f"{path}: expected a 2-D numeric array, found shape {shape}: {REBUILD_HINT}")
    return array


_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def hub_offline_requested() -> bool:
    """True when one of the Hugging Face offline variables is set (the libraries then never connect)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in _OFFLINE_VARIABLES)


@functools.lru_cache(maxsize=None)
def hub_unreachable_reason(timeout: float = 2.0) -> str | None:
    """Why the Hugging Face hub cannot be reached, or None when a TCP connection to it opens.

    Without a network the hub clients retry for 30-60 s before failing; this check takes at most
    ``2 * timeout`` seconds (the DNS lookup runs in a thread, since ``getaddrinfo`` has no timeout).
    Behind a proxy, or with the offline variables set, it answers None and the clients decide.
    """
    if hub_offline_requested() or any(os.environ.get(v) for v in _PROXY_VARIABLES):
        return None
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    found: list = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            found.append(exc)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    if not found:
        return f"no DNS answer for {host} within {timeout:g} s"
    if isinstance(found[0], OSError):
        return f"DNS lookup of {host} failed: {_first_line(found[0])}"
    family, socktype, proto, _, address = found[0][0]
    try:
        with socket.socket(family, socktype, proto) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
    except OSError as exc:
        return f"could not connect to {host}:{port}: {_first_line(exc) if str(exc) else 'timed out'}"
    return None
