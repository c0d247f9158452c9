"""Bad input, systematically: every input format x every way such a file breaks, every numeric
param x its edge values, and damaged files between stages. Each case must end in one line that
names the file and line/row (1-based, as an editor counts them) or the param, exit code 2, no
traceback, and the earlier outputs untouched. A model that collapses onto one label is reported.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from conftest import LABELS, committed_params, data_params, few_rows, run_main, run_script, write_params
from textclf.common.errors import PipelineError
from textclf.common.params import Params, parse_params
from textclf.io.sources import load_dataset

SPLITS = ("train", "validation", "test")
FORMATS = ("jsonl", "csv", "parquet", "txt")
FILE_NAMES = {"txt": {"train": "train.txt", "validation": "val.txt", "test": "test.txt"}}


def file_name(fmt: str, split: str) -> str:
    return FILE_NAMES.get(fmt, {}).get(split, f"{split}.{fmt}")


def good_rows() -> dict[str, list[dict]]:
    """24 train, 6 validation, 6 test rows of the demo sample, labels as names."""
    return {split: few_rows(split, n) for split, n in (("train", 4), ("validation", 1), ("test", 1))}


def write_split(path: Path, fmt: str, rows: list[dict]) -> None:
    """Write rows as the format does; label values are written as given (None, bools, floats...)."""
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC)
            writer.writerow(list(rows[0]))
            writer.writerows([["" if v is None else v for v in r.values()] for r in rows])
    elif fmt == "txt":
        path.write_text(
            "".join(f"{r['text']};{'' if r['label'] is None else r['label']}\n" for r in rows), encoding="utf-8"
        )
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)


def write_folder(folder: Path, fmt: str, rows: dict[str, list[dict]], labels: object = LABELS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, split_rows in rows.items():
        write_split(folder / file_name(fmt, split), fmt, split_rows)
    if labels is not None:
        (folder / "labels.json").write_text(json.dumps(labels))
    return folder


def as_ids(rows: dict[str, list[dict]]) -> dict[str, list[dict]]:
    return {s: [{"text": r["text"], "label": LABELS.index(r["label"])} for r in rs] for s, rs in rows.items()}


# --- the data matrix: (format, breakage) -> the one line it must give ----------------------------


def _truncate(path: Path, fmt: str) -> None:
    data = path.read_bytes()
    if fmt == "parquet":
        path.write_bytes(data[: len(data) // 2])
    else:  # cut inside the text of the last row
        last = data.rstrip(b"\n").rfind(b"\n") + 1
        path.write_bytes(data[: last + 12])


def _bad_byte(path: Path, line: int) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[line - 1] = lines[line - 1].replace(b"i ", b"i \xff ", 1)
    path.write_bytes(b"\n".join(lines))


def make_case(folder: Path, fmt: str, case: str) -> str | None:
    """Write a folder in ``fmt`` broken in the way ``case`` says; return the regex of the one line
    expected, or None when the input is valid and must load (documented leniency)."""
    rows = good_rows()
    header = 1 if fmt == "csv" else 0  # CSV rows start on line 2
    unit = "row" if fmt == "parquet" else "line"
    train, val, test = (rf"{file_name(fmt, s)}".replace(".", r"\.") for s in SPLITS)

    if case == "empty":
        write_folder(folder, fmt, rows)
        (folder / file_name(fmt, "train")).write_bytes(b"")
        return {
            "jsonl": rf"{train}: the train split is empty",
            "txt": rf"{train}: the train split is empty",
            "csv": rf"{train}: the file is empty",
            "parquet": rf"{train}: not a readable Parquet file",
        }[fmt]
    if case == "header_only" and fmt == "csv":
        write_folder(folder, fmt, rows)
        (folder / "test.csv").write_text("text,label\n")
        return rf"{test}: the test split is empty"
    if case == "truncated":
        write_folder(folder, fmt, rows)
        _truncate(folder / file_name(fmt, "validation"), fmt)
        return {
            "jsonl": rf"{val}: line 6: not valid JSON",
            "csv": rf"{val}: line 7: a quoted field that starts on this line is never closed",
            "txt": rf"{val}: line 6: no ';' separator",
            "parquet": rf"{val}: not a readable Parquet file",
        }[fmt]
    if case == "bad_encoding":
        if fmt == "parquet":  # a binary column where text belongs
            rows["train"][4]["text"] = rows["train"][4]["text"].encode() + b"\xff"
            write_folder(folder, fmt, rows)
            return rf"{train}: row 5: the text is not valid UTF-8"
        write_folder(folder, fmt, rows)
        _bad_byte(folder / file_name(fmt, "train"), 5 + header)
        return rf"{train}: line {5 + header}: not valid UTF-8 \(byte 0xff\)"
    if case == "bad_quoting":
        write_folder(folder, fmt, rows)
        path = folder / file_name(fmt, "test")
        lines = path.read_text().splitlines()
        if fmt == "jsonl":
            lines[2] = lines[2].replace('"', "'")
            expected = rf"{test}: line 3: not valid JSON"
        elif fmt == "csv":
            lines[3] = '"i feel "fine" today",joy'
            expected = rf"{test}: line 4: bad CSV quoting"
        elif fmt == "txt":  # no quoting in this format: quotes are text
            lines[2] = '"i feel "fine" today;joy'
            expected = None
        else:
            return "skip"
        path.write_text("\n".join(lines) + "\n")
        return expected
    if case == "unclosed_quote" and fmt == "csv":
        write_folder(folder, fmt, rows)
        path = folder / "train.csv"
        lines = path.read_text().splitlines()
        lines[3] = '"i feel lost,sadness'
        path.write_text("\n".join(lines) + "\n")
        return rf"{train}: line 4: a quoted field that starts on this line is not closed before line 5"
    if case == "missing_column":
        if fmt == "txt":
            write_folder(folder, fmt, rows)
            path = folder / "val.txt"
            lines = path.read_text().splitlines()
            lines[3] = lines[3].rpartition(";")[0]
            path.write_text("\n".join(lines) + "\n")
            return rf"{val}: line 4: no ';' separator"
        rows["validation"] = [{"text": r["text"]} for r in rows["validation"]]
        write_folder(folder, fmt, rows)
        return rf"{val}: missing column\(s\) label \(found: text\)"
    if case == "renamed_column":
        if fmt == "txt":
            return "skip"
        rows["train"] = [{"sentence": r["text"], "label": r["label"]} for r in rows["train"]]
        write_folder(folder, fmt, rows)
        return rf"{train}: missing column\(s\) text \(found: sentence, label\)"
    if case == "extra_column":
        if fmt == "csv":  # an unquoted comma: a row with one field too many
            write_folder(folder, fmt, rows)
            path = folder / "test.csv"
            lines = path.read_text().splitlines()
            lines[2] = "i feel sad, really sad,sadness"
            path.write_text("\n".join(lines) + "\n")
            return rf"{test}: line 3: 3 field\(s\) where the header has 2"
        if fmt == "txt":  # a ';' inside the text: the label is after the last one
            rows["train"][0]["text"] = "i feel; odd"
        else:  # extra columns (an id, a source) are ignored
            rows = {s: [{"id": i, **r} for i, r in enumerate(rs)] for s, rs in rows.items()}
        write_folder(folder, fmt, rows)
        return None
    if case in ("label_bool", "label_float", "text_number"):  # a Parquet column of that type
        rows = as_ids(rows)
        if case == "text_number":
            rows["validation"] = [{"text": i, "label": r["label"]} for i, r in enumerate(rows["validation"])]
            expected = rf"{val}: row 1: the text is a int \(0\), not a string"
        elif case == "label_bool":
            rows["train"] = [{"text": r["text"], "label": bool(r["label"] % 2)} for r in rows["train"]]
            expected = rf"{train}: row 1: the label (True|False) is a boolean"
        else:
            rows["test"] = [{"text": r["text"], "label": float(r["label"])} for r in rows["test"]]
            expected = rf"{test}: row 1: the label [0-9.]+ is a decimal number"
        write_folder(folder, fmt, rows)
        return expected
    if case == "label_mixed":  # integer ids among label names
        if fmt == "parquet":  # one column holds one type: ids in validation, names in train
            rows["validation"] = as_ids({"v": rows["validation"]})["v"]
            write_folder(folder, fmt, rows)
            return rf"{val}: row 1: the label \d is an integer id, but \S*{train} row 1 has a name"
        rows["train"][9]["label"] = 3 if fmt == "jsonl" else "3"
        write_folder(folder, fmt, rows)
        return (
            rf"{train}: line {10 + header}: the label 3 is an integer id, but \S*{train} line {1 + header} has a name"
        )
    if case == "null_label_float_column" and fmt == "parquet":
        # what pandas writes for integer labels with a gap: a float column with NaN
        rows = as_ids(rows)
        table = pa.table(
            {
                "text": [r["text"] for r in rows["validation"]],
                "label": pa.array([float(r["label"]) for r in rows["validation"]][:5] + [math.nan], from_pandas=True),
            }
        )
        write_folder(folder, fmt, rows)
        pq.write_table(table, folder / "validation.parquet")
        return rf"{val}: row 6: no label \(null or empty\)"
    if case == "null_text":
        if fmt in ("csv", "txt"):
            rows["train"][7]["text"] = ""
        else:
            rows["train"][7]["text"] = None
        write_folder(folder, fmt, rows)
        return rf"{train}: 1 empty, whitespace-only or null text\(s\) at {unit}\(s\) {8 + header}"
    if case == "label_without_rows":
        rows["train"] = [r for r in rows["train"] if r["label"] != "love"]
        write_folder(folder, fmt, rows)
        return rf"{train}: label\(s\) love have no rows in train"
    if case == "one_class":
        rows = {s: [{"text": r["text"], "label": "joy"} for r in rs] for s, rs in rows.items()}
        write_folder(folder, fmt, rows, labels=None)
        return rf"{train} \(labels found in the data\): only one label \(joy\): a classifier needs at least two"
    if case == "embedded_newline" and fmt == "csv":
        rows["train"][1]["text"] = "i feel\nsplit over\nthree lines"
        rows["train"][5]["label"] = "boredom"
        write_folder(folder, fmt, rows)
        return rf"{train}: line 9: unknown label 'boredom'"  # header, 1 row, a 3-line row, then 3 more rows
    if case == "two_files_for_a_split":
        write_folder(folder, fmt, rows)
        other = "csv" if fmt != "csv" else "jsonl"
        write_split(folder / f"test.{other}", other, rows["test"])
        return r"both hold the test split: keep one"
    return "skip"


DATA_CASES = [
    "empty",
    "header_only",
    "truncated",
    "bad_encoding",
    "bad_quoting",
    "unclosed_quote",
    "missing_column",
    "renamed_column",
    "extra_column",
    "label_bool",
    "label_float",
    "label_mixed",
    "text_number",
    "null_label_float_column",
    "null_text",
    "label_without_rows",
    "one_class",
    "embedded_newline",
    "two_files_for_a_split",
]
# Breakages that only one format can have, and those a format cannot have (a CSV cell is always text).
ONLY_IN = {
    "header_only": "csv",
    "unclosed_quote": "csv",
    "embedded_newline": "csv",
    "null_label_float_column": "parquet",
    "label_bool": "parquet",  # the other formats: test_a_bad_value_in_any_row_is_named_with_its_file_and_line
    "label_float": "parquet",
    "text_number": "parquet",
}
NOT_IN = {
    ("parquet", "bad_quoting"),
    ("txt", "renamed_column"),
}
MATRIX = [
    pytest.param(fmt, case, id=f"{fmt}-{case}")
    for fmt in FORMATS
    for case in DATA_CASES
    if ONLY_IN.get(case, fmt) == fmt and (fmt, case) not in NOT_IN
]


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def prepared(tmp_path, small_folder, monkeypatch):
    """A project folder whose data stage ran once on good data: (folder, hashes of its outputs)."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path / "params.yaml", data={"source": str(small_folder)})
    run_main("data")
    return tmp_path, _hashes(tmp_path / "data/prepared")


