"""Classification metrics: the agreed keys, macro F1 beside weighted F1, bootstrap intervals, and the
evaluate stage's metrics from the logits of the model's own forward pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from conftest import LABELS, run_main
from textclf.common.errors import PipelineError
from textclf.evaluation.metrics import classification_metrics


def test_metric_keys_and_macro_f1_shows_a_missed_rare_label():
    # 18 rows of label 0, 2 of label 1: predicting 0 everywhere is 90% accurate, weighted F1 high,
    # macro F1 low (label 1 scores 0)
    y_true = np.array([0] * 18 + [1] * 2)
    y_pred = np.zeros(20, dtype=int)
    metrics = classification_metrics(y_true, y_pred, ["big", "rare"])
    assert set(metrics) == {"accuracy", "f1_macro", "f1_weighted", "f1_per_label"}
    assert metrics["accuracy"] == pytest.approx(0.9)
    assert metrics["f1_per_label"] == {"big": pytest.approx(2 * 0.9 / 1.9, abs=1e-6), "rare": 0.0}
    assert metrics["f1_macro"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0), abs=1e-6)
    assert metrics["f1_macro"] < 0.5 < 0.8 < metrics["f1_weighted"]


def _noisy_predictions(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Six imbalanced labels, about 80% of them predicted right."""
    rng = np.random.default_rng(seed)
    y_true = rng.choice(6, size=rows, p=[0.3, 0.3, 0.15, 0.15, 0.06, 0.04])
    wrong = rng.random(rows) < 0.2
    return y_true, np.where(wrong, rng.integers(0, 6, rows), y_true)


def test_bootstrap_interval_is_seeded_contains_the_estimate_and_narrows_with_more_rows():
    from textclf.evaluation.metrics import bootstrap_ci95

    y_true, y_pred = _noisy_predictions(60)
    first = bootstrap_ci95(y_true, y_pred, resamples=1000, seed=7)
    assert first == bootstrap_ci95(y_true, y_pred, resamples=1000, seed=7), "same seed, same interval"
    assert first != bootstrap_ci95(y_true, y_pred, resamples=1000, seed=8)
    point = classification_metrics(y_true, y_pred)
    for name in ("accuracy", "f1_macro"):
        assert first[f"{name}_ci95_low"] < point[name] < first[f"{name}_ci95_high"], name

    big_true, big_pred = _noisy_predictions(2000)
    wide = bootstrap_ci95(big_true[:60], big_pred[:60], 1000, seed=7)
    narrow = bootstrap_ci95(big_true, big_pred, 1000, seed=7)
    for name in ("accuracy", "f1_macro"):
        width = lambda ci, name=name: ci[f"{name}_ci95_high"] - ci[f"{name}_ci95_low"]
        assert width(narrow) < width(wide) / 3, name  # 33x the rows: about 1/sqrt(33) of the width


def test_bootstrap_of_one_row_is_its_point_estimate():
    """A split of one row (the data stage allows it): every resample is that row."""
    from textclf.evaluation.metrics import bootstrap_ci95

    for pred, value in ((1, 1.0), (0, 0.0)):
        ci = bootstrap_ci95(np.array([1]), np.array([pred]), resamples=50, seed=0)
        assert ci == {f"{m}_ci95_{end}": value for m in ("accuracy", "f1_macro") for end in ("low", "high")}
    assert bootstrap_ci95(np.array([], dtype=int), np.array([], dtype=int), 50, 0) == {}


@pytest.mark.parametrize("block", [1, 59, 10**9])
def test_bootstrap_in_batches_gives_the_interval_of_one_batch(monkeypatch, block):
    """Memory bounded at any row count: scipy draws a batch of resamples at a time (1 and 59 indices: one
    resample a batch), from the same seeded stream, so the interval does not depend on the batch size."""
    import textclf.evaluation.metrics
    from textclf.evaluation.metrics import bootstrap_ci95

    y_true, y_pred = _noisy_predictions(500)
    whole = bootstrap_ci95(y_true, y_pred, resamples=101, seed=3)
    monkeypatch.setattr(textclf.evaluation.metrics, "BOOTSTRAP_BLOCK", block)
    assert bootstrap_ci95(y_true, y_pred, resamples=101, seed=3) == whole


