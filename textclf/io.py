"""Atomic outputs: write into a temporary sibling, move into place only on success.

A crash or Ctrl-C mid-write leaves the previous output (or none), never a truncated file
that DVC would hash as good.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
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


def read_json(path: Path | str) -> object:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: not found (run the stage that writes it first: dvc repro)")
    return json.loads(path.read_text(encoding="utf-8"))


def read_parquet(path: Path | str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: not found (run the stage that writes it first: dvc repro)")
    return pd.read_parquet(path)


def read_npy(path: Path | str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: not found (run the stage that writes it first: dvc repro)")
    return np.load(path)


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
