"""Stage baselines: dummy classifiers and logistic regression on the pretrained hidden states.

Memory is bounded: fitted on a seeded stratified sample of ``baselines.max_train_rows``, predicted in slices.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from textclf.common.stage import StageParser, run_stage
from textclf.common.user_paths import SPLITS
from textclf.evaluation.metrics import classification_metrics
from textclf.evaluation.sampling import stratified_sample
from textclf.io.outputs import write_json
from textclf.io.stage_files import read_json, read_parquet, read_states
from textclf.reporting.plots import save_confusion_png, write_predictions_csv

log = logging.getLogger("stage.baselines")

PREDICT_ROWS = 100_000  # rows predicted at a time: 150 MB of float32 states at 384 features


def baseline_classifiers(max_iter: int, seed: int) -> dict:
    """The notebook's three baselines, seeded; logistic regression on standardized features (lbfgs converges faster)."""
    return {
        "dummy_uniform": DummyClassifier(strategy="uniform", random_state=seed),
        "dummy_most_frequent": DummyClassifier(strategy="most_frequent"),
        "logistic_regression": make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed)
        ),
    }


def predict_in_slices(model, X: np.ndarray) -> np.ndarray:
    parts = [model.predict(np.asarray(X[start : start + PREDICT_ROWS])) for start in range(0, len(X), PREDICT_ROWS)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=int)


def main(argv: list[str] | None = None) -> None:
    parser = StageParser(__doc__)
    parser.add_argument("--hidden", type=Path, required=True, help="pretrained hidden states (data/hidden/pretrained)")
    parser.add_argument("--data", type=Path, required=True, help="the data stage's folder (data/prepared)")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics file (metrics/baselines.json)")
    parser.add_argument("--plots", type=Path, required=True, help="plots folder (plots/baselines)")
    args, params = parser.parse(argv, "baselines")

    label_names = read_json(args.data / "labels.json")
    y = {
        split: read_parquet(args.data / f"{split}.parquet", columns=("label",))["label"].to_numpy() for split in SPLITS
    }
    X = {split: read_states(args.hidden, split, len(y[split]))[0] for split in SPLITS}  # every row; read when indexed
    fit_rows = np.arange(len(y["train"]))
    if params.max_train_rows is not None and params.max_train_rows < len(fit_rows):
        fit_rows = stratified_sample(y["train"], params.max_train_rows, params.seed)
        sampled = "fitting on a stratified sample of %d of the %d train rows (baselines.max_train_rows)"
        log.info(sampled, len(fit_rows), len(y["train"]))
    X_fit, y_fit = np.asarray(X["train"][fit_rows]), y["train"][fit_rows]

    metrics, predictions = {}, {}
    for name, model in baseline_classifiers(params.max_iter, params.seed).items():
        model.fit(X_fit, y_fit)
        predictions[name] = {split: predict_in_slices(model, X[split]) for split in SPLITS}
        metrics[name] = {split: classification_metrics(y[split], predictions[name][split]) for split in SPLITS}
        log.info("%s: validation accuracy %.3f", name, metrics[name]["validation"]["accuracy"])

    y_pred, title = predictions["logistic_regression"]["validation"], "Logistic regression on pretrained hidden states"
    write_predictions_csv(args.plots / "confusion.csv", y["validation"], y_pred, label_names)
    save_confusion_png(args.plots / "confusion.png", y["validation"], y_pred, label_names, f"{title} (validation)")
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