@pytest.mark.parametrize(("fmt", "case"), MATRIX)
def test_data_matrix(prepared, fmt, case):
    work, before = prepared
    bad = work / "bad"
    expected = make_case(bad, fmt, case)
    assert expected != "skip", (fmt, case)
    write_params(work / "params.yaml", data={"source": str(bad)})
    if expected is None:  # lenient by design: loads, all rows kept
        run_main("data")
        assert [len(load_dataset(data_params(source=str(bad))).splits[s]) for s in SPLITS] == [24, 6, 6]
        return
    with pytest.raises(PipelineError) as caught:
        run_main("data")
    message = str(caught.value)
    assert "\n" not in message
    assert re.search(expected, message), f"{message!r} does not match {expected!r}"
    assert str(bad) in message or "data.max_train_samples" in message, "the message names the file"
    assert _hashes(work / "data/prepared") == before, "earlier outputs untouched"
    assert not [p for p in (work / "data").iterdir() if p.name.endswith(".tmp")]


# One bad value at any row of any split, in every format that can hold it: the line names that file and row.
ROW_BREAKAGES = {  # breakage -> (formats, value, where it goes, the message after "<file>: <line or row> N: ")
    "null label": (FORMATS, None, "label", r"no label \(null or empty\)"),
    "unknown label": (FORMATS, "boredom", "label", r"unknown label 'boredom' \(known: sadness, joy"),
    "id out of range": (FORMATS, 9, "label", r"label id 9 is outside 0\.\.5"),
    "decimal label": (("jsonl", "csv", "txt"), 3.5, "label", r"the label 3\.5 is a decimal number"),
    "boolean label": (("jsonl",), True, "label", r"the label True is a boolean"),
    "list label": (("jsonl",), ["joy"], "label", r"the label \['joy'\] is a list"),
    "number text": (("jsonl",), 42, "text", r"the text is a int \(42\), not a string"),
}


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(FORMATS),
    st.sampled_from(sorted(ROW_BREAKAGES)),
    st.sampled_from(SPLITS),
    st.integers(0, 23),
)
def test_a_bad_value_in_any_row_is_named_with_its_file_and_line(fmt, breakage, split, index):
    formats, value, column, message = ROW_BREAKAGES[breakage]
    assume(fmt in formats)
    rows = as_ids(good_rows()) if breakage == "id out of range" else good_rows()
    index %= len(rows[split])
    rows[split][index][column] = value
    number = index + 1 + (fmt == "csv")  # CSV rows start on line 2
    where = rf"{file_name(fmt, split)}: {'row' if fmt == 'parquet' else 'line'} {number}".replace(".", r"\.")
    with tempfile.TemporaryDirectory() as folder:
        write_folder(Path(folder), fmt, rows)
        with pytest.raises(PipelineError, match=rf"{where}: {message}"):
            load_dataset(data_params(source=folder))


