"""The baselines' memory is bounded by a sample size: fitted on a stratified sample, scored on every row."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from conftest import run_main, write_params
from stages import baselines
from textclf.evaluation.metrics import classification_metrics


def _fake_pipeline_outputs(work, rows=600, features=8, seed=0):
    """Hidden states with a learnable signal and the data stage's label files, without a model."""
    rng = np.random.default_rng(seed)
    (work / "data/hidden/pretrained").mkdir(parents=True)
    (work / "data/prepared").mkdir(parents=True)
    names = ["a", "b", "c"]
    (work / "data/prepared/labels.json").write_text(json.dumps(names))
    for split, n in (("train", rows), ("validation", rows // 4), ("test", rows // 4)):
        labels = rng.integers(0, 3, n)
        states = rng.normal(size=(n, features)).astype(np.float32) + labels[:, None]
        np.save(work / f"data/hidden/pretrained/{split}.npy", states)
        pd.DataFrame({"text": ["x"] * n, "label": labels}).to_parquet(work / f"data/prepared/{split}.parquet")


@pytest.mark.parametrize("max_train_rows", [None, 100])
def test_baselines_fit_on_a_sample_and_score_every_row(tmp_path, monkeypatch, max_train_rows):
    work = tmp_path / "work"
    work.mkdir()
    _fake_pipeline_outputs(work)
    write_params(work / "params.yaml", baselines={"max_train_rows": max_train_rows})
    monkeypatch.chdir(work)
    monkeypatch.setattr(baselines, "PREDICT_ROWS", 64)  # several slices per split
    fitted = []
    original_fit = LogisticRegression.fit
    monkeypatch.setattr(LogisticRegression, "fit", lambda self, X, y: fitted.append(len(X)) or original_fit(self, X, y))
    run_main("baselines")
    assert fitted == [600 if max_train_rows is None else 100]
    metrics = json.loads((work / "metrics/baselines.json").read_text())
    assert metrics["logistic_regression"]["validation"]["accuracy"] > 0.6, "learns the signal from the sample too"
    confusion = pd.read_csv(work / "plots/baselines/confusion.csv")
    assert confusion["weight"].sum() == 150, "every validation row is scored"


def test_predict_in_slices_equals_one_predict(monkeypatch):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(250, 4)), rng.integers(0, 3, 250)
    model = LogisticRegression().fit(X, y)
    monkeypatch.setattr(baselines, "PREDICT_ROWS", 32)
    np.testing.assert_array_equal(baselines.predict_in_slices(model, X), model.predict(X))
    assert classification_metrics(y, baselines.predict_in_slices(model, X))["accuracy"] > 0
