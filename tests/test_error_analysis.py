"""The error_analysis stage (textclf/evaluation/error_analysis.py, stages/error_analysis.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import LABELS, ROOT, run_script
from textclf.common.errors import PipelineError
from textclf.evaluation.error_analysis import (
    label_loss,
    loss_table,
    per_row_loss,
    read_predictions,
    summary,
    with_texts,
    write_predictions,
)


def test_per_row_loss_is_cross_entropy():
    import torch

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20, 6)).astype(np.float32) * 5
    labels = rng.integers(0, 6, size=20)
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels), reduction="none")
    np.testing.assert_allclose(per_row_loss(logits, labels), expected.numpy(), rtol=1e-5)


def test_table_is_sorted_by_loss_with_names_and_per_label_means():
    logits = np.array([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [5.0, 0, 0]])
    labels = np.array([0, 0, 2, 1])  # rows 1 and 3 are wrong
    table = loss_table(labels, logits, ["x", "y", "z"])
    table = with_texts(table, np.array(["a", "b", "c", "d"])[table["row"]])
    assert list(table.columns) == ["rank", "row", "text", "label", "predicted", "loss"]
    assert table["loss"].is_monotonic_decreasing and list(table["rank"]) == [1, 2, 3, 4]
    assert list(table["row"][:2]) == [1, 3], "equal losses keep row order"
    assert table.loc[0, ["text", "label", "predicted"]].tolist() == ["b", "x", "y"]
    per_label = label_loss(table, ["x", "y", "z"])
    assert per_label["label"].tolist() == ["x", "y", "z"]
    assert per_label["rows"].tolist() == [2, 1, 1] and per_label["errors"].tolist() == [1, 1, 0]
    assert per_label["mean_loss"][0] == pytest.approx(table.loc[table["label"] == "x", "loss"].mean(), abs=1e-6)
    metrics = summary(table, per_label)
    assert metrics["errors"] == 2 and metrics["rows"] == 4 and set(metrics["label_loss"]) == {"x", "y", "z"}
    assert "text" not in json.dumps(metrics)


def test_mismatched_model_and_labels_is_one_error():
    with pytest.raises(PipelineError, match="predicts 2 labels, the data has 3"):
        loss_table(np.array([0]), np.zeros((1, 2)), ["x", "y", "z"])


def test_predictions_round_trip(tmp_path):
    logits = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2, 0])
    write_predictions(tmp_path / "predictions", {"validation": (labels, logits)})
    frame = pd.read_parquet(tmp_path / "predictions/validation.parquet")
    assert list(frame.columns) == ["label", "predicted", "loss", "logits"]
    assert frame["predicted"].tolist() == logits.argmax(1).tolist()
    np.testing.assert_allclose(frame["loss"], per_row_loss(logits, labels))
    read_labels, read_logits = read_predictions(tmp_path / "predictions/validation.parquet")
    assert read_labels.tolist() == labels.tolist() and (read_logits == logits).all()


def test_top_losses_is_a_cached_output_not_a_plot():
    """Its texts would be inlined into the plots page; a cache: false entry under outs would cost the run-cache."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    stage = spec["stages"]["error_analysis"]
    plots = [next(iter(p)) if isinstance(p, dict) else p for p in stage.get("plots", []) + spec.get("plots", [])]
    assert "plots/errors/top_losses.csv" not in plots and "plots/errors/label_loss.csv" in plots
    assert "plots/errors/top_losses.csv" in stage["outs"], "a cached output (a plain path: cache true)"
    assert not {"meta", "device"} & set(stage) and "device" not in stage["params"]


def test_stage_writes_table_plot_data_and_metrics_and_never_logs_texts(trained_project, tmp_path):
    project = shutil.copytree(trained_project, tmp_path / "work")  # every stage ran (conftest), copied
    shutil.rmtree(project / "plots/errors")  # error_analysis's outputs: this test's own run writes them
    (project / "metrics/error_analysis.json").unlink()
    shutil.rmtree(project / "models/finetuned")  # error_analysis reads evaluate's outputs, never the model
    params = (project / "params.yaml").read_text()
    assert "top_n: 50" in params
    (project / "params.yaml").write_text(params.replace("top_n: 50", "top_n: 5"))
    result = run_script("error_analysis", cwd=project, check=True)

    top = pd.read_csv(project / "plots/errors/top_losses.csv")
    assert list(top.columns) == ["rank", "row", "text", "label", "predicted", "loss"] and len(top) == 5
    assert top["loss"].is_monotonic_decreasing and set(top["label"]) <= set(LABELS)
    validation = pd.read_parquet(project / "data/prepared/validation.parquet")
    assert (validation["text"].iloc[top["row"]].tolist()) == top["text"].tolist(), "texts match their rows"
    per_label = pd.read_csv(project / "plots/errors/label_loss.csv")
    assert per_label["label"].tolist() == LABELS and per_label["rows"].sum() == 12
    metrics = json.loads((project / "metrics/error_analysis.json").read_text())["validation"]
    assert metrics["rows"] == 12 and list(metrics["label_loss"]) == LABELS
    assert metrics["label_loss"]["joy"] == pytest.approx(per_label.set_index("label")["mean_loss"]["joy"])
    logs = result.stdout + result.stderr
    assert "mean loss" in logs
    for text in validation["text"]:
        assert text not in logs, "row texts never go to the logs"

    labels, logits = read_predictions(project / "data/predictions/validation.parquet")
    assert metrics["mean_loss"] == pytest.approx(float(per_row_loss(logits, labels).mean()), abs=1e-6)
    accuracy = json.loads((project / "metrics/finetuned.json").read_text())["validation"]["accuracy"]
    assert metrics["errors"] == round((1 - accuracy) * 12), "the errors of the rows evaluate scored"

    # predictions of other rows (stale): one line, the earlier outputs kept
    before = (project / "plots/errors/label_loss.csv").read_bytes()
    prepared = project / "data/prepared/validation.parquet"
    pd.read_parquet(prepared).iloc[1:].to_parquet(prepared)
    result = run_script("error_analysis", cwd=project)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: data/predictions/validation.parquet: rows differ from data/prepared/validation.parquet "
        "(rerun evaluate: dvc repro)"
    )
    assert (project / "plots/errors/label_loss.csv").read_bytes() == before