# A representative subset run as dvc.yaml runs the stage: a subprocess, exit code 2, one line on stderr.
SCRIPT_CASES = [
    ("csv", "unclosed_quote"),
    ("parquet", "truncated"),
    ("parquet", "text_number"),
    ("csv", "empty"),
    ("parquet", "label_bool"),
]


@pytest.mark.parametrize(("fmt", "case"), SCRIPT_CASES, ids=[f"{f}-{c}" for f, c in SCRIPT_CASES])
def test_data_stage_script_exits_2_with_one_line(prepared, fmt, case):
    work, before = prepared
    expected = make_case(work / "bad", fmt, case)
    write_params(work / "params.yaml", data={"source": str(work / "bad")})
    result = run_script("data", cwd=work)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.search(expected, errors[0]), result.stderr[-2000:]
    assert _hashes(work / "data/prepared") == before


# --- specific data rules ----------------------------------------------------------------------


def test_csv_rows_are_numbered_by_their_line_after_embedded_newlines(tmp_path):
    rows = good_rows()
    rows["train"][1]["text"] = "i feel\nsplit over\nthree lines"
    write_folder(tmp_path, "csv", rows)
    train = load_dataset(data_params(source=str(tmp_path))).splits["train"]
    assert train["line"].tolist()[:4] == [2, 3, 6, 7]
    assert train["text"][1] == "i feel\nsplit over\nthree lines"


