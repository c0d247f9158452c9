"""bench/compare.py end to end on 30 rows and a tiny random BERT: every step measured, JSON consistent."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch

from conftest import LABELS, ROOT, few_rows, read_jsonl, write_jsonl

STEPS = ("hidden_states", "logistic_regression", "finetune_throughput", "finetune_quality")


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_compare", ROOT / "bench" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_int_folder(folder):
    """18 train (3 per label), 6 validation, 6 test rows; labels as integer ids in labels.json order."""
    ids = {name: i for i, name in enumerate(LABELS)}
    rows = {
        "train": few_rows("train", 3),
        "validation": read_jsonl(ROOT / "data/sample/validation.jsonl")[:6],
        "test": read_jsonl(ROOT / "data/sample/test.jsonl")[:6],
    }
    for split, split_rows in rows.items():
        write_jsonl(folder / f"{split}.jsonl", [{"text": r["text"], "label": ids[r["label"]]} for r in split_rows])
    return folder


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread while these tests run: on a shared, busy CPU two OpenMP threads make each tiny
    training step ~40x slower (spin-waiting); the bench itself keeps torch's default."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_compare_on_tiny_data(tmp_path, tiny_model, capsys):
    data = write_int_folder(tmp_path / "data")
    out = tmp_path / "results.json"
    bench = load_bench()
    bench.main([
        "--data", str(data), "--out", str(out), "--checkpoint", str(tiny_model),
        "--params", str(ROOT / "params.yaml"), "--train-steps", "3", "--epochs", "0.5",
    ])
    result = json.loads(out.read_text())

    assert result["rows"] == {"train": 18, "validation": 6, "test": 6}
    assert result["machine"]["cpu_cores"] >= 1 and result["machine"]["torch"]
    assert result["started"] <= result["finished"]
    for name in STEPS:
        step = result["steps"][name]
        assert step is not None, name
        nb, ours = step["notebook_rows_per_s"], step["pipeline_rows_per_s"]
        assert nb > 0 and ours > 0, name
        assert math.isclose(step["ratio"], ours / nb, rel_tol=1e-9), name

    quality = result["steps"]["hidden_states"]["quality"]
    for key in ("notebook_features_validation_accuracy", "pipeline_features_validation_accuracy"):
        assert 0 <= quality[key] <= 1
    # fp32 on both sides (no native bf16 on the test CPU or not): the same features up to rounding
    if result["steps"]["hidden_states"]["pipeline"]["precision"] == "fp32":
        assert quality["max_abs_diff"] < 1e-3 and quality["mean_cosine_similarity"] > 0.9999
    for name in ("logistic_regression", "finetune_quality"):
        for side in ("notebook", "pipeline"):
            assert 0 <= result["steps"][name][side]["validation_accuracy"] <= 1
    throughput = result["steps"]["finetune_throughput"]
    assert throughput["notebook"]["timed_steps"] == throughput["pipeline"]["timed_steps"] == 3
    assert result["steps"]["finetune_quality"]["notebook"]["optimizer_steps"] >= 1

    printed = capsys.readouterr().out
    for label in ("A hidden states", "B logreg fit", "C fine-tune steps", "C fine-tune quality"):
        assert label in printed


def test_skip_quality(tmp_path, tiny_model):
    data = write_int_folder(tmp_path / "data")
    out = tmp_path / "results.json"
    load_bench().main([
        "--data", str(data), "--out", str(out), "--checkpoint", str(tiny_model),
        "--params", str(ROOT / "params.yaml"), "--train-steps", "2", "--rows", "12", "--skip-quality",
    ])
    result = json.loads(out.read_text())
    assert result["steps"]["finetune_quality"] is None
    assert result["rows"] == {"train": 12, "validation": 6, "test": 6}
    assert result["steps"]["finetune_throughput"]["pipeline"]["timed_steps"] == 2
