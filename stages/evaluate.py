"""Stage evaluate: the fine-tuned model's validation and test predictions, from hidden_states@finetuned's logits.

Writes <metrics> (accuracy, F1, bootstrap 95% intervals per split), <plots>/confusion.{csv,png} (validation) and
<predictions>/{validation,test}.parquet (per row: label, predicted, loss, logits)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from textclf.common.errors import PipelineError
from textclf.common.stage import StageParser, run_stage
from textclf.evaluation.error_analysis import write_predictions
from textclf.evaluation.metrics import bootstrap_ci95, classification_metrics, collapse_check
from textclf.io.outputs import write_json
from textclf.io.stage_files import open_npy, read_json, read_parquet
from textclf.models.inference import LOGITS_SUFFIX
from textclf.models.loading import check_model_folder
from textclf.reporting.plots import save_confusion_png, write_predictions_csv

log = logging.getLogger("stage.evaluate")
EVAL_SPLITS = ("validation", "test")
TITLE = "Fine-tuned model (validation)"


def read_logits(hidden: Path, split: str, n_rows: int, n_labels: int) -> np.ndarray:
    """The split's logits hidden_states@finetuned saved, checked to be one value per label for each row."""
    path = hidden / f"{split}{LOGITS_SUFFIX}"
    logits = open_npy(path)
    if logits.shape != (n_rows, n_labels):
        raise PipelineError(
            f"{path}: logits of shape {logits.shape}, expected ({n_rows}, {n_labels}) for these rows and labels "
            "(they come from other data or another model: rerun hidden_states@finetuned, dvc repro)"
        )
    return logits[:]


def main(argv: list[str] | None = None) -> None:
    parser = StageParser(__doc__)
    parser.add_argument("--model", type=Path, required=True, help="the fine-tuned model (models/finetuned)")
    parser.add_argument("--hidden", type=Path, required=True, help="its states and logits (data/hidden/finetuned)")
    parser.add_argument("--encoded", type=Path, required=True, help="the encode stage's folder (data/encoded)")
    parser.add_argument("--labels", type=Path, required=True, help="label names (data/prepared/labels.json)")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics file (metrics/finetuned.json)")
    parser.add_argument("--plots", type=Path, required=True, help="plots folder (plots/finetuned)")
    parser.add_argument("--predictions", type=Path, required=True, help="per-row outputs (data/predictions)")
    args, params = parser.parse(argv, "evaluate")

    label_names = read_json(args.labels)
    check_model_folder(args.model, label_names)  # the model whose logits these are: whole, of these labels
    metrics, labels, logits = {}, {}, {}
    for split in EVAL_SPLITS:
        labels[split] = read_parquet(args.encoded / f"{split}.parquet", columns=("label",))["label"].to_numpy()
        logits[split] = read_logits(args.hidden, split, len(labels[split]), len(label_names))
        predicted = logits[split].argmax(-1)
        metrics[split] = classification_metrics(labels[split], predicted, label_names)
        metrics[split] |= bootstrap_ci95(labels[split], predicted, params.bootstrap_resamples, params.bootstrap_seed)
        scores = [metrics[split][key] for key in ("accuracy", "f1_macro", "f1_weighted")]
        log.info("%s: accuracy %.4f, macro F1 %.4f, weighted F1 %.4f (%d rows)", split, *scores, len(labels[split]))

    predicted = logits["validation"].argmax(-1)
    collapse, warning = collapse_check(labels["validation"], predicted, label_names)
    metrics["validation"].update(collapse)
    if warning:
        log.warning(warning)
    write_predictions(args.predictions, {split: (labels[split], logits[split]) for split in EVAL_SPLITS})
    write_predictions_csv(args.plots / "confusion.csv", labels["validation"], predicted, label_names)
    save_confusion_png(args.plots / "confusion.png", labels["validation"], predicted, label_names, TITLE)
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