def test_integer_labels_from_a_text_format_are_ids(tmp_path):
    write_folder(tmp_path, "csv", as_ids(good_rows()))
    dataset = load_dataset(data_params(source=str(tmp_path)))
    assert dataset.label_names == LABELS
    expected = [LABELS.index(r["label"]) for r in good_rows()["train"]]
    assert dataset.splits["train"]["label"].tolist() == expected


@pytest.mark.parametrize("form", ["id_to_name", "name_to_id", "list"])
def test_labels_json_mapping_forms_give_names_in_id_order(tmp_path, form):
    labels = {
        "id_to_name": {str(i): n for i, n in reversed(list(enumerate(LABELS)))},
        "name_to_id": {n: i for i, n in enumerate(LABELS)},
        "list": LABELS,
    }[form]
    write_folder(tmp_path, "jsonl", as_ids(good_rows()), labels=labels)
    dataset = load_dataset(data_params(source=str(tmp_path)))
    assert dataset.label_names == LABELS
    assert dataset.splits["train"]["label"].tolist() == [LABELS.index(r["label"]) for r in good_rows()["train"]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"labels\.json: not valid JSON \(Expecting value at line 1 column 1\)"),
        (b'["sadness", "joy"', r"labels\.json: not valid JSON"),
        (b'["sadness", "joy", \xff]', r"labels\.json: line 1: not valid UTF-8"),
        (b'"sadness"', r"labels\.json: expected a list of label names in id order"),
        (b'["sadness", 1]', r"labels\.json: expected a list of label names in id order"),
        (b'{"a": "sadness"}', r"labels\.json: expected a list of label names in id order"),
        (b'{"0": "sadness", "2": "joy"}', r"labels\.json: the ids of the mapping must be 0\.\.1, each once"),
        (b'["sadness", "joy", "sadness"]', r"labels\.json: label name\(s\) sadness appear more than once"),
        (b'["joy"]', r"labels\.json: only one label \(joy\): a classifier needs at least two"),
        (b'["sadness", " "]', r"labels\.json: a label name is empty"),
    ],
    ids=["empty", "truncated", "bad_utf8", "string", "non_string", "bad_mapping", "gap", "duplicate", "one", "blank"],
)
def test_bad_labels_json(prepared, content, message):
    work, before = prepared
    bad = write_folder(work / "bad", "jsonl", good_rows())
    (bad / "labels.json").write_bytes(content)
    write_params(work / "params.yaml", data={"source": str(bad)})
    with pytest.raises(PipelineError, match=message):
        run_main("data")
    assert _hashes(work / "data/prepared") == before


