"""Load a text-classification dataset from the demo sample, a local folder or the hub, and check it.

Every split comes back as a DataFrame with ``text`` (str) and ``label`` (int id), plus the
label names in id order. Anything malformed is a ``PipelineError`` naming the file and the line
(text formats: JSONL, CSV, TXT) or row (Parquet, hub), 1-based as a user counts them.

Labels are either label names (strings) or integer ids, one kind throughout the dataset. A null,
empty, boolean, decimal (``3.0``) or other non-name, non-id label is an error, never a new class.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from textclf.errors import PipelineError
from textclf.io import hub_offline_requested, hub_unreachable_reason
from textclf.params import DataParams
from textclf.paths import source_folder

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
# The original emotion release ships text;label files named like this.
TXT_FILES = {"train": "train.txt", "validation": "val.txt", "test": "test.txt"}
TABLE_SUFFIXES = (".jsonl", ".csv", ".parquet")
_INT = re.compile(r"[-+]?\d+")
_DECIMAL = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][-+]?\d+)")


@dataclass
class Dataset:
    splits: dict[str, pd.DataFrame]  # columns: text, label (int id), line (1-based line or row in the file)
    label_names: list[str]
    files: dict[str, str]  # where each split came from, for messages


def _unit(file: str) -> str:
    """Text files are counted in lines (what an editor shows), Parquet and hub splits in rows."""
    return "row" if file.endswith(".parquet") or file.endswith("]") else "line"


def _at(file: str, number: int) -> str:
    return f"{file}: {_unit(file)} {number}"


def _decode(path: Path) -> str:
    """Read a text file as UTF-8 (a leading BOM is dropped); a bad byte is reported with its line."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PipelineError(f"{path}: line {line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x})") from None
    return text.removeprefix("\ufeff")


def _lines(text: str):
    """(number, line) pairs split on newlines only: str.splitlines would also split inside a text
    at U+2028, form feeds and other characters that tweets contain."""
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line.removesuffix("\r")


def _frame(texts: list, labels: list, numbers: list[int]) -> pd.DataFrame:
    # object columns: a null among integers stays None (pandas would turn the column into floats)
    return pd.DataFrame({
        "text": pd.Series(texts, dtype=object),
        "label": pd.Series(labels, dtype=object),
        "line": pd.Series(numbers, dtype="int64"),
    })


def _cell_label(cell: str) -> object:
    """A label cell of a text format (CSV, TXT): an integer id, a decimal (refused later), or a name."""
    cell = cell.strip()
    if _INT.fullmatch(cell):
        return int(cell)
    if _DECIMAL.fullmatch(cell):
        return float(cell)
    return cell


def _missing_columns(path: Path, columns: list) -> None:
    for column in ("text", "label"):
        if column not in columns:
            found = ", ".join(map(str, columns)) or "none"
            raise PipelineError(f"{path}: missing the '{column}' column (found: {found})")


