"""Stage evaluate: the fine-tuned model's predictions on validation and test.

Reads params: evaluate.*, device
Writes: <metrics> (accuracy, macro, weighted and per-label F1 per split, bootstrap 95% intervals
of accuracy and macro F1), <plots>/confusion.csv (validation predictions, for DVC's confusion
template) and <plots>/confusion.png (the notebook's normalized matrix).
Under `textclf.launch --processes N` the N processes split the rows; the first writes the outputs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from textclf import distributed
from textclf.batching import run_batched
from textclf.errors import run_stage
from textclf.evaluation import (
    bootstrap_ci95, classification_metrics, collapse_check, save_confusion_png, write_predictions_csv,
)
from textclf.io import read_json, read_token_rows, write_json
from textclf.modeling import load_finetuned, load_tokenizer, resolve_device
from textclf.params import load_params

log = logging.getLogger("stage.evaluate")
EVAL_SPLITS = ("validation", "test")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the fine-tuned model (models/finetuned)")
    parser.add_argument("--encoded", type=Path, required=True, help="the encode stage's folder (data/encoded)")
    parser.add_argument("--labels", type=Path, required=True, help="label names (data/prepared/labels.json)")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics file (metrics/finetuned.json)")
    parser.add_argument("--plots", type=Path, required=True, help="plots folder (plots/finetuned)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    all_params = load_params(args.params)
    params = all_params.evaluate

    device = distributed.local_device(resolve_device(all_params.device))
    label_names = read_json(args.labels)
    model = load_finetuned(args.model, label_names)
    tokenizer = load_tokenizer(str(args.model))

    metrics, labels, predictions = {}, {}, {}
    with distributed.process_group():
        for split in EVAL_SPLITS:
            rows = read_token_rows(args.encoded / f"{split}.parquet")
            logits = distributed.combine(run_batched(
                model, rows, tokenizer.pad_token_id, params.batch_size,
                output="logits", device=device, desc=f"predict {split}",
            ))
            labels[split], predictions[split] = rows.labels, logits.argmax(-1)
            metrics[split] = classification_metrics(labels[split], predictions[split], label_names)
            metrics[split].update(bootstrap_ci95(
                labels[split], predictions[split], params.bootstrap_resamples, params.bootstrap_seed
            ))
            log.info(
                "%s: accuracy %.4f, macro F1 %.4f, weighted F1 %.4f", split, metrics[split]["accuracy"],
                metrics[split]["f1_macro"], metrics[split]["f1_weighted"],
            )
    if not distributed.is_main():  # the others computed their rows, the first one writes
        return

    collapse, warning = collapse_check(labels["validation"], predictions["validation"], label_names)
    metrics["validation"].update(collapse)
    if warning:
        log.warning(warning)
    write_predictions_csv(args.plots / "confusion.csv", labels["validation"], predictions["validation"], label_names)
    save_confusion_png(
        args.plots / "confusion.png", labels["validation"], predictions["validation"], label_names,
        "Fine-tuned model (validation)",
    )
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