def test_max_train_samples_applies_before_the_per_label_check(prepared):
    work, before = prepared
    rows = good_rows()
    rows["train"].sort(key=lambda r: r["label"] == "surprise")  # surprise last
    bad = write_folder(work / "bad", "jsonl", rows)
    write_params(work / "params.yaml", data={"source": str(bad), "max_train_samples": 20})
    with pytest.raises(
        PipelineError,
        match=r"^data\.max_train_samples: 20 keeps the first 20 rows of .*train\.jsonl, "
        r"which hold no rows of label\(s\) surprise",
    ):
        run_main("data")
    assert _hashes(work / "data/prepared") == before
    # a cap that keeps every label is fine, and the written splits are capped
    write_params(work / "params.yaml", data={"source": str(bad), "max_train_samples": 21, "max_eval_samples": 4})
    run_main("data")
    import pandas as pd

    assert [len(pd.read_parquet(work / f"data/prepared/{s}.parquet")) for s in SPLITS] == [21, 4, 4]


def test_single_class_is_refused_even_with_a_hub_like_int_column(tmp_path):
    rows = {s: [{"text": r["text"], "label": 0} for r in rs] for s, rs in good_rows().items()}
    write_folder(tmp_path, "parquet", rows, labels=None)
    with pytest.raises(PipelineError, match=r"only one label \(0\): a classifier needs at least two"):
        load_dataset(data_params(source=str(tmp_path)))


# --- params: every numeric param x its edge values ----------------------------------------------


def _numeric_params() -> list[tuple[str, type]]:
    found = []
    for section, field in Params.model_fields.items():
        model = field.annotation
        if not hasattr(model, "model_fields"):
            continue
        for name, sub in model.model_fields.items():
            kind = float if "float" in str(sub.annotation) else int if "int" in str(sub.annotation) else None
            if kind is not None:
                found.append((f"{section}.{name}", kind))
    return found