def _read_jsonl(path: Path) -> pd.DataFrame:
    rows, numbers, columns = [], [], {}
    for number, line in _lines(_decode(path)):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PipelineError(f"{path}: line {number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise PipelineError(f"{path}: line {number}: expected a JSON object, found {type(row).__name__}")
        rows.append(row)
        numbers.append(number)
        columns.update(dict.fromkeys(row))
    if rows:
        _missing_columns(path, list(columns))
    return _frame([r.get("text") for r in rows], [r.get("label") for r in rows], numbers)


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV with a header line; rows are numbered by the line they start on, so a quoted text
    holding newlines does not shift the numbers of the rows after it."""
    reader = csv.reader(io.StringIO(_decode(path), newline=""), strict=True)
    records, start = [], 1
    try:
        for fields in reader:
            if fields:  # a blank line
                records.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as exc:
        if "end of data" in str(exc):
            raise PipelineError(
                f"{path}: line {start}: a quoted field that starts on this line is never closed "
                '(a quote inside a quoted field is written twice: "")'
            ) from None
        if reader.line_num > start:  # a quote left open swallowed the line break(s) after it
            raise PipelineError(
                f"{path}: line {start}: a quoted field that starts on this line is not closed before line "
                f"{reader.line_num} ({exc}); close it, and double a quote inside a quoted field: \"\""
            ) from None
        raise PipelineError(
            f"{path}: line {reader.line_num}: bad CSV quoting ({exc}); quote the whole field and double the "
            'quotes inside it: "she said ""hi""",joy'
        ) from None
    if not records:
        raise PipelineError(f"{path}: the file is empty (expected a header line such as 'text,label', then the rows)")
    header_line, header = records[0]
    header = [h.strip() for h in header]
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise PipelineError(f"{path}: line {header_line}: column(s) {', '.join(duplicated)} appear more than once in the header")
    _missing_columns(path, header)
    text_at, label_at = header.index("text"), header.index("label")
    texts, labels, numbers = [], [], []
    for number, fields in records[1:]:
        if len(fields) != len(header):
            raise PipelineError(
                f"{path}: line {number}: {len(fields)} field(s) where the header has {len(header)} "
                f"({', '.join(header)}); quote a text that contains a comma"
            )
        texts.append(fields[text_at])
        labels.append(_cell_label(fields[label_at]))
        numbers.append(number)
    return _frame(texts, labels, numbers)


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and more for damaged files
        first = " ".join(str(exc).split("\n")[0].split()) or type(exc).__name__
        raise PipelineError(f"{path}: not a readable Parquet file ({first})") from None
    _missing_columns(path, table.column_names)
    texts, labels = table.column("text").to_pylist(), table.column("label").to_pylist()
    if _is_binary(table.column("text").type):  # bytes: text in some encoding, read as UTF-8
        for number, text in enumerate(texts, start=1):
            try:
                texts[number - 1] = text if text is None else text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PipelineError(f"{path}: row {number}: the text is not valid UTF-8 (byte {exc.start})") from None
    return _frame(texts, labels, list(range(1, len(texts) + 1)))


def _is_binary(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)


def _read_txt(path: Path) -> pd.DataFrame:
    """The original emotion format: one ``text;label-name`` a line."""
    texts, labels, numbers = [], [], []
    for number, line in _lines(_decode(path)):
        if not line.strip():
            continue
        text, sep, label = line.rpartition(";")
        if not sep:
            raise PipelineError(f"{path}: line {number}: no ';' separator between text and label")
        texts.append(text)
        labels.append(_cell_label(label))
        numbers.append(number)
    return _frame(texts, labels, numbers)


READERS = {".jsonl": _read_jsonl, ".csv": _read_csv, ".parquet": _read_parquet, ".txt": _read_txt}


def _find_split_file(folder: Path, split: str) -> Path:
    candidates = [folder / f"{split}{suffix}" for suffix in TABLE_SUFFIXES] + [folder / TXT_FILES[split]]
    found = [path for path in candidates if path.is_file()]
    if len(found) > 1:
        names = " and ".join(p.name for p in found)
        raise PipelineError(f"{folder}: {names} both hold the {split} split: keep one")
    if not found:
        wanted = ", ".join(p.name for p in candidates)
        raise PipelineError(f"{folder}: missing the {split} split (expected one of {wanted})")
    return found[0]


def read_label_names(path: Path) -> list[str]:
    """``labels.json``: a list of names in id order, or an id -> name mapping (``{"0": "sadness", ...}``,
    as in a model's ``id2label``) or a name -> id one (``{"sadness": 0, ...}``); ids must be 0..n-1."""
    try:
        value = json.loads(_decode(path))
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    expected = 'expected a list of label names in id order, like ["sadness", "joy"], or {"0": "sadness", "1": "joy"}'
    if isinstance(value, dict):
        if all(_INT.fullmatch(k.strip()) for k in value) and all(isinstance(v, str) for v in value.values()):
            by_id = {int(k): v for k, v in value.items()}
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in value.values()):
            by_id = {v: k for k, v in value.items()}
        else:
            raise PipelineError(f"{path}: {expected}")
        if len(by_id) != len(value) or sorted(by_id) != list(range(len(by_id))):
            raise PipelineError(f"{path}: the ids of the mapping must be 0..{len(value) - 1}, each once (found {sorted(by_id)})")
        value = [by_id[i] for i in range(len(by_id))]
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise PipelineError(f"{path}: {expected}")
    return value


def _check_names(names: list[str], where: str) -> list[str]:
    if any(not name.strip() for name in names):
        raise PipelineError(f"{where}: a label name is empty")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise PipelineError(f"{where}: label name(s) {', '.join(duplicated)} appear more than once")
    if len(names) < 2:
        raise PipelineError(f"{where}: only one label ({names[0] if names else 'none'}): a classifier needs at least two")
    return names


