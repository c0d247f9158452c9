"""Stage error_analysis: per-row validation loss of the fine-tuned model, its worst rows and per-label loss.

Reads params: error_analysis.top_n, evaluate.batch_size, device
Writes: <plots>/top_losses.csv (the top_n highest-loss validation rows: rank, row, text, label,
predicted, loss), <plots>/label_loss.csv (per label: mean_loss, rows, errors; a bar plot in
`dvc plots show/diff`) and <metrics> (overall and per-label mean loss). Texts are never logged.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from textclf.analysis import error_table, label_loss, summary, write_csv
from textclf.batching import run_batched
from textclf.errors import PipelineError, run_stage
from textclf.io import read_json, read_parquet, write_json
from textclf.modeling import load_finetuned, load_tokenizer, resolve_device
from textclf.params import load_params

log = logging.getLogger("stage.error_analysis")
SPLIT = "validation"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the fine-tuned model (models/finetuned)")
    parser.add_argument("--encoded", type=Path, required=True, help="the encode stage's folder (data/encoded)")
    parser.add_argument("--data", type=Path, required=True, help="the data stage's folder, for the texts (data/prepared)")
    parser.add_argument("--labels", type=Path, required=True, help="label names (data/prepared/labels.json)")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics file (metrics/error_analysis.json)")
    parser.add_argument("--plots", type=Path, required=True, help="plots folder (plots/errors)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    all_params = load_params(args.params)

    device = resolve_device(all_params.device)
    label_names = read_json(args.labels)
    encoded = read_parquet(args.encoded / f"{SPLIT}.parquet")
    texts = read_parquet(args.data / f"{SPLIT}.parquet")
    if len(texts) != len(encoded) or (texts["label"].to_numpy() != encoded["label"].to_numpy()).any():
        raise PipelineError(f"{args.data / SPLIT}.parquet: rows differ from {args.encoded / SPLIT}.parquet (rerun encode)")
    model = load_finetuned(args.model, label_names)  # whole, with the labels of labels.json
    tokenizer = load_tokenizer(str(args.model))
    logits = run_batched(
        model, encoded["input_ids"].tolist(), tokenizer.pad_token_id, all_params.evaluate.batch_size,
        output="logits", device=device, desc=f"loss {SPLIT}",
    )

    table = error_table(texts["text"].tolist(), encoded["label"].to_numpy(), logits, label_names)
    per_label = label_loss(table, label_names)
    metrics = summary(table, per_label)
    log.info("%s: mean loss %.4f, %d of %d rows misclassified", SPLIT, metrics["mean_loss"], metrics["errors"], metrics["rows"])
    for row in per_label.itertuples():
        log.info("  %-12s mean loss %.4f (%d rows, %d errors)", row.label, row.mean_loss, row.rows, row.errors)

    write_csv(args.plots / "top_losses.csv", table.head(all_params.error_analysis.top_n))
    write_csv(args.plots / "label_loss.csv", per_label)
    write_json(args.metrics, {SPLIT: metrics})


if __name__ == "__main__":
    run_stage(main)
