"""Input files read a slice at a time (data stage splits, ``textclf predict`` inputs), and the data stage's dataset:
checked in a first pass, then converted ``ROWS_PER_SLICE`` rows at a time; errors name the file and line/item/row."""

from __future__ import annotations

import csv
import itertools
import json
import logging
import math
import re
import sys
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from textclf.common.errors import PipelineError
from textclf.common.escape import terminal
from textclf.common.hub import hub_offline_requested, hub_unreachable_reason
from textclf.common.params import DataParams
from textclf.common.user_paths import SPLITS, source_folder, split_file
from textclf.io.stage_files import iter_parquet, missing_columns

log = logging.getLogger(__name__)

_INT = re.compile(r"[-+]?\d+")
_DECIMAL = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][-+]?\d+)")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# textclf predict's inputs by suffix: one text a line (.txt, .text, or none), or a table with a `text` column.
TEXT_SUFFIXES = ("", ".txt", ".text")
INPUT_FORMATS = (*TEXT_SUFFIXES, ".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")
# Rows handed on at a time in the second pass: the data stage's memory grows with this, not with the data.
ROWS_PER_SLICE = 100_000


@dataclass
class Dataset:
    # columns: text, label (int id), line (1-based line or row in the file); empty when a sink took the rows
    splits: dict[str, pd.DataFrame]
    label_names: list[str]
    files: dict[str, str]  # where each split came from, for messages
    rows: dict[str, int]  # rows given per split (to the sink, or in splits)


class RawNumber(str):
    """A JSON number kept as written (``1.10``, ``12345678901234567890``: float parsing would change them)."""


_JSON = json.JSONDecoder(parse_float=RawNumber, parse_int=RawNumber, parse_constant=lambda _: None)


def _unit(file: str) -> str:
    return "item" if file.endswith(".json") else "row" if file.endswith((".parquet", "]")) else "line"


def at(file: str, number: int) -> str:
    """Where a row is, for a message: ``data/train.csv: line 7``."""
    return f"{file}: {_unit(file)} {number}"


def _lines(path: Path | str, breaks: bool = False, handle: BinaryIO | None = None) -> Iterator[tuple[int, str]]:
    """(number, line) of a UTF-8 file split on "\\n" only (not at U+2028: tweets hold it), BOM dropped."""
    with open(path, "rb") if handle is None else nullcontext(handle) as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PipelineError(
                    f"{path}: line {number}: not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save it as UTF-8"
                ) from None
            if number == 1:
                line = line.removeprefix("\ufeff")
            yield number, line if breaks else line.removesuffix("\n").removesuffix("\r")


def _parsed(path: Path, parse: Callable[[int, str], tuple]) -> Iterator[tuple]:
    """``parse(number, line)`` of each non-blank line; a bad byte further on is reported before its error."""
    lines = _lines(path)
    for number, line in lines:
        if line.strip():
            try:
                parsed = parse(number, line)
            except PipelineError:
                deque(lines, maxlen=0)
                raise
            yield parsed


def mend(value: object) -> object:
    """``value`` with lone UTF-16 surrogates replaced by U+FFFD (they cannot be tokenized nor written as UTF-8)."""
    if isinstance(value, str) and not isinstance(value, RawNumber):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {mend(k): mend(v) for k, v in value.items()}
    return [mend(v) for v in value] if isinstance(value, list) else value


def _json(text: str, path: Path, where: str, mended: list[str]) -> object:
    """A JSON value; numbers as ``RawNumber``, NaN/infinities null, lone surrogates mended (noted in ``mended``)."""
    value = _JSON.decode(text)
    if "\\u" in text and _SURROGATE_ESCAPE.search(text) and (fixed := mend(value)) != value:
        if not mended:
            log.warning("%s: %s: a lone surrogate (half an emoji) replaced by U+FFFD", terminal(path), where)
        mended.append(where)
        return fixed
    return value