NUMERIC = _numeric_params()
# Zero is a valid value of these; for every other numeric param it is refused.
ZERO_OK = {
    "umap.min_dist",
    "finetune.weight_decay",
    "finetune.warmup_ratio",
    "baselines.seed",
    "umap.seed",
    "finetune.seed",
    "finetune.min_steps",
    "finetune.early_stopping_patience",
    "evaluate.bootstrap_resamples",
    "evaluate.bootstrap_seed",
}
EDGES = {
    "negative": -1,
    "zero": 0,
    "nan": math.nan,
    "inf": math.inf,
    "minus_inf": -math.inf,
    "huge": 10**30,
    "huge_float": 1e30,
}


def test_the_numeric_params_are_all_covered():
    assert {k for k, _ in NUMERIC} >= {
        "finetune.epochs",
        "finetune.learning_rate",
        "finetune.weight_decay",
        "finetune.seed",
        "baselines.seed",
        "umap.min_dist",
        "umap.seed",
        "finetune.batch_size",
        "hidden_states.batch_size",
        "model.max_length",
        "data.max_train_samples",
    }


@pytest.mark.parametrize("edge", list(EDGES))
@pytest.mark.parametrize("key", [k for k, _ in NUMERIC])
def test_numeric_param_edges(key, edge):
    raw = committed_params()
    section, name = key.split(".")
    raw[section][name] = EDGES[edge]
    if edge == "zero" and key in ZERO_OK:
        assert getattr(getattr(parse_params(raw), section), name) == 0
        return
    with pytest.raises(PipelineError) as caught:
        parse_params(raw)
    message = str(caught.value)
    assert message.startswith(f"params.yaml: {key}: ") and "\n" not in message, message


def test_param_limits_named_in_the_message():
    raw = committed_params()
    for key, value, words in [
        ("finetune.seed", -1, "greater than or equal to 0"),
        ("baselines.seed", 2**32, "less than 4294967296"),
        ("finetune.epochs", math.inf, "a finite number"),
        ("umap.min_dist", 1.5, "less than or equal to 1"),
    ]:
        bad = copy.deepcopy(raw)
        section, name = key.split(".")
        bad[section][name] = value
        with pytest.raises(PipelineError, match=rf"^params\.yaml: {key}: Input should be {words}"):
            parse_params(bad)


def test_yaml_inf_and_nan_in_the_file(tmp_path):
    """`.inf` and `.nan` as a user writes them in params.yaml."""
    text = (Path(__file__).resolve().parents[1] / "params.yaml").read_text()
    for literal, key in [(".inf", "epochs"), (".nan", "learning_rate")]:
        (tmp_path / "params.yaml").write_text(re.sub(rf"\n  {key}: .*\n", f"\n  {key}: {literal}\n", text))
        from textclf.common.params import load_params

        with pytest.raises(PipelineError, match=rf"params\.yaml: finetune\.{key}: Input should be a finite number"):
            load_params(tmp_path / "params.yaml")


def test_negative_seed_stops_the_stage_before_work(prepared):
    """Every stage checks the whole file first: the data stage refuses a bad baselines.seed too."""
    work, before = prepared
    write_params(work / "params.yaml", baselines={"seed": -1})
    result = run_script("data", cwd=work)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: params.yaml: baselines.seed: Input should be")
    assert _hashes(work / "data/prepared") == before


# --- damaged files between stages, and model folders ---------------------------------------------


def _copy_model(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("truncated_weights", r"model\.safetensors: could not load the model \(Error while deserializing header"),
        ("empty_weights", r"model\.safetensors: could not load the model"),
        ("no_weights", r"could not load the model .*damaged or incomplete"),
        ("bad_config", r"could not load the config .*config\.json' is not a valid JSON"),
    ],
)
def test_damaged_model_folder_is_one_line(tmp_path, tiny_model, breakage, message):
    from textclf.models.loading import load_encoder

    folder = _copy_model(tiny_model, tmp_path / "model")
    weights = folder / "model.safetensors"
    if breakage == "truncated_weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif breakage == "empty_weights":
        weights.write_bytes(b"")
    elif breakage == "no_weights":
        weights.unlink()
    else:
        (folder / "config.json").write_text("{not json")
    with pytest.raises(PipelineError, match=message) as caught:
        load_encoder(str(folder))
    assert "\n" not in str(caught.value) and str(folder) in str(caught.value)


