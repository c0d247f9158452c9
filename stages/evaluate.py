"""Stage evaluate: the fine-tuned model's predictions on validation and test.

Reads params: evaluate.*, device
Writes: metrics/finetuned.json (accuracy, weighted F1 and per-label F1 per split),
plots/finetuned/confusion.csv (validation predictions, for DVC's confusion template)
and plots/finetuned/confusion.png (the notebook's normalized matrix).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from transformers import AutoModelForSequenceClassification

from textclf.batching import run_batched
from textclf.errors import PipelineError, run_stage
from textclf.evaluation import classification_metrics, save_confusion_png, write_predictions_csv
from textclf.io import read_json, read_parquet, write_json
from textclf.modeling import load_tokenizer, resolve_device
from textclf.params import load_params

log = logging.getLogger("stage.evaluate")
EVAL_SPLITS = ("validation", "test")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/finetuned"))
    parser.add_argument("--encoded", type=Path, default=Path("data/encoded"))
    parser.add_argument("--labels", type=Path, default=Path("data/prepared/labels.json"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/finetuned.json"))
    parser.add_argument("--plots", type=Path, default=Path("plots/finetuned"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    all_params = load_params(args.params)
    params = all_params.evaluate

    device = resolve_device(all_params.device)
    label_names = read_json(args.labels)
    if not (args.model / "config.json").is_file():
        raise PipelineError(f"{args.model}: no fine-tuned model here (run the finetune stage first: dvc repro)")
    tokenizer = load_tokenizer(str(args.model))
    model = AutoModelForSequenceClassification.from_pretrained(args.model, use_safetensors=True)

    metrics, predictions = {}, {}
    for split in EVAL_SPLITS:
        frame = read_parquet(args.encoded / f"{split}.parquet")
        logits = run_batched(
            model, frame["input_ids"].tolist(), tokenizer.pad_token_id, params.batch_size,
            output="logits", device=device, desc=f"predict {split}",
        )
        y_true, predictions[split] = frame["label"].to_numpy(), logits.argmax(-1)
        metrics[split] = classification_metrics(y_true, predictions[split], label_names)
        log.info("%s: accuracy %.4f, F1 %.4f", split, metrics[split]["accuracy"], metrics[split]["f1"])

    y_valid = read_parquet(args.encoded / "validation.parquet")["label"].to_numpy()
    write_predictions_csv(args.plots / "confusion.csv", y_valid, predictions["validation"], label_names)
    save_confusion_png(
        args.plots / "confusion.png", y_valid, predictions["validation"], label_names,
        "Fine-tuned model (validation)",
    )
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
