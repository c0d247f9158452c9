"""`textclf predict` (textclf/commands/predict.py): inputs, outputs, one-line errors, agreement with
transformers.pipeline, the console command and `python -m textclf`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import LABELS, ROOT, few_rows, write_jsonl
from textclf.commands import predict

TEXTS = [
    "i feel so happy and content today",
    "this is so unfair i am furious",
    "i am scared",
    "what a surprise, i never expected that at all",
    "i miss you",
    "love",
]


def save_like_finetune(model, tokenizer, folder: Path) -> Path:
    """What stages/finetune.py writes: safetensors weights with the labels in config.json, the tokenizer."""
    from textclf.models.loading import save_tokenizer

    model.save_pretrained(folder, safe_serialization=True)
    save_tokenizer(tokenizer, folder)
    return folder


@pytest.fixture(scope="module")
def classifier(tiny_model, tmp_path_factory) -> Path:
    """The tiny random BERT with a (random) six-label head, saved the way the finetune stage saves it."""
    import torch

    from textclf.models.loading import load_classifier, load_tokenizer

    torch.manual_seed(1)
    model = load_classifier(str(tiny_model), LABELS)
    return save_like_finetune(model, load_tokenizer(str(tiny_model)), tmp_path_factory.mktemp("tiny-clf"))


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = predict.cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_texts_as_arguments_agree_with_transformers_pipeline(classifier, capsys):
    from transformers import pipeline

    code, out, err = run_cli(capsys, "--model", str(classifier), "--all-scores", "--batch-size", "4", *TEXTS)
    assert code == 0, err
    rows = jsonl(out)
    assert [r["text"] for r in rows] == TEXTS, "rows come back in input order"
    reference = pipeline("text-classification", model=str(classifier), device="cpu")(TEXTS)
    for row, ref in zip(rows, reference, strict=True):
        assert row["label"] == ref["label"] and row["label"] in LABELS
        assert row["score"] == pytest.approx(ref["score"], abs=1e-4)
        assert set(row["scores"]) == set(LABELS) and sum(row["scores"].values()) == pytest.approx(1, abs=1e-4)
        assert row["scores"][row["label"]] == pytest.approx(row["score"], abs=1e-6)


def test_batching_does_not_change_predictions(classifier):
    model, tokenizer = predict.load_model(classifier)
    texts = TEXTS * 3
    one = predict.predict_proba(model, tokenizer, texts, batch_size=1, device="cpu")
    many = predict.predict_proba(model, tokenizer, texts, batch_size=7, device="cpu")
    np.testing.assert_allclose(one, many, atol=1e-5)
    assert one.shape == (18, 6)


@pytest.mark.parametrize("suffix", [".txt", ".jsonl", ".csv", ".parquet"])
def test_input_files_and_output_formats(classifier, tmp_path, suffix, capsys):
    rows = few_rows("validation", 1)  # text and a gold integer label
    source = tmp_path / f"in{suffix}"
    if suffix == ".txt":
        source.write_text("\n".join(r["text"] for r in rows) + "\n\n")  # blank lines are skipped
    else:
        frame = pd.DataFrame(rows).assign(id=range(len(rows)))
        {
            ".jsonl": lambda: write_jsonl(source, frame.to_dict("records")),
            ".csv": lambda: frame.to_csv(source, index=False),
            ".parquet": lambda: frame.to_parquet(source),
        }[suffix]()
    for out_name in ("out.jsonl", "out.csv"):
        target = tmp_path / out_name
        code, _, err = run_cli(
            capsys, "--model", str(classifier), "--input", str(source), "--output", str(target), "--all-scores"
        )
        assert code == 0, err
        result = jsonl(target.read_text()) if out_name.endswith(".jsonl") else pd.read_csv(target).to_dict("records")
        assert [r["text"] for r in result] == [r["text"] for r in rows]
        assert all(r["label"] in LABELS and 0 < r["score"] <= 1 for r in result)
        if suffix != ".txt":  # other columns are kept as read (CSV fields as text); `label` becomes `input_label`
            as_read = str if suffix == ".csv" and out_name.endswith(".jsonl") else int
            assert [r["id"] for r in result] == [as_read(i) for i in range(len(rows))]
            assert [r["input_label"] for r in result] == [r["label"] for r in rows]
        if out_name.endswith(".csv"):
            assert {f"score_{name}" for name in LABELS} <= set(result[0])


def test_stdin_through_python_m_textclf(classifier):
    """From the project root, `python -m textclf predict` reads stdin and writes JSON lines."""
    result = subprocess.run(
        [sys.executable, "-m", "textclf", "predict", "--model", str(classifier)],
        cwd=ROOT,
        input="i love this\n\nwhy would you do that\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = jsonl(result.stdout)
    assert [r["text"] for r in rows] == ["i love this", "why would you do that"]
    assert all(set(r) == {"text", "label", "score"} for r in rows)


def _corrupt(folder: Path, tmp_path: Path) -> Path:
    broken = tmp_path / "broken-model"
    shutil.copytree(folder, broken)
    (broken / "model.safetensors").write_bytes(b"\x00not a safetensors file")
    return broken


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing model", r"model folder not found"),
        ("corrupt model", r"could not load the model"),
        ("no config", r"no config.json: not a model folder"),
        ("empty txt", r"in\.txt: no texts to label \(empty input\)"),
        ("empty jsonl", r"in\.jsonl: no texts to label \(empty input\)"),
        ("missing file", r"input file not found"),
        ("bad jsonl", r"in\.jsonl: line 2: not valid JSON"),
        ("no text column", r"in\.csv: missing column\(s\) text \(found: sentence, label\)"),
        ("null text", r"in\.jsonl: line 2: 'text' is empty or not a string"),
        ("bad output", r"unknown output format 'xlsx'"),
        ("empty stdin", r"stdin: no texts"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(case, message, classifier, tmp_path, capsys, monkeypatch):
    import io
    import re

    model, args = str(classifier), []
    if case == "missing model":
        model = str(tmp_path / "nowhere")
    elif case == "corrupt model":
        model = str(_corrupt(classifier, tmp_path))
    elif case == "no config":
        (tmp_path / "empty-model").mkdir()
        model = str(tmp_path / "empty-model")
    if case in ("missing model", "corrupt model", "no config", "bad output"):
        args = ["some text"]
    if case == "bad output":
        args += ["--output", str(tmp_path / "out.xlsx")]
    files = {
        "empty txt": ("in.txt", "\n  \n"),
        "empty jsonl": ("in.jsonl", ""),
        "missing file": ("absent.csv", None),
        "bad jsonl": ("in.jsonl", '{"text": "ok"}\n{not json\n'),
        "no text column": ("in.csv", "sentence,label\nhello,1\n"),
        "null text": ("in.jsonl", '{"text": "ok"}\n{"text": null}\n'),
    }
    if case in files:
        name, content = files[case]
        if content is not None:
            (tmp_path / name).write_text(content)
        args = ["--input", str(tmp_path / name)]
    if case == "empty stdin":
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO()))
    code, out, err = run_cli(capsys, "--model", model, *args)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(message, lines[0]), lines[0]


def test_module_entry_point_lists_commands_and_refuses_unknown_ones():
    from textclf.__main__ import main

    assert main(["nonsense"]) == 2
    assert main([]) == 2
    result = subprocess.run(
        [sys.executable, "-m", "textclf", "predict", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "--all-scores" in result.stdout and "--input" in result.stdout


def test_stages_import_the_checkout_not_an_installed_copy(tmp_path):
    """A `textclf` installed elsewhere (site-packages, PYTHONPATH) never shadows the checkout's for the stages."""
    fake = tmp_path / "site" / "textclf"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('the installed copy was imported')\n")
    env = {**os.environ, "PYTHONPATH": str(fake.parent)}
    for module in ("stages.evaluate", "stages.error_analysis", "stages.model_card", "textclf"):
        args = ["--help"] if module.startswith("stages") else ["predict", "--help"]
        result = subprocess.run(
            [sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"{module}: {result.stderr[-500:]}"


def test_transformers_pipeline_loads_what_the_finetune_stage_saves(trained_project):
    """The finetune stage's own output (conftest's trained_project: only read) works with
    `transformers.pipeline` and with `textclf predict`."""
    from transformers import pipeline

    folder = trained_project / "models/finetuned"
    reference = pipeline("text-classification", model=str(folder), device="cpu")(TEXTS)
    assert all(r["label"] in LABELS for r in reference)
    model, tokenizer = predict.load_model(folder)
    probabilities = predict.predict_proba(model, tokenizer, TEXTS, device="cpu")
    assert [LABELS[i] for i in probabilities.argmax(-1)] == [r["label"] for r in reference]
    np.testing.assert_allclose(probabilities.max(-1), [r["score"] for r in reference], atol=1e-4)


@pytest.mark.slow
def test_console_script_from_a_non_editable_install(tmp_path, classifier):
    """`pip install .` (the requirements.txt line) installs a `textclf` command that runs the code
    as of install time; from the project root the checkout's textclf wins over the installed copy."""
    site = tmp_path / "site"  # stands for site-packages: a --target install, seen through PYTHONPATH
    build = tmp_path / "src"  # a copy: the build must not leave build/ or *.egg-info in the checkout
    top = {".git", ".venv", "node_modules", "data", "models", "checkpoints", "plots", "dvclive", "build"}
    shutil.copytree(  # the project's own data/, models/... only: textclf/models is code
        ROOT,
        build,
        ignore=lambda folder, names: [n for n in names if n == "__pycache__" or (Path(folder) == ROOT and n in top)],
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(build),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [str(site / "bin" / "textclf"), "predict", "--model", str(classifier), "i love it"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert jsonl(result.stdout)[0]["label"] in LABELS

    def imported_from(cwd: Path) -> str:
        code = "import textclf; print(textclf.__file__)"
        return subprocess.run(
            [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True
        ).stdout.strip()

    assert imported_from(tmp_path) == str(site / "textclf" / "__init__.py")  # elsewhere: the installed copy
    # `python -c` and `python -m` put the working directory first on sys.path: the checkout wins there
    assert imported_from(ROOT) == str(ROOT / "textclf" / "__init__.py")


@pytest.mark.slow
def test_speed_benchmark_on_tiny_model(classifier, small_folder, tmp_path):
    """bench/predict_speed.py runs every variant on the same rows and reports rows/s, ratios and accuracy."""
    out = tmp_path / "speed.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "predict_speed.py"),
            "--model",
            str(classifier),
            "--data",
            str(small_folder),
            "--out",
            str(out),
            "--skip",
            "pipeline, batch 64",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["rows"] == 24 and set(report["runs"]) == {
        "pipeline, batch 1",
        "textclf predict",
        "textclf predict --precision fp32",
    }
    runs = report["runs"]
    assert runs["pipeline, batch 1"]["speedup_vs_pipeline"] == 1.0
    for run in runs.values():
        assert run["rows_per_s"] > 0 and 0 <= run["accuracy"]["validation"] <= 1
    # same model, same fp32 arithmetic up to summation order: the same labels, hence the same accuracy
    assert runs["textclf predict --precision fp32"]["accuracy"] == runs["pipeline, batch 1"]["accuracy"]
    assert "| textclf predict |" in result.stdout


@pytest.mark.parametrize("out_name", ["out.jsonl", "out.csv", "out.parquet"])
def test_input_streams_in_slices_with_the_same_output(classifier, tmp_path, out_name, capsys, monkeypatch):
    """Slices of 5 rows (row groups, CSV chunks, JSON-lines chunks) label exactly as one slice does."""
    rows = [{"text": r["text"], "id": i} for i, r in enumerate(few_rows("train", 3))]  # 18 rows
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    outputs = {}
    for size in (10**6, 5):
        monkeypatch.setattr(predict, "ROWS_PER_SLICE", size)
        target = tmp_path / f"{size}-{out_name}"
        code, _, err = run_cli(
            capsys, "--model", str(classifier), "--input", str(source), "--output", str(target), "--all-scores"
        )
        assert code == 0, err
        outputs[size] = pd.read_parquet(target) if out_name.endswith(".parquet") else target.read_bytes()
    if out_name.endswith(".parquet"):
        assert outputs[5].equals(outputs[10**6]) and len(outputs[5]) == 18
        assert pd.read_parquet(tmp_path / f"5-{out_name}")["id"].tolist() == list(range(18))
    else:
        assert outputs[5] == outputs[10**6]


def test_a_bad_row_in_a_later_slice_names_its_row_and_leaves_no_output(classifier, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(predict, "ROWS_PER_SLICE", 5)
    rows = [{"text": f"text number {i}"} for i in range(12)]
    rows[8]["text"] = "   "
    source, target = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.csv"
    code, out, err = run_cli(capsys, "--model", str(classifier), "--input", str(source), "--output", str(target))
    assert code == 2 and err.strip() == f"error: {source}: line 9: 'text' is empty or not a string"
    assert not target.exists() and not list(tmp_path.glob(".out.csv.*")), "no partial output"


@pytest.mark.slow
def test_two_processes_label_like_one(classifier, tmp_path):
    """`python -m textclf.models.launch --processes 2 textclf predict`: each slice's batches split, one writer."""
    rows = [{"text": r["text"]} for r in few_rows("train", 4)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = {}
    for processes in (1, 2):
        target = tmp_path / f"out-{processes}.jsonl"
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "textclf.models.launch",
                "--processes",
                str(processes),
                "textclf",
                "predict",
                "--model",
                str(classifier),
                "--input",
                str(source),
                "--output",
                str(target),
                "--all-scores",
                "--batch-size",
                "4",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        results[processes] = jsonl(target.read_text())
    assert [r["text"] for r in results[2]] == [r["text"] for r in rows]
    assert [r["label"] for r in results[2]] == [r["label"] for r in results[1]]
    for one, two in zip(results[1], results[2], strict=True):
        assert one["scores"] == pytest.approx(two["scores"], abs=1e-5)


def test_parquet_columns_keep_their_types(classifier, tmp_path, capsys):
    """An integer column with a null stays integer ([3, null], not [3.0, None]), in Parquet and JSON lines."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "text": ["i am happy", "so sad"],
            "n": pa.array([3, None], pa.int64()),
            "small": pa.array([None, 7], pa.uint8()),
            "tags": pa.array([["a"], None], pa.list_(pa.string())),
        }
    )
    pq.write_table(table, tmp_path / "in.parquet")
    code, _, err = run_cli(
        capsys, "-m", str(classifier), "-i", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "o.parquet")
    )
    assert code == 0, err
    assert pq.read_table(tmp_path / "o.parquet").select(table.column_names).equals(table)
    code, out, err = run_cli(capsys, "-m", str(classifier), "-i", str(tmp_path / "in.parquet"))
    assert code == 0 and [(r["n"], r["small"], r["tags"]) for r in jsonl(out)] == [(3, None, ["a"]), (None, 7, None)]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_relabelling_an_output_keeps_the_earlier_columns(classifier, tmp_path, capsys, fmt):
    """predict on its own output: the earlier label and scores are kept as input_<name>, then input_<name>_2."""
    read = (lambda p: jsonl(p.read_text())) if fmt == "jsonl" else (lambda p: pd.read_csv(p).to_dict("records"))
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": t, "label": "joy"} for t in TEXTS])
    earlier = jsonl(source.read_text())
    for run in (1, 2, 3):
        out = tmp_path / f"out{run}.{fmt}"
        code, _, err = run_cli(capsys, "-m", str(classifier), "-i", str(source), "-o", str(out), "--all-scores")
        assert code == 0, err
        header = (out.read_text().splitlines()[0].split(",")) if fmt == "csv" else list(jsonl(out.read_text())[0])
        assert len(header) == len(set(header)), header
        rows = read(out)
        assert [r["input_label" if run == 1 else f"input_label_{run}"] for r in rows] == [r["label"] for r in earlier]
        source, earlier = out, rows
    assert [r["input_label"] for r in rows] == ["joy"] * len(TEXTS)
    scores = "input_score_joy_2" if fmt == "csv" else "input_scores_2"
    assert scores in rows[0] and "score" in rows[0] and "input_score_2" in rows[0]


def test_closed_stdout_is_one_line(classifier, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", None)  # what Python sets when descriptor 1 is closed at start
    assert predict.cli(["-m", str(classifier), "i am happy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: stdout is closed"), err


@pytest.mark.parametrize(
    ("problem_type", "num_labels"), [("multi_label_classification", 6), ("regression", 6), ("regression", 1)]
)
def test_a_head_that_is_not_single_label_is_refused(tiny_model, tmp_path, capsys, problem_type, num_labels):
    """Never softmaxed as if it were single-label: one line naming the head."""
    from transformers import AutoModelForSequenceClassification

    from textclf.models.loading import load_tokenizer

    labels = LABELS[:num_labels]
    model = AutoModelForSequenceClassification.from_pretrained(
        str(tiny_model),
        num_labels=num_labels,
        problem_type=problem_type,
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
    )
    folder = save_like_finetune(model, load_tokenizer(str(tiny_model)), tmp_path / "m")
    code, out, err = run_cli(capsys, "-m", str(folder), "i am happy")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {folder}") and ("single-label" in err or "two or more labels" in err), err


def test_json_rows_with_other_keys_later_never_shift_csv_columns(classifier, tmp_path, capsys, monkeypatch):
    """CSV has one header: a later slice missing a column gets it empty; a column first seen later is one line."""
    monkeypatch.setattr(predict, "ROWS_PER_SLICE", 2)
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a", "x": 1}, {"text": "b", "x": 2}, {"text": "c"}])
    code, _, err = run_cli(capsys, "-m", str(classifier), "-i", str(source), "-o", str(tmp_path / "o.csv"))
    assert code == 0, err
    assert pd.read_csv(tmp_path / "o.csv", keep_default_na=False)["x"].astype(str).tolist() == ["1", "2", ""]
    write_jsonl(source, [{"text": "a"}, {"text": "b"}, {"text": "c", "y": 1}])
    code, _, err = run_cli(capsys, "-m", str(classifier), "-i", str(source), "-o", str(tmp_path / "o2.csv"))
    assert code == 2 and "column(s) y first appear after row 2" in err and not (tmp_path / "o2.csv").exists()