# Each reader yields (line or item number, {column: value}); errors: bad UTF-8, then parse, then missing column.


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    mended = []

    def row(number: int, line: str) -> tuple[int, dict]:
        try:
            value = _json(line, path, f"line {number}", mended)
        except json.JSONDecodeError as exc:
            raise PipelineError(f"{path}: line {number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(value, dict):
            raise PipelineError(f"{path}: line {number}: expected a JSON object, found {type(value).__name__}")
        return number, value

    yield from _parsed(path, row)
    if len(mended) > 1:
        log.warning("%s: %d lines held a lone surrogate, replaced by U+FFFD", terminal(path), len(mended))


def _read_json(path: Path) -> Iterator[tuple[int, dict]]:
    """A JSON array of objects, or of texts (each a row with one column, ``text``)."""
    text = "".join(line for _, line in _lines(path, breaks=True))
    try:
        items = _json(text, path, "an item", [])
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(items, list):
        raise PipelineError(f"{path}: expected a JSON array of texts or objects, found {type(items).__name__}")
    for number, item in enumerate(items, start=1):
        row = {"text": item} if type(item) is str else item
        if not isinstance(row, dict):
            found = "a number" if isinstance(item, RawNumber) else type(item).__name__
            raise PipelineError(f"{path}: item {number}: expected a JSON object or a text, found {found}")
        yield number, row


csv.field_size_limit(2**31 - 1)  # a field of any length (the csv module's default limit is 128 KiB)
_LINE_BREAKS = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _csv_lines(lines: Iterator[tuple[int, str]]) -> Iterator[str]:
    """The lines as the csv module saw them in io.StringIO(text, newline=""): a lone "\\r" ends one too."""
    for _, line in lines:
        yield from _LINE_BREAKS.findall(line) if "\r" in line else (line,)


def _read_csv(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """A CSV (or TSV: no quoting) with a header line; rows are numbered by the line they start on."""
    lines, tsv = _lines(path, breaks=True), path.suffix.lower() == ".tsv"
    quoting = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if tsv else {}
    reader = csv.reader(_csv_lines(lines), strict=True, **quoting)
    header, failure, start = None, None, 1
    try:
        for fields in reader:
            if not fields or failure:  # a blank line; after an error, read on: a quoting error is reported first
                pass
            elif header is None:
                header = [h.strip() for h in fields]
                if duplicated := sorted({h for h in header if header.count(h) > 1}):
                    failure = f"{path}: line {start}: header column(s) {', '.join(duplicated)} appear more than once"
                else:
                    try:
                        missing_columns(path, header, required)
                    except PipelineError as exc:
                        failure = str(exc)
            elif len(fields) != len(header):
                failure = (
                    f"{path}: line {start}: {len(fields)} field(s) where the header has {len(header)} "
                    f"({', '.join(header)})" + ("" if tsv else "; quote a text that contains a comma")
                )
            else:
                yield start, dict(zip(header, fields, strict=True))
            start = reader.line_num + 1
    except csv.Error as exc:
        deque(lines, maxlen=0)  # a bad byte further on is reported first
        if "end of data" in str(exc):
            raise PipelineError(
                f"{path}: line {start}: a quoted field that starts on this line is never closed "
                '(a quote inside a quoted field is written twice: "")'
            ) from None
        if reader.line_num > start:  # a quote left open swallowed the line break(s) after it
            raise PipelineError(
                f"{path}: line {start}: a quoted field that starts on this line is not closed before line "
                f'{reader.line_num} ({exc}); close it, and double a quote inside a quoted field: ""'
            ) from None
        raise PipelineError(
            f"{path}: line {reader.line_num}: bad CSV quoting ({exc}); quote the whole field and double the "
            'quotes inside it: "she said ""hi""",joy'
        ) from None
    if header is None:
        raise PipelineError(
            f"{path}: the file is empty (expected a header line such as '{','.join(required)}', then the rows)"
        )
    if failure:
        raise PipelineError(failure)


def read_records(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """The rows of a JSON lines, JSON array (``.json``), CSV or TSV file; ``required`` columns must be there."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        yield from _read_csv(path, required)
        return
    columns = {}
    for number, row in _read_json(path) if suffix == ".json" else _read_jsonl(path):
        columns.update(dict.fromkeys(row))
        yield number, row
    if columns:  # after the rows: an error in them comes first
        missing_columns(path, list(columns), required)


def read_slices(path: Path | None, rows: int, required: tuple[str, ...]) -> Iterator[tuple[list[int], pd.DataFrame]]:
    """(numbers, DataFrame) of ``path`` (None or ``-``: stdin); Parquet keeps Arrow types, others are objects."""
    stdin = path is None or str(path) == "-"
    suffix = "" if stdin else path.suffix.lower()
    if suffix not in INPUT_FORMATS:
        raise PipelineError(
            f"{path}: unknown input format '{suffix}' (use {', '.join(INPUT_FORMATS[1:])}, or .txt for one text a line)"
        )
    if not stdin and not path.is_file():
        raise PipelineError(f"{path}: input file not found")
    if suffix == ".parquet":
        for start, batch in iter_parquet(path, required, rows, hint="", only=False):
            yield list(range(start + 1, start + 1 + batch.num_rows)), batch.to_pandas(types_mapper=pd.ArrowDtype)
        return
    if suffix in TEXT_SUFFIXES:  # one text a line, blank lines skipped
        if stdin and (sys.stdin is None or sys.stdin.closed or sys.stdin.isatty()):  # descriptor 0 closed, a terminal
            raise PipelineError("no texts: give them as arguments, with --input FILE, or on stdin")
        lines = _lines("stdin", handle=getattr(sys.stdin, "buffer", sys.stdin)) if stdin else _lines(path)
        records = ((number, {"text": line}) for number, line in lines if line.strip())
    else:
        records = read_records(path, required)
    while chunk := list(itertools.islice(records, rows)):
        numbers, values = zip(*chunk, strict=True)
        yield list(numbers), pd.DataFrame(list(values), dtype=object)


def _cell_label(cell: str) -> object:
    """A label cell of CSV or TXT, or a JSON number: an integer id, a decimal (refused later), or a name."""
    cell = cell.strip()
    if _INT.fullmatch(cell):
        return int(cell)
    return float(cell) if _DECIMAL.fullmatch(cell) else cell


def _data_rows(path: Path) -> Iterator[tuple]:
    """A split file's (text, label, number); CSV and JSON-number labels as ids or decimals, bytes as UTF-8 text."""
    if path.suffix == ".txt":  # the original emotion format: one ``text;label-name`` a line

        def row(number: int, line: str) -> tuple:
            text, sep, label = line.rpartition(";")
            if not sep:
                raise PipelineError(f"{path}: line {number}: no ';' separator between text and label")
            return text, _cell_label(label), number

        yield from _parsed(path, row)
        return
    if path.suffix == ".parquet":
        for start, batch in iter_parquet(path, ("text", "label"), ROWS_PER_SLICE, hint=""):
            texts, labels = batch.column("text").to_pylist(), batch.column("label").to_pylist()
            for number, text, label in zip(itertools.count(start + 1), texts, labels):
                if isinstance(text, bytes):
                    try:
                        text = text.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise PipelineError(
                            f"{path}: row {number}: the text is not valid UTF-8 (byte {exc.start})"
                        ) from None
                yield text, label, number
        return
    csv_labels = path.suffix == ".csv"
    for number, row in read_records(path, ("text", "label")):
        text, label = row.get("text"), row.get("label")
        if isinstance(label, RawNumber) or (csv_labels and isinstance(label, str)):
            label = _cell_label(label)
        yield json.loads(text) if isinstance(text, RawNumber) else text, label, number


def read_label_names(path: Path) -> list[str]:
    """``labels.json``: names in id order, or an id -> name or name -> id mapping; ids must be 0..n-1."""
    try:
        value = json.loads("".join(line for _, line in _lines(path, breaks=True)))
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
            raise PipelineError(
                f"{path}: the ids of the mapping must be 0..{len(value) - 1}, each once (found {sorted(by_id)})"
            )
        value = [by_id[i] for i in range(len(by_id))]
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise PipelineError(f"{path}: {expected}")
    return value


def _check_names(names: list[str], where: str) -> list[str]:
    if any(not name.strip() for name in names):
        raise PipelineError(f"{where}: a label name is empty")
    if duplicated := sorted({n for n in names if names.count(n) > 1}):
        raise PipelineError(f"{where}: label name(s) {', '.join(duplicated)} appear more than once")
    if len(names) < 2:
        raise PipelineError(f"{where}: only one label ({(names or ['none'])[0]}): a classifier needs at least two")
    return names


@dataclass
class _Split:
    """One split: how to read its rows again, and what the first pass over them found."""

    read: Callable[[], Iterator[tuple]]  # the rows as (text, label, line or row number), from the start
    file: str
    rows: int = 0
    bad_text: str | None = None  # the first text that is not a string
    empties: int = 0  # empty, whitespace-only or null texts
    empty_at: list[int] = field(default_factory=list)  # the first 10 of their lines
    null_label: str | None = None  # the first kept row without a label
    bad_label: str | None = None  # the first kept label that is not a name or id, or not of the dataset's kind
    labels: set = field(default_factory=set)  # the names or ids (one kind throughout, else bad_label is set)
    hashes: array | None = None  # of the kept texts, in order (test only: for the train/test overlap)


def _blank(value: object) -> bool:
    """None, NaN (a null in a pandas-written float column) or a whitespace-only string."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, float) and math.isnan(value))


def _classify(value: object) -> tuple[str, object]:
    """("name", str) or ("id", int); anything else is ("bad", the reason why it is not a label)."""
    if isinstance(value, (bool, np.bool_)):
        what = "a boolean"
    elif isinstance(value, (int, np.integer)):
        return "id", int(value)
    elif isinstance(value, str):
        return "name", value.strip()
    else:
        what = "a decimal number" if isinstance(value, (float, np.floating)) else f"a {type(value).__name__}"
    return "bad", f"the label {value!r} is {what}, not a label name or an integer id"


def _scan(split: _Split, first: tuple | None) -> tuple | None:
    """The first pass: rows counted, each kind's first problem noted; returns the first label (kind, where, value)."""
    file = split.file
    for text, label, number in split.read():
        split.rows += 1
        if _blank(text):
            split.empties += 1
            if len(split.empty_at) < 10:
                split.empty_at.append(number)
            continue
        if not isinstance(text, str):
            if split.bad_text is None:
                split.bad_text = f"{at(file, number)}: the text is a {type(text).__name__} ({text!r}), not a string"
            continue
        if split.hashes is not None:
            split.hashes.append(hash(text))
        if _blank(label):
            split.null_label = split.null_label or f"{at(file, number)}: no label (null or empty)"
            continue
        if split.bad_label is not None:
            continue
        kind, value = _classify(label)
        if kind == "bad":
            split.bad_label = f"{at(file, number)}: {value}"
            continue
        first = first or (kind, f"{file} {_unit(file)} {number}", value)
        if kind != first[0]:
            split.bad_label = (
                f"{at(file, number)}: the label {value!r} is {'an integer id' if kind == 'id' else 'a name'}, "
                f"but {first[1]} has {'an integer id' if first[0] == 'id' else 'a name'} ({first[2]!r}): "
                "use label names or integer ids throughout, not both"
            )
        else:
            split.labels.add(value)
    return first


def read_hub(dataset_id: str) -> tuple[list[tuple[str, Callable[[], Iterator[tuple]]]], list[str] | None]:
    """A hub dataset's (name, rows) per split (``datasets.load_dataset``, held in memory) and its label names."""
    advice = "point data.source at a local folder of train/validation/test files, or use 'sample'"
    if not hub_offline_requested() and (reason := hub_unreachable_reason()):
        raise PipelineError(
            f"data.source '{dataset_id}': could not reach the Hugging Face hub ({reason}); {advice} "
            "(or set HF_DATASETS_OFFLINE=1 to use a copy in the local cache)"
        )
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_id)
    except Exception as exc:  # the hub client raises many types; all mean "could not load"
        if isinstance(exc, OSError) or "connect" in str(exc).lower() or "offline" in str(exc).lower():
            raise PipelineError(
                f"data.source '{dataset_id}': could not reach the Hugging Face hub ({type(exc).__name__}); {advice}"
            ) from None
        raise PipelineError(f"data.source '{dataset_id}': could not load it from the hub: {exc}") from None
    splits = []
    for split in SPLITS:
        if split not in loaded:
            raise PipelineError(f"data.source '{dataset_id}': the hub dataset has no '{split}' split")
        missing_columns(f"{dataset_id}[{split}]", loaded[split].column_names, ("text", "label"))
        texts, labels = list(loaded[split]["text"]), list(loaded[split]["label"])
        splits.append((f"{dataset_id}[{split}]", partial(zip, texts, labels, range(1, len(texts) + 1), strict=True)))
    feature = loaded["train"].features.get("label")
    return splits, list(feature.names) if hasattr(feature, "names") else None


def _check_scanned(splits: dict[str, _Split], policy: str) -> None:
    """Raise what the first pass found: each split's rows and texts (``data.empty_texts``), then labels."""
    for name, split in splits.items():
        if not split.rows:
            raise PipelineError(f"{split.file}: the {name} split is empty (no rows)")
        if split.bad_text:
            raise PipelineError(split.bad_text)
        if split.empties:
            shown = ", ".join(map(str, split.empty_at)) + (" ..." if split.empties > 10 else "")
            where = f"{split.empties} empty, whitespace-only or null text(s) at {_unit(split.file)}(s) {shown}"
            if policy == "error":
                raise PipelineError(f"{split.file}: {where}; fix them or set data.empty_texts: drop")
            log.warning("%s: dropping %s", terminal(split.file), where)
        if split.rows == split.empties:  # every text empty (one that is not a string was refused above)
            raise PipelineError(f"{split.file}: the {name} split has no rows left after dropping empty texts")
    for split in splits.values():
        if problem := split.null_label or split.bad_label:
            raise PipelineError(problem)


def _convert(split: _Split, names: list[str], limit: int | None, counts: list[int]) -> Iterator[tuple]:
    """The second pass: the first ``limit`` kept rows as slices with their hashes; every row checked, counted."""
    index = {name: i for i, name in enumerate(names)}
    texts, ids, numbers, kept = [], [], [], 0
    for text, label, number in split.read():
        if _blank(text):  # dropped (the first pass refused any other text that is not a string)
            continue
        value = label.strip() if isinstance(label, str) else int(label)  # a name or an id: the first pass checked
        if isinstance(value, str) and value not in index:
            raise PipelineError(f"{at(split.file, number)}: unknown label {value!r} (known: {', '.join(names)})")
        label_id = index[value] if isinstance(value, str) else value
        if not 0 <= label_id < len(names):
            raise PipelineError(f"{at(split.file, number)}: label id {label_id} is outside 0..{len(names) - 1}")
        counts[label_id] += 1
        kept += 1
        if limit is None or kept <= limit:
            texts.append(text), ids.append(label_id), numbers.append(number)
            if len(texts) == ROWS_PER_SLICE:
                yield _slice(texts, ids, numbers)
                texts, ids, numbers = [], [], []
    if texts:
        yield _slice(texts, ids, numbers)


def _slice(texts: list[str], ids: list[int], numbers: list[int]) -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.DataFrame({"text": texts, "label": np.asarray(ids, "int64"), "line": np.asarray(numbers, "int64")})
    return frame, np.fromiter(map(hash, texts), dtype=np.int64, count=len(texts))


def load_dataset(params: DataParams, sink: Callable[[str, pd.DataFrame], None] | None = None) -> Dataset:
    """``data.source`` checked and capped, labels as ids; slices go to ``sink(split, frame)`` or ``Dataset.splits``."""
    folder = source_folder(params.source)  # a path that is not a folder is an error here, not a hub lookup
    # a generator: each split's file is looked for once the split before it is scanned
    local = ((str(path), partial(_data_rows, path)) for path in (split_file(folder, s) for s in SPLITS))
    splits, names = (local, None) if folder else read_hub(params.source)
    frames, first = {}, None  # each split's _Split (its rows are read again later)
    for split, (file, read) in zip(SPLITS, splits, strict=True):
        frames[split] = _Split(read, file, hashes=array("q") if split == "test" else None)
        first = _scan(frames[split], first)
    files = {split: frames[split].file for split in SPLITS}
    if folder and (folder / "labels.json").is_file():
        names = _check_names(read_label_names(folder / "labels.json"), str(folder / "labels.json"))

    _check_scanned(frames, params.empty_texts)
    if params.label_names:
        names = _check_names(list(params.label_names), "data.label_names")
    elif names is None:  # ids name themselves (0..max), names are sorted; train's labels are of the first's kind
        labels = frames["train"].labels
        found = [str(i) for i in range(max(0, *labels) + 1)] if first[0] == "id" else sorted(labels)
        names = _check_names(found, f"{files['train']} (labels found in the data)")

    gathered = {split: [] for split in SPLITS}
    sink = sink or (lambda split, frame: gathered[split].append(frame))
    # the caps apply to the rows given, before the per-label check: a cap must not leave a label without train rows
    test_hashes = np.unique(np.frombuffer(frames["test"].hashes, dtype=np.int64)[: params.max_eval_samples])
    rows, shared, train, uncapped = dict.fromkeys(SPLITS, 0), set(), np.zeros(len(names), np.int64), [0] * len(names)
    for split in SPLITS:
        limit = params.max_train_samples if split == "train" else params.max_eval_samples
        for frame, hashes in _convert(frames[split], names, limit, uncapped if split == "train" else [0] * len(names)):
            sink(split, frame)
            rows[split] += len(frame)
            if split == "train":
                train += np.bincount(frame["label"].to_numpy(), minlength=len(names))
                # the hashes also in test, by binary search (np.isin would sort both arrays at every slice)
                pos = np.minimum(np.searchsorted(test_hashes, hashes), max(len(test_hashes) - 1, 0))
                shared.update(hashes[test_hashes[pos] == hashes].tolist() if len(test_hashes) else ())
    if missing := [name for i, name in enumerate(names) if train[i] == 0]:
        if lost := [name for name in missing if uncapped[names.index(name)]]:
            raise PipelineError(
                f"data.max_train_samples: {params.max_train_samples} keeps the first {params.max_train_samples} rows "
                f"of {files['train']}, which hold no rows of label(s) {', '.join(lost)}; raise it, or shuffle the file"
            )
        raise PipelineError(f"{files['train']}: label(s) {', '.join(missing)} have no rows in train")
    if shared:  # the texts in both splits (by their 64-bit hash)
        log.warning("%d test text(s) also occur in train (duplicates across splits)", len(shared))
    splits = {split: pd.concat(gathered[split], ignore_index=True) for split in SPLITS if gathered[split]}
    return Dataset(splits=splits, label_names=names, files=files, rows=rows)
