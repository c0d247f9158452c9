"""Load a text-classification dataset from the demo sample, a local folder or the hub, and check it.

Every split comes back as a DataFrame with ``text`` (str) and ``label`` (int id), plus the
label names in id order. Problems are reported as ``PipelineError`` naming the file and row.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from textclf.errors import PipelineError
from textclf.io import user_path
from textclf.params import DataParams

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"
# The original emotion release ships text;label files named like this.
TXT_FILES = {"train": "train.txt", "validation": "val.txt", "test": "test.txt"}
TABLE_SUFFIXES = (".jsonl", ".csv", ".parquet")


@dataclass
class Dataset:
    splits: dict[str, pd.DataFrame]  # columns: text, label (int id), line (1-based row in the file)
    label_names: list[str]
    files: dict[str, str]  # where each split came from, for messages


def _decode(path: Path) -> str:
    """Read a text file as UTF-8; a bad byte is reported with its line number."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PipelineError(f"{path}: line {line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x})") from None


def _read_jsonl(path: Path) -> pd.DataFrame:
    rows = []
    for number, line in enumerate(_decode(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PipelineError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise PipelineError(f"{path}: line {number}: expected a JSON object")
        row["line"] = number
        rows.append(row)
    return pd.DataFrame(rows)


def _read_txt(path: Path) -> pd.DataFrame:
    """The original emotion format: one ``text;label-name`` a line."""
    rows = []
    for number, line in enumerate(_decode(path).splitlines(), start=1):
        if not line.strip():
            continue
        text, sep, label = line.rpartition(";")
        if not sep:
            raise PipelineError(f"{path}: line {number}: no ';' separator between text and label")
        rows.append({"text": text, "label": label.strip(), "line": number})
    return pd.DataFrame(rows, columns=["text", "label", "line"])


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".jsonl":
        return _read_jsonl(path)
    if path.suffix == ".csv":
        import io

        frame = pd.read_csv(io.StringIO(_decode(path)), keep_default_na=False)
        frame["line"] = range(2, len(frame) + 2)  # line 1 is the header
        return frame
    frame = pd.read_parquet(path)
    frame["line"] = range(1, len(frame) + 1)
    return frame


def _find_split_file(folder: Path, split: str) -> Path:
    for suffix in TABLE_SUFFIXES:
        if (folder / f"{split}{suffix}").is_file():
            return folder / f"{split}{suffix}"
    if (folder / TXT_FILES[split]).is_file():
        return folder / TXT_FILES[split]
    wanted = ", ".join(f"{split}{s}" for s in TABLE_SUFFIXES) + f" or {TXT_FILES[split]}"
    raise PipelineError(f"{folder}: missing the {split} split (expected one of {wanted})")


def read_folder(folder: Path) -> tuple[dict[str, pd.DataFrame], dict[str, str], list[str] | None]:
    """Read the three splits of a local folder, and ``labels.json`` when the folder has one."""
    frames, files = {}, {}
    for split in SPLITS:
        path = _find_split_file(folder, split)
        frame = _read_txt(path) if path.suffix == ".txt" else _read_table(path)
        if frame.empty:
            raise PipelineError(f"{path}: the {split} split is empty")
        for column in ("text", "label"):
            if column not in frame.columns:
                raise PipelineError(f"{path}: missing the '{column}' column (found: {', '.join(map(str, frame.columns))})")
        frames[split], files[split] = frame[["text", "label", "line"]], str(path)
    names = None
    if (folder / "labels.json").is_file():
        names = json.loads(_decode(folder / "labels.json"))
    return frames, files, names


def read_hub(dataset_id: str) -> tuple[dict[str, pd.DataFrame], dict[str, str], list[str] | None]:
    """Load a hub dataset with ``datasets.load_dataset``; label names come from its features."""
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_id)
    except Exception as exc:  # the hub client raises many types; all mean "could not load"
        if isinstance(exc, (ConnectionError, OSError)) or "connect" in str(exc).lower() or "offline" in str(exc).lower():
            raise PipelineError(
                f"data.source '{dataset_id}': could not reach the Hugging Face hub ({type(exc).__name__}); "
                "point data.source at a local folder of train/validation/test files, or use 'sample'"
            ) from None
        raise PipelineError(f"data.source '{dataset_id}': could not load it from the hub: {exc}") from None
    frames, files = {}, {}
    for split in SPLITS:
        if split not in loaded:
            raise PipelineError(f"data.source '{dataset_id}': the hub dataset has no '{split}' split")
        frame = loaded[split].to_pandas()
        for column in ("text", "label"):
            if column not in frame.columns:
                raise PipelineError(f"data.source '{dataset_id}' {split}: missing the '{column}' column")
        frame["line"] = range(1, len(frame) + 1)
        frames[split], files[split] = frame[["text", "label", "line"]], f"{dataset_id}[{split}]"
    feature = loaded["train"].features.get("label")
    return frames, files, list(feature.names) if hasattr(feature, "names") else None


def _label_names(frames: dict[str, pd.DataFrame], names: list[str] | None) -> list[str]:
    """Label names in id order: given names, else ids as strings, else sorted label strings."""
    if names:
        return [str(n) for n in names]
    train = frames["train"]["label"]
    if pd.api.types.is_integer_dtype(train):
        return [str(i) for i in range(int(train.max()) + 1)]
    return sorted({str(v) for frame in frames.values() for v in frame["label"]})


def _to_ids(frame: pd.DataFrame, file: str, names: list[str]) -> pd.Series:
    """Map labels (names or ids) to ids; an unknown one is reported with its row."""
    index = {name: i for i, name in enumerate(names)}
    ids = []
    for value, line in zip(frame["label"], frame["line"]):
        if isinstance(value, str) and value in index:
            ids.append(index[value])
        elif isinstance(value, (int,)) or (hasattr(value, "dtype") and pd.api.types.is_integer_dtype(value)):
            if not 0 <= int(value) < len(names):
                raise PipelineError(f"{file}: row {line}: label id {value} is outside 0..{len(names) - 1}")
            ids.append(int(value))
        else:
            raise PipelineError(f"{file}: row {line}: unknown label {value!r} (known: {', '.join(names)})")
    return pd.Series(ids, index=frame.index, dtype="int64")


def _check_texts(frame: pd.DataFrame, file: str, policy: str) -> pd.DataFrame:
    """Empty or whitespace-only texts: an error naming the rows, or dropped with a warning."""
    texts = frame["text"]
    bad = ~texts.map(lambda t: isinstance(t, str) and bool(t.strip()))
    if not bad.any():
        return frame
    lines = frame.loc[bad, "line"].tolist()
    shown = ", ".join(map(str, lines[:10])) + (" ..." if len(lines) > 10 else "")
    if policy == "error":
        raise PipelineError(
            f"{file}: {len(lines)} empty or whitespace-only text(s) at row(s) {shown}; "
            "fix them or set data.empty_texts: drop"
        )
    log.warning("%s: dropping %d empty text(s) at row(s) %s", file, len(lines), shown)
    return frame.loc[~bad]


def load_dataset(params: DataParams) -> Dataset:
    """Read ``data.source`` and return validated splits with integer labels and their names."""
    source = params.source
    if source == "sample":
        frames, files, names = read_folder(SAMPLE_DIR)
    elif user_path(source).is_dir():
        frames, files, names = read_folder(user_path(source))
    elif source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise PipelineError(f"data.source '{source}': no such folder (and not a hub dataset id)")
    else:
        frames, files, names = read_hub(source)
    names = list(params.label_names) if params.label_names else names
    names = _label_names(frames, names)
    if len(set(names)) != len(names):
        raise PipelineError(f"label names are not unique: {names}")

    splits = {}
    for split in SPLITS:
        frame = frames[split]
        if frame.empty:
            raise PipelineError(f"{files[split]}: the {split} split is empty")
        frame = _check_texts(frame, files[split], params.empty_texts)
        frame = frame.assign(text=frame["text"].astype(str), label=_to_ids(frame, files[split], names))
        splits[split] = frame.reset_index(drop=True)

    counts = splits["train"]["label"].value_counts()
    missing = [name for i, name in enumerate(names) if counts.get(i, 0) == 0]
    if missing:
        raise PipelineError(f"{files['train']}: label(s) {', '.join(missing)} have no rows in train")
    overlap = len(set(splits["train"]["text"]) & set(splits["test"]["text"]))
    if overlap:
        log.warning("%d test text(s) also occur in train (duplicates across splits)", overlap)
    return Dataset(splits=splits, label_names=names, files=files)


def cap_rows(frame: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """The first ``limit`` rows (``max_train_samples``-style quick runs); all rows when None."""
    return frame if limit is None else frame.head(limit).reset_index(drop=True)
