"""The benchmark (``bench.compare``): options, table and JSON layout; end to end on 30 rows and a tiny
random BERT (slow): every step measured, JSON consistent and laid out like the committed results.json."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import compare
from bench.config import Options
from conftest import LABELS, ROOT, few_rows, read_jsonl, write_jsonl

STEPS = ("hidden_states", "logistic_regression", "finetune_throughput", "finetune_quality")


def key_tree(value):
    """The nested keys of a JSON value (dicts only; other values become None), order kept."""
    if isinstance(value, dict):
        return [(k, key_tree(v)) for k, v in value.items()]
    return None


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


def run_compare(tmp_path, tiny_model, *args: str) -> dict:
    """``bench.compare`` on the 30-row integer-label folder and the tiny model; its results.json."""
    data, out = write_int_folder(tmp_path / "data"), tmp_path / "results.json"
    compare.main([
        "--data", str(data), "--out", str(out), "--checkpoint", str(tiny_model),
        "--params", str(ROOT / "params.yaml"), *args,
    ])  # fmt: skip
    return json.loads(out.read_text())


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread while these tests run: on a shared, busy CPU two OpenMP threads make each tiny
    training step ~40x slower (spin-waiting); the bench itself keeps torch's default."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_options_typed_and_checked(capsys):
    options = compare.parse_args(["--data", "d", "--rows", "5", "--epochs", "0.5", "--skip-quality"])
    assert options == Options(data="d", rows=5, epochs=0.5, skip_quality=True)
    assert options.train_steps == 60 and options.out == Path("bench/results.json")
    assert options.params == ROOT / "params.yaml"
    for bad in (["--rows", "0"], ["--train-steps", "0"], ["--epochs", "0"]):
        with pytest.raises(SystemExit) as exc:
            compare.parse_args(["--data", "d", *bad])
        assert exc.value.code == 2
    assert "--rows must be at least 1" in capsys.readouterr().err


def test_help_lists_the_options(capsys):
    """``python -m bench.compare --help``: the module form needs only the package on the path (as here)."""
    with pytest.raises(SystemExit) as exc:
        compare.parse_args(["--help"])
    assert exc.value.code == 0 and "--skip-quality" in capsys.readouterr().out


@pytest.mark.slow
def test_the_script_form_runs_from_the_project_root():
    """``python bench/compare.py`` puts bench/ first on sys.path, not the project: the script must still import
    the bench package (~10 s: torch)."""
    result = subprocess.run([sys.executable, "bench/compare.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--skip-quality" in result.stdout


@pytest.mark.slow
def test_compare_on_tiny_data(tmp_path, tiny_model, capsys):
    result = run_compare(tmp_path, tiny_model, "--train-steps", "3", "--epochs", "0.5")

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


@pytest.mark.slow
def test_skip_quality(tmp_path, tiny_model):
    result = run_compare(tmp_path, tiny_model, "--train-steps", "2", "--rows", "12", "--skip-quality")
    assert result["steps"]["finetune_quality"] is None
    assert result["rows"] == {"train": 12, "validation": 6, "test": 6}
    assert result["steps"]["finetune_throughput"]["pipeline"]["timed_steps"] == 2
    assert result["command"].startswith("python -m bench.compare --data ")
    # laid out like the committed full-data run (also --skip-quality); params.yaml's sections may change
    committed = json.loads((ROOT / "bench" / "results.json").read_text())
    for run in (result, committed):
        del run["settings"]["params"]
    assert key_tree(result) == key_tree(committed)


def test_the_flop_formula_counts_what_torch_counts():
    """bench.flops' FLOPs a token against torch's own count of one forward pass of a BERT encoder."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import BertConfig, BertModel

    from bench.flops import forward_flops_per_token

    config = BertConfig(
        vocab_size=100,
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=256,
        max_position_embeddings=64,
    )
    config._attn_implementation = "eager"  # the attention products as matmuls torch counts (its SDPA kernel is not)
    model = BertModel(config, add_pooling_layer=False).eval()
    batch, seq = 4, 24
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(input_ids=torch.randint(0, 100, (batch, seq)))
    expected = forward_flops_per_token(hidden=64, intermediate=256, layers=3, seq_len=seq) * batch * seq
    assert counter.get_total_flops() == pytest.approx(expected, rel=0.01)