def read_folder(folder: Path) -> tuple[dict[str, pd.DataFrame], dict[str, str], list[str] | None]:
    """Read the three splits of a local folder, and ``labels.json`` when the folder has one."""
    frames, files = {}, {}
    for split in SPLITS:
        path = _find_split_file(folder, split)
        frames[split], files[split] = READERS[path.suffix](path), str(path)
    names = None
    if (folder / "labels.json").is_file():
        names = _check_names(read_label_names(folder / "labels.json"), str(folder / "labels.json"))
    return frames, files, names


def read_hub(dataset_id: str) -> tuple[dict[str, pd.DataFrame], dict[str, str], list[str] | None]:
    """Load a hub dataset with ``datasets.load_dataset``; label names come from its features."""
    advice = "point data.source at a local folder of train/validation/test files, or use 'sample'"
    reason = None if hub_offline_requested() else hub_unreachable_reason()
    if reason:
        raise PipelineError(
            f"data.source '{dataset_id}': could not reach the Hugging Face hub ({reason}); {advice} "
            "(or set HF_DATASETS_OFFLINE=1 to use a copy in the local cache)"
        )
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_id)
    except Exception as exc:  # the hub client raises many types; all mean "could not load"
        if isinstance(exc, (ConnectionError, OSError)) or "connect" in str(exc).lower() or "offline" in str(exc).lower():
            raise PipelineError(
                f"data.source '{dataset_id}': could not reach the Hugging Face hub ({type(exc).__name__}); {advice}"
            ) from None
        raise PipelineError(f"data.source '{dataset_id}': could not load it from the hub: {exc}") from None
    frames, files = {}, {}
    for split in SPLITS:
        if split not in loaded:
            raise PipelineError(f"data.source '{dataset_id}': the hub dataset has no '{split}' split")
        files[split] = f"{dataset_id}[{split}]"
        _missing_columns(Path(files[split]), loaded[split].column_names)
        texts, labels = loaded[split]["text"], loaded[split]["label"]
        frames[split] = _frame(list(texts), list(labels), list(range(1, len(texts) + 1)))
    feature = loaded["train"].features.get("label")
    return frames, files, list(feature.names) if hasattr(feature, "names") else None


def _check_texts(frame: pd.DataFrame, file: str, policy: str) -> pd.DataFrame:
    """Texts must be strings: a number or list is an error; empty, whitespace-only and null
    texts are an error naming the lines, or dropped with a warning (``data.empty_texts``)."""
    for text, number in zip(frame["text"], frame["line"]):
        if text is not None and not isinstance(text, str) and not (isinstance(text, float) and math.isnan(text)):
            raise PipelineError(f"{_at(file, number)}: the text is a {type(text).__name__} ({text!r}), not a string")
    bad = ~frame["text"].map(lambda t: isinstance(t, str) and bool(t.strip()))
    if not bad.any():
        return frame
    lines = frame.loc[bad, "line"].tolist()
    shown = ", ".join(map(str, lines[:10])) + (" ..." if len(lines) > 10 else "")
    if policy == "error":
        raise PipelineError(
            f"{file}: {len(lines)} empty, whitespace-only or null text(s) at {_unit(file)}(s) {shown}; "
            "fix them or set data.empty_texts: drop"
        )
    log.warning("%s: dropping %d empty or null text(s) at %s(s) %s", file, len(lines), _unit(file), shown)
    return frame.loc[~bad]


def _classify(value: object) -> tuple[str, object]:
    """("name", str) or ("id", int); anything else is a ``str`` reason why it is not a label."""
    if isinstance(value, (bool, np.bool_)):
        return "bad", f"the label {value!r} is a boolean, not a label name or an integer id"
    if isinstance(value, (int, np.integer)):
        return "id", int(value)
    if isinstance(value, (float, np.floating)):
        return "bad", f"the label {value!r} is a decimal number, not a label name or an integer id"
    if isinstance(value, str):
        return "name", value.strip()
    return "bad", f"the label {value!r} is a {type(value).__name__}, not a label name or an integer id"


def _is_null(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())


