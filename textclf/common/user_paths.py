"""What the paths of ``params.yaml`` point at, with the standard library only (the params gate imports no numpy)."""

from __future__ import annotations

import os
from pathlib import Path

from textclf.common.errors import PipelineError

# data.source: sample reads the project's own demo sample.
SAMPLE_SOURCE = "sample"
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"
SOURCE_ADVICE = (
    "fix the path (a relative one starts at the project root), "
    "or use 'sample' or a hub dataset id such as dair-ai/emotion"
)


def user_path(value: str) -> Path:
    """A path from params.yaml, relative to the project root (in a ``dvc exp run --queue`` copy: the original's)."""
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return path
    parts = Path.cwd().resolve().parts
    for i in range(len(parts) - 3):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            original = Path(*parts[:i]) / path
            if original.exists():
                return original
    return path


def looks_like_path(value: str) -> bool:
    """Whether ``value`` can only be a local path, never a hub id (``org/name``): data/sampel where data/ exists."""
    if value.startswith((".", "/", "~")) or "\\" in value or value.count("/") > 1 or value.endswith("/"):
        return True
    head, sep, _ = value.partition("/")
    return bool(sep) and user_path(head).exists()


def source_folder(source: str) -> Path | None:
    """The local folder ``data.source`` names (``sample``: the demo sample), or None for a hub dataset id."""
    if source == SAMPLE_SOURCE:
        return SAMPLE_DIR
    path = user_path(source)
    if path.is_dir():
        return path
    if path.exists():
        raise PipelineError(
            f"data.source '{source}': is a file, not a folder; point it at the folder that holds the "
            "train/validation/test files"
        )
    if looks_like_path(source):
        raise PipelineError(f"data.source '{source}': no such folder ({os.path.abspath(path)}); {SOURCE_ADVICE}")
    return None


# The splits every data folder and stage holds, in this order.
SPLITS = ("train", "validation", "test")
# The files a data folder may hold a split in: {split}.jsonl/.csv/.parquet, or the original emotion text files.
TABLE_SUFFIXES = (".jsonl", ".csv", ".parquet")
TXT_FILES = {"train": "train.txt", "validation": "val.txt", "test": "test.txt"}


def split_file(folder: Path, split: str) -> Path:
    """The one file of ``folder`` that holds ``split``; none, or two, is one line naming the folder."""
    candidates = [folder / f"{split}{suffix}" for suffix in TABLE_SUFFIXES] + [folder / TXT_FILES[split]]
    found = [path for path in candidates if path.is_file()]
    if len(found) > 1:
        raise PipelineError(f"{folder}: {' and '.join(p.name for p in found)} both hold the {split} split: keep one")
    if not found:
        wanted = ", ".join(p.name for p in candidates)
        raise PipelineError(f"{folder}: missing the {split} split (expected one of {wanted})")
    return found[0]
