"""Every data source format, and every kind of bad data: one clear line, earlier outputs untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import LABELS, ROOT, data_params, few_rows, run_main, run_script, write_jsonl, write_params
from textclf.common.errors import PipelineError
from textclf.io.sources import load_dataset

SPLITS = ("train", "validation", "test")


def split_rows() -> dict[str, list[dict]]:
    return {split: few_rows(split, n) for split, n in (("train", 4), ("validation", 1), ("test", 1))}


def check_loaded(dataset, names=LABELS):
    assert dataset.label_names == names
    assert [len(dataset.splits[s]) for s in SPLITS] == [24, 6, 6]
    train = dataset.splits["train"]
    assert set(train["label"]) == set(range(len(names))) and train["text"].map(len).min() > 0


def test_sample_source_is_the_committed_demo():
    dataset = load_dataset(data_params(source="sample"))
    assert dataset.label_names == LABELS
    counts = dataset.splits["train"]["label"].value_counts()
    assert len(counts) == 6 and counts.min() >= 30
    total = sum(len(dataset.splits[s]) for s in SPLITS)
    assert total >= 6 * 50


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_table_formats_with_label_names(tmp_path, fmt):
    for split, rows in split_rows().items():
        frame = pd.DataFrame(rows)
        path = tmp_path / f"{split}.{fmt}"
        if fmt == "jsonl":
            write_jsonl(path, rows)
        elif fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path)
    (tmp_path / "labels.json").write_text(json.dumps(LABELS))
    check_loaded(load_dataset(data_params(source=str(tmp_path))))


def test_integer_labels_take_names_from_params(tmp_path):
    for split, rows in split_rows().items():
        write_jsonl(tmp_path / f"{split}.jsonl", [{"text": r["text"], "label": LABELS.index(r["label"])} for r in rows])
    check_loaded(load_dataset(data_params(source=str(tmp_path), label_names=LABELS)))
    # without names, integer ids name themselves
    check_loaded(load_dataset(data_params(source=str(tmp_path))), names=[str(i) for i in range(6)])


def test_original_txt_files(tmp_path):
    for split, rows in split_rows().items():
        name = {"train": "train.txt", "validation": "val.txt", "test": "test.txt"}[split]
        (tmp_path / name).write_text("".join(f"{r['text']};{r['label']}\n" for r in rows))
    dataset = load_dataset(data_params(source=str(tmp_path), label_names=LABELS))
    check_loaded(dataset)
    # without names: sorted label strings
    assert load_dataset(data_params(source=str(tmp_path))).label_names == sorted(LABELS)


def test_hub_source_uses_load_dataset_and_its_label_names(monkeypatch):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=LABELS)})
    fake = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(
                {"text": [r["text"] for r in rows], "label": [LABELS.index(r["label"]) for r in rows]},
                features=features,
            )
            for split, rows in split_rows().items()
        }
    )
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda name: calls.append(name) or fake)
    check_loaded(load_dataset(data_params(source="dair-ai/emotion")))
    assert calls == ["dair-ai/emotion"]


def test_hub_source_offline_says_how_to_use_local_files():
    with pytest.raises(PipelineError, match="could not reach the Hugging Face hub.*local folder"):
        load_dataset(data_params(source="dair-ai/emotion"))


def test_max_samples_caps_rows(tmp_path, small_folder, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_params(
        tmp_path / "params.yaml", data={"source": str(small_folder), "max_train_samples": 10, "max_eval_samples": 3}
    )
    run_main("data")
    assert [len(pd.read_parquet(tmp_path / f"data/prepared/{s}.parquet")) for s in SPLITS] == [10, 3, 3]


# --- bad data -------------------------------------------------------------------------------


def _write(folder: Path, rows: dict[str, list[dict]]) -> None:
    for split, split_rows_ in rows.items():
        write_jsonl(folder / f"{split}.jsonl", split_rows_)
    (folder / "labels.json").write_text(json.dumps(LABELS))


def _bad_case(name: str, folder: Path) -> str:
    """Break a good folder in one way; return a regex the error must match (file/row named)."""
    rows = split_rows()
    if name == "missing_split":
        _write(folder, rows)
        (folder / "test.jsonl").unlink()
        return r"missing the test split \(expected one of test\.jsonl"
    if name == "missing_text_column":
        rows["validation"] = [{"sentence": r["text"], "label": r["label"]} for r in rows["validation"]]
        _write(folder, rows)
        return r"validation\.jsonl: missing column\(s\) text"
    if name == "missing_label_column":
        rows["train"] = [{"text": r["text"]} for r in rows["train"]]
        _write(folder, rows)
        return r"train\.jsonl: missing column\(s\) label"
    if name == "empty_split":
        _write(folder, rows)
        (folder / "validation.jsonl").write_text("")
        return r"validation\.jsonl: the validation split is empty"
    if name == "empty_texts":
        rows["train"][2]["text"] = "   "
        rows["train"][5]["text"] = ""
        _write(folder, rows)
        return r"train\.jsonl: 2 empty, whitespace-only or null text\(s\) at line\(s\) 3, 6"
    if name == "unknown_label_name":
        rows["test"][0]["label"] = "boredom"
        _write(folder, rows)
        return r"test\.jsonl: line 1: unknown label 'boredom'"
    if name == "label_id_out_of_range":
        rows = {s: [{"text": r["text"], "label": LABELS.index(r["label"])} for r in rs] for s, rs in rows.items()}
        rows["validation"][3]["label"] = 9
        _write(folder, rows)
        return r"validation\.jsonl: line 4: label id 9 is outside 0\.\.5"
    if name == "label_without_train_rows":
        rows["train"] = [r for r in rows["train"] if r["label"] != "surprise"]
        _write(folder, rows)
        return r"train\.jsonl: label\(s\) surprise have no rows in train"
    if name == "non_utf8":
        _write(folder, rows)
        data = (folder / "train.jsonl").read_bytes().split(b"\n")
        data[6] = data[6].replace(b"i ", b"i \xff ", 1)
        (folder / "train.jsonl").write_bytes(b"\n".join(data))
        return r"train\.jsonl: line 7: not valid UTF-8"
    if name == "txt_without_separator":
        for split, split_rows_ in rows.items():
            file = {"train": "train.txt", "validation": "val.txt", "test": "test.txt"}[split]
            lines = [f"{r['text']};{r['label']}" for r in split_rows_]
            if split == "train":
                lines[4] = lines[4].replace(";", " ")
            (folder / file).write_text("\n".join(lines) + "\n")
        return r"train\.txt: line 5: no ';' separator"
    raise AssertionError(name)


BAD_CASES = [
    "missing_split",
    "missing_text_column",
    "missing_label_column",
    "empty_split",
    "empty_texts",
    "unknown_label_name",
    "label_id_out_of_range",
    "label_without_train_rows",
    "non_utf8",
    "txt_without_separator",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_data_fails_with_one_line_and_keeps_outputs(tmp_path, small_folder, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    params = write_params(tmp_path / "params.yaml", data={"source": str(small_folder)})
    run_main("data")  # a good run first: its outputs must survive the bad one
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "data/prepared").iterdir()}

    bad = tmp_path / "bad"
    bad.mkdir()
    pattern = _bad_case(case, bad)
    write_params(params, data={"source": str(bad)})
    with pytest.raises(PipelineError, match=pattern):
        run_main("data")

    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "data/prepared").iterdir()}
    assert after == before
    assert not [p for p in (tmp_path / "data").iterdir() if p.name.endswith(".tmp")], "no temporary leftovers"


def test_empty_texts_can_be_dropped(tmp_path):
    _bad_case("empty_texts", tmp_path)
    dataset = load_dataset(data_params(source=str(tmp_path), empty_texts="drop"))
    assert len(dataset.splits["train"]) == 22


def test_duplicates_across_train_and_test_are_a_warning(tmp_path, caplog):
    rows = split_rows()
    rows["test"].append(dict(rows["train"][0]))
    rows["test"].append(dict(rows["train"][1]))
    _write(tmp_path, rows)
    with caplog.at_level("WARNING"):
        load_dataset(data_params(source=str(tmp_path)))
    assert "2 test text(s) also occur in train" in caplog.text


def test_stage_exit_code_and_single_line_message(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    _bad_case("unknown_label_name", bad)
    write_params(tmp_path / "params.yaml", data={"source": str(bad)})
    result = run_script("data", cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "test.jsonl: line 1: unknown label 'boredom'" in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_source_folder(tmp_path):
    with pytest.raises(PipelineError, match=r"data\.source '\./nowhere': no such folder"):
        load_dataset(data_params(source="./nowhere"))


def test_sample_is_not_the_research_dataset():
    """The demo sample is our own writing: none of its texts may come from the emotion data."""
    shared = ROOT.parent / "shared" / "data" / "emotion"
    if not shared.is_dir():
        pytest.skip("../shared/data/emotion is not here to compare with")
    real = {json.loads(line)["text"] for f in shared.glob("*.jsonl") for line in f.read_text().splitlines()}
    ours = {
        r["text"] for s in SPLITS for r in map(json.loads, (ROOT / f"data/sample/{s}.jsonl").read_text().splitlines())
    }
    assert not ours & real


def test_a_label_train_lacks_is_reported_at_the_row_that_holds_it(tmp_path):
    """Names found in the data come from train: a label only validation holds is named with its file and line."""
    rows = split_rows()
    rows["validation"][2]["label"] = "boredom"
    for split, split_rows_ in rows.items():
        write_jsonl(tmp_path / f"{split}.jsonl", split_rows_)
    with pytest.raises(PipelineError, match=r"validation\.jsonl: line 3: unknown label 'boredom'"):
        load_dataset(data_params(source=str(tmp_path)))


def test_a_lone_surrogate_in_a_jsonl_text_is_replaced_with_a_warning_naming_its_line(tmp_path, caplog):
    """Half an emoji ("\\ud83d" in JSON) cannot be written as UTF-8: U+FFFD, one warning line naming file and line."""
    for split, split_rows_ in split_rows().items():
        write_jsonl(tmp_path / "src" / f"{split}.jsonl", split_rows_)
    path = tmp_path / "src" / "train.jsonl"
    path.write_text(path.read_text().replace('"text": "', '"text": "so happy \\ud83d ', 1))
    write_params(tmp_path / "params.yaml", data={"source": str(tmp_path / "src")})
    run_main("data", "--out", str(tmp_path / "out"), "--params", str(tmp_path / "params.yaml"))
    assert pd.read_parquet(tmp_path / "out/train.parquet")["text"][0].startswith("so happy \ufffd ")
    assert f"{path}: line 1: a lone surrogate" in caplog.text