def test_damaged_tokenizer_is_one_line(tmp_path, tiny_model):
    from textclf.models.loading import load_tokenizer

    folder = _copy_model(tiny_model, tmp_path / "model")
    (folder / "tokenizer.json").write_text('{"version": ')
    (folder / "vocab.txt").unlink(missing_ok=True)
    with pytest.raises(PipelineError, match=r"could not load the tokenizer .*damaged or incomplete"):
        load_tokenizer(str(folder))


def test_model_checkpoint_folder_matrix_through_the_encode_stage(project, tiny_model):
    """model.checkpoint: an empty folder, a folder with a broken config: one line from encode."""
    run_main("data")
    empty = project / "empty-model"
    empty.mkdir()
    (project / "broken-model").mkdir()
    broken = _copy_model(tiny_model, project / "broken-model" / "m")
    (broken / "config.json").write_text("[1, 2")
    for checkpoint, message in [
        (empty, r"no tokenizer files"),
        (broken, r"could not load the tokenizer .*config\.json' is not a valid JSON file"),
    ]:
        write_params(project / "params.yaml", data={"source": "sample"}, model={"checkpoint": str(checkpoint)})
        with pytest.raises(PipelineError, match=message) as caught:
            run_main("encode")
        assert str(checkpoint) in str(caught.value)


# --- hub ids without network: refused in seconds ------------------------------------------------


@pytest.fixture
def online_env(monkeypatch):
    """No HF_*_OFFLINE variable and no proxy, as a new user's shell; the reachability answer is not cached."""
    from textclf.common.hub import hub_unreachable_reason

    for name in (
        "HF_HUB_OFFLINE",
        "HF_DATASETS_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    hub_unreachable_reason.cache_clear()
    yield monkeypatch
    hub_unreachable_reason.cache_clear()


def test_hub_check_does_not_wait_for_a_hanging_dns(online_env):
    import socket

    from textclf.common.hub import hub_unreachable_reason

    online_env.setattr(socket, "getaddrinfo", lambda *a, **k: time.sleep(30))
    start = time.perf_counter()
    reason = hub_unreachable_reason(timeout=0.5)
    assert time.perf_counter() - start < 2
    assert reason == "no DNS answer for huggingface.co within 0.5 s"


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_hub_check_does_not_wait_for_a_silent_host(online_env):
    import socket

    from textclf.common.hub import hub_unreachable_reason

    def silent(self, address):  # a host that never answers: the connect times out
        time.sleep(self.gettimeout())
        raise TimeoutError("timed out")

    online_env.setattr(socket.socket, "connect", silent)
    online_env.setenv("HF_ENDPOINT", "https://127.0.0.1:9")
    start = time.perf_counter()
    reason = hub_unreachable_reason(timeout=0.5)
    assert time.perf_counter() - start < 2
    assert reason == "could not connect to 127.0.0.1:9: timed out"


@pytest.mark.parametrize("what", ["model", "dataset"])
def test_hub_id_without_network_is_refused_in_seconds(online_env, what):
    """Neither HF_HUB_OFFLINE nor HF_DATASETS_OFFLINE set: the hub clients would retry for 30-60 s."""
    from textclf.models.loading import load_tokenizer

    online_env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    start = time.perf_counter()
    with pytest.raises(PipelineError) as caught:
        if what == "model":
            load_tokenizer("distilbert-base-uncased-not-cached")
        else:
            load_dataset(data_params(source="dair-ai/emotion"))
    assert time.perf_counter() - start < 5
    message = str(caught.value)
    assert "could not reach the Hugging Face hub" in message or "the hub is unreachable" in message
    assert "local folder" in message and "\n" not in message


@pytest.mark.slow  # a subprocess that imports torch: 5-10 s on a busy 2-core machine
def test_hub_checkpoint_stage_without_offline_variables(project):
    """The encode stage as dvc.yaml runs it, in a shell without HF_*_OFFLINE: exit 2 and one line."""
    import os

    run_main("data")
    write_params(project / "params.yaml", data={"source": "sample"}, model={"checkpoint": "distilbert-base-uncased"})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_OFFLINE"))}
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"  # connection refused, as without a network
    env["HF_HOME"] = str(project / "hf-home")  # an empty cache
    start = time.perf_counter()
    result = run_script("encode", cwd=project, env=env)
    seconds = time.perf_counter() - start
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: model.checkpoint 'distilbert-base-uncased': could not load the tokenizer from the Hugging Face hub"
        )
    )
    assert "could not connect to 127.0.0.1" in result.stderr
    assert seconds < 30, f"{seconds:.1f} s (imports included)"