def _classify_labels(frames: dict[str, pd.DataFrame], files: dict[str, str]) -> dict[str, list]:
    """Check every label's type, null labels first (they are the usual cause of a float column);
    all labels must be of one kind: names or ids."""
    kinds: dict[str, list] = {}
    first: tuple[str, str, object] | None = None  # (kind, where, value) of the dataset's first label
    for split in SPLITS:
        frame, file = frames[split], files[split]
        for value, number in zip(frame["label"], frame["line"]):
            if _is_null(value):
                raise PipelineError(f"{_at(file, number)}: no label (null or empty)")
        values = []
        for value, number in zip(frame["label"], frame["line"]):
            kind, label = _classify(value)
            if kind == "bad":
                raise PipelineError(f"{_at(file, number)}: {label}")
            if first is None:
                first = (kind, f"{file} {_unit(file)} {number}", label)
            elif kind != first[0]:
                raise PipelineError(
                    f"{_at(file, number)}: the label {label!r} is {'an integer id' if kind == 'id' else 'a name'}, "
                    f"but {first[1]} has {'an integer id' if first[0] == 'id' else 'a name'} ({first[2]!r}): "
                    "use label names or integer ids throughout, not both"
                )
            values.append(label)
        kinds[split] = values
    return kinds


def _infer_names(labels: dict[str, list]) -> list[str]:
    """Names when the data does not give them: ids name themselves (0..the largest id in train),
    label names are sorted."""
    train = labels["train"]
    if train and isinstance(train[0], int):
        return [str(i) for i in range(max(max(train), 0) + 1)]
    return sorted({v for values in labels.values() for v in values})


def _to_ids(values: list, numbers: list[int], file: str, names: list[str]) -> list[int]:
    """Map labels (names or ids) to ids; an unknown one is reported with its line or row."""
    index = {name: i for i, name in enumerate(names)}
    ids = []
    for value, number in zip(values, numbers):
        if isinstance(value, int):
            if not 0 <= value < len(names):
                raise PipelineError(f"{_at(file, number)}: label id {value} is outside 0..{len(names) - 1}")
            ids.append(value)
        elif value in index:
            ids.append(index[value])
        else:
            raise PipelineError(f"{_at(file, number)}: unknown label {value!r} (known: {', '.join(names)})")
    return ids


def load_dataset(params: DataParams) -> Dataset:
    """Read ``data.source``; return validated splits (capped by ``max_*_samples``) with integer
    labels and their names."""
    folder = source_folder(params.source)  # a path that is not a folder is an error here, not a hub lookup
    frames, files, names = read_folder(folder) if folder else read_hub(params.source)

    for split in SPLITS:
        if frames[split].empty:
            raise PipelineError(f"{files[split]}: the {split} split is empty (no rows)")
        frames[split] = _check_texts(frames[split], files[split], params.empty_texts)
        if frames[split].empty:
            raise PipelineError(f"{files[split]}: the {split} split has no rows left after dropping empty texts")
    labels = _classify_labels(frames, files)
    if params.label_names:
        names = _check_names(list(params.label_names), "data.label_names")
    elif names is None:
        names = _check_names(_infer_names(labels), f"{files['train']} (labels found in the data)")

    splits = {}
    for split in SPLITS:
        frame = frames[split]
        ids = _to_ids(labels[split], frame["line"].tolist(), files[split], names)
        splits[split] = pd.DataFrame({
            "text": frame["text"].astype(str).to_numpy(),
            "label": np.asarray(ids, dtype="int64"),
            "line": frame["line"].to_numpy(),
        })

    # the caps come before the per-label check: a cap must not leave a label without train rows
    uncapped = splits["train"]
    splits["train"] = cap_rows(splits["train"], params.max_train_samples)
    for split in ("validation", "test"):
        splits[split] = cap_rows(splits[split], params.max_eval_samples)
    counts = splits["train"]["label"].value_counts()
    missing = [name for i, name in enumerate(names) if counts.get(i, 0) == 0]
    if missing:
        lost = [name for name in missing if (uncapped["label"] == names.index(name)).any()]
        if lost:
            raise PipelineError(
                f"data.max_train_samples: {params.max_train_samples} keeps the first {params.max_train_samples} rows "
                f"of {files['train']}, which hold no rows of label(s) {', '.join(lost)}; raise it, or shuffle the file"
            )
        raise PipelineError(f"{files['train']}: label(s) {', '.join(missing)} have no rows in train")
    overlap = len(set(splits["train"]["text"]) & set(splits["test"]["text"]))
    if overlap:
        log.warning("%d test text(s) also occur in train (duplicates across splits)", overlap)
    return Dataset(splits=splits, label_names=names, files=files)


def cap_rows(frame: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """The first ``limit`` rows (``max_train_samples``-style quick runs); all rows when None."""
    return frame if limit is None else frame.head(limit).reset_index(drop=True)
