"""Atomic outputs: write into a temporary sibling, move into place only on success.

A crash or Ctrl-C mid-write leaves the previous output (or none), never a truncated file
that DVC would hash as good.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from textclf.errors import PipelineError


@contextmanager
def atomic_path(target: Path | str, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (an empty folder when ``is_dir``); on success it
    replaces ``target``, on any exception it is removed and ``target`` stays as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A process killed with SIGKILL cannot clean up: its leftovers go at the next write of the same
    # output (one writer per output: DVC locks the repository). `.*.tmp` is git-ignored meanwhile.
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    work = tmp / target.name
    try:
        if is_dir:
            work.mkdir()
        yield work
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(work, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: Path | str, data: object) -> None:
    with atomic_path(path) as tmp:
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
    """A Parquet file written by a stage; a truncated or corrupt file, or one without the
    ``columns`` asked for, is one line naming the file."""
    path = _existing(path)
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and others for damaged files
        raise PipelineError(f"{path}: not a readable Parquet file ({_first_line(exc)}): {REBUILD_HINT}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PipelineError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(map(str, frame.columns))}): {REBUILD_HINT}"
        )
    return frame


def read_npy(path: Path | str) -> np.ndarray:
    """A 2-D array (rows x features) written by a stage; a damaged file is one line naming it."""
    path = _existing(path)
    try:
        array = np.load(path, allow_pickle=False)
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


def user_path(value: str) -> Path:
    """A path from params.yaml (``data.source``, ``model.checkpoint``), relative to the project root.

    ``dvc exp run --queue`` / ``--temp`` run the pipeline in a copy of the project under
    ``<project>/.dvc/tmp/exps/<name>/``, where a relative path such as ``../shared/data/emotion``
    would point elsewhere: there it is resolved against the original project instead.
    """
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return path
    cwd = Path.cwd().resolve()
    parts = cwd.parts
    for i in range(len(parts) - 3):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            original = Path(*parts[:i]) / path
            if original.exists():
                return original
    return path