# --- collapse ---------------------------------------------------------------------------------


def test_collapse_check_threshold():
    from textclf.evaluation.metrics import collapse_check

    names = ["a", "b", "c"]
    y_true = np.array([0, 1, 2] * 10)
    record, warning = collapse_check(y_true, np.array([1] * 27 + [0, 2, 2]), names)
    assert record == {"collapsed": True, "majority_prediction_share": 0.9}
    assert warning.startswith("the fine-tuned model collapsed: it predicts 'b' for 90% of the validation rows (33%")
    record, warning = collapse_check(y_true, np.array([1] * 26 + [0, 2, 2, 0]), names)
    assert record == {"collapsed": False, "majority_prediction_share": 0.866667} and warning is None


def _collapsed_model(tiny_model: Path, out: Path, label: int) -> None:
    """A classifier on the tiny encoder whose head always answers ``label``."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(
        tiny_model,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={n: i for i, n in enumerate(LABELS)},
    )
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.bias[label] = 10.0
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)


def test_evaluate_reports_a_collapsed_model(project, tiny_model, caplog):
    run_main("data")
    run_main("encode")
    _collapsed_model(tiny_model, project / "models/finetuned", LABELS.index("joy"))
    run_main("hidden_states@finetuned")
    with caplog.at_level("WARNING"):
        run_main("evaluate")
    metrics = json.loads((project / "metrics/finetuned.json").read_text())
    assert metrics["validation"]["collapsed"] is True
    assert metrics["validation"]["majority_prediction_share"] == 1.0
    assert metrics["validation"]["accuracy"] == pytest.approx(1 / 6, abs=1e-6)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("collapsed: it predicts 'joy' for 100% of the validation rows" in w for w in warnings), warnings


def test_evaluate_refuses_a_model_trained_on_other_labels(project, tiny_model):
    run_main("data")
    run_main("encode")
    _collapsed_model(tiny_model, project / "models/finetuned", 0)
    labels = project / "data/prepared/labels.json"
    labels.write_text(json.dumps(list(reversed(LABELS))))
    with pytest.raises(PipelineError, match=r"models/finetuned: the model's labels \['sadness'.* are not the data's"):
        run_main("evaluate")
    labels.write_text('["sadness", ')
    with pytest.raises(PipelineError, match=r"labels\.json: not valid JSON"):
        run_main("evaluate")


@pytest.fixture
def evaluated_inputs(project, tiny_model):
    run_main("data")
    run_main("encode")
    _collapsed_model(tiny_model, project / "models/finetuned", 0)
    run_main("hidden_states@finetuned")
    return project


def test_evaluate_with_damaged_encoded_data_or_weights(evaluated_inputs):
    project = evaluated_inputs
    encoded = project / "data/encoded/validation.parquet"
    original = encoded.read_bytes()
    encoded.write_bytes(original[:100])
    with pytest.raises(PipelineError, match=r"data/encoded/validation\.parquet: not a readable Parquet file"):
        run_main("evaluate")
    encoded.write_bytes(original)
    weights = project / "models/finetuned/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(PipelineError, match=r"^models/finetuned/model\.safetensors: could not load the model"):
        run_main("evaluate")
    assert not (project / "metrics/finetuned.json").exists()


@pytest.mark.slow  # a subprocess that imports torch and transformers: 10-20 s on a busy 2-core machine
def test_evaluate_script_with_truncated_weights(evaluated_inputs):
    project = evaluated_inputs
    run_main("evaluate")
    before = _hashes(project / "plots/finetuned")
    weights = project / "models/finetuned/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    result = run_script("evaluate", cwd=project)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: models/finetuned/model.safetensors: could not load the model"), last
    assert _hashes(project / "plots/finetuned") == before
