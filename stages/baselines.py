"""Stage baselines: dummy classifiers and logistic regression on the pretrained hidden states.

Reads params: baselines.*
Writes: <metrics> (accuracy, macro and weighted F1 on every split for each model), <plots>/confusion.csv
(validation predictions of the logistic regression, for DVC's confusion template) and
<plots>/confusion.png (the notebook's normalized matrix).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from textclf.data import SPLITS
from textclf.errors import run_stage
from textclf.evaluation import baseline_classifiers, classification_metrics, save_confusion_png, write_predictions_csv
from textclf.io import read_json, read_npy, read_parquet, write_json
from textclf.params import load_params

log = logging.getLogger("stage.baselines")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=Path, required=True, help="pretrained hidden states (data/hidden/pretrained)")
    parser.add_argument("--data", type=Path, required=True, help="the data stage's folder (data/prepared)")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics file (metrics/baselines.json)")
    parser.add_argument("--plots", type=Path, required=True, help="plots folder (plots/baselines)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    params = load_params(args.params).baselines

    label_names = read_json(args.data / "labels.json")
    X = {split: read_npy(args.hidden / f"{split}.npy") for split in SPLITS}
    y = {split: read_parquet(args.data / f"{split}.parquet")["label"].to_numpy() for split in SPLITS}

    metrics, predictions = {}, {}
    for name, model in baseline_classifiers(params.max_iter, params.seed).items():
        model.fit(X["train"], y["train"])
        predictions[name] = {split: model.predict(X[split]) for split in SPLITS}
        metrics[name] = {split: classification_metrics(y[split], predictions[name][split]) for split in SPLITS}
        log.info("%s: validation accuracy %.3f", name, metrics[name]["validation"]["accuracy"])

    y_pred = predictions["logistic_regression"]["validation"]
    write_predictions_csv(args.plots / "confusion.csv", y["validation"], y_pred, label_names)
    save_confusion_png(
        args.plots / "confusion.png", y["validation"], y_pred, label_names,
        "Logistic regression on pretrained hidden states (validation)",
    )
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