def test_resample_scores_match_sklearn_on_each_resample():
    """The vectorized statistic scipy's bootstrap calls: per resample (a row), sklearn's accuracy and macro F1."""
    from textclf.evaluation.metrics import resample_scores

    y_true, y_pred = _noisy_predictions(40, seed=3)
    draws = np.random.default_rng(5).integers(0, 40, size=(3, 40))
    scores = resample_scores(y_true[draws], y_pred[draws], 6, axis=-1)
    for i, d in enumerate(draws):
        expected = classification_metrics(y_true[d], y_pred[d])
        assert scores[:, i] == pytest.approx([expected["accuracy"], expected["f1_macro"]], abs=1e-6)


def _tiny_classifier(kind: str, tiny_model: Path, out: Path) -> None:
    """A tiny random classifier of the data's labels (the project's BERT, or a DistilBERT), its head scaled up
    so that logits spread, saved with the packaged tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DistilBertConfig

    torch.manual_seed(1)
    labels = dict(id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    if kind == "bert":
        model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=len(LABELS), **labels)
    else:
        config = DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64, **labels)
        model = AutoModelForSequenceClassification.from_config(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "classifier" in name or "pooler" in name:
                parameter.mul_(30)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_evaluate_metrics_are_those_of_a_forward_pass_of_the_model(project, tiny_model, kind):
    """hidden_states@finetuned runs the classifier once (batched, padded): its saved logits are the model's on
    each row alone, and so are evaluate's metrics; its saved states are the bare encoder's first-token states."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    from textclf.evaluation.error_analysis import read_predictions
    from textclf.io.stage_files import read_token_rows

    run_main("data")
    run_main("encode")
    _tiny_classifier(kind, tiny_model, project / "models/finetuned")
    run_main("hidden_states@finetuned")
    run_main("evaluate")
    metrics = json.loads((project / "metrics/finetuned.json").read_text())
    classifier = AutoModelForSequenceClassification.from_pretrained(project / "models/finetuned").eval()
    encoder = AutoModel.from_pretrained(project / "models/finetuned").eval()
    for split in ("validation", "test"):
        rows = read_token_rows(project / f"data/encoded/{split}.parquet")
        with torch.no_grad():
            ids = [torch.from_numpy(rows.row(i)).long()[None] for i in range(len(rows))]
            expected = torch.cat([classifier(input_ids=x).logits for x in ids]).numpy()
            states = torch.cat([encoder(input_ids=x).last_hidden_state[:, 0] for x in ids]).numpy()
        labels, logits = read_predictions(project / f"data/predictions/{split}.parquet")
        assert len(labels) == 12 and np.ptp(expected, axis=0).min() > 1e-3, "logits that differ between rows"
        np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5)
        np.testing.assert_allclose(np.load(project / f"data/hidden/finetuned/{split}.npy"), states, atol=1e-5)
        point = classification_metrics(rows.labels, expected.argmax(1), LABELS)
        assert {k: metrics[split][k] for k in point} == point
        assert metrics[split]["accuracy_ci95_low"] <= point["accuracy"] <= metrics[split]["accuracy_ci95_high"]


def test_evaluate_refuses_logits_of_other_rows(project, tiny_model):
    run_main("data")
    run_main("encode")
    _tiny_classifier("bert", tiny_model, project / "models/finetuned")
    run_main("hidden_states@finetuned")
    logits = project / "data/hidden/finetuned/validation_logits.npy"
    np.save(logits, np.load(logits)[:5])
    with pytest.raises(
        PipelineError,
        match=r"^data/hidden/finetuned/validation_logits\.npy: logits of shape \(5, 6\), "
        r"expected \(12, 6\) .* rerun hidden_states@finetuned",
    ):
        run_main("evaluate")
    assert not (project / "data/predictions").exists() and not (project / "metrics/finetuned.json").exists()
