"""Stage error_analysis: per-row validation loss of the fine-tuned model, its worst rows and per-label loss.

Reads evaluate's per-row outputs (no model) and only the top_n rows' texts: those go into <top-losses> (a cached
output, not a plot, so texts stay out of the plots page), never into a log.
"""

from __future__ import annotations

import logging
from pathlib import Path

from textclf.common.errors import PipelineError
from textclf.common.stage import StageParser, run_stage
from textclf.evaluation import error_analysis as analysis
from textclf.io.outputs import write_json
from textclf.io.stage_files import open_parquet, read_json, read_parquet

log = logging.getLogger("stage.error_analysis")
SPLIT = "validation"


def main(argv: list[str] | None = None) -> None:
    parser = StageParser(__doc__)
    parser.add_argument("--predictions", type=Path, required=True, help="evaluate's per-row outputs (data/predictions)")
    parser.add_argument("--data", type=Path, required=True, help="the data stage's folder: texts (data/prepared)")
    parser.add_argument("--labels", type=Path, required=True, help="label names (data/prepared/labels.json)")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics file (metrics/error_analysis.json)")
    parser.add_argument("--plots", type=Path, required=True, help="plots folder (plots/errors)")
    parser.add_argument("--top-losses", type=Path, required=True, help="top rows (plots/errors/top_losses.csv)")
    args, params = parser.parse(argv, "error_analysis")

    label_names = read_json(args.labels)
    predictions = args.predictions / f"{SPLIT}.parquet"
    labels, logits = analysis.read_predictions(predictions)
    data = args.data / f"{SPLIT}.parquet"
    open_parquet(data, ("text", "label"))  # both columns there, else one line; texts: the top rows' only, below
    gold = read_parquet(data, columns=("label",))["label"].to_numpy()
    if len(gold) != len(labels) or (gold != labels).any():
        raise PipelineError(f"{predictions}: rows differ from {args.data / SPLIT}.parquet (rerun evaluate: dvc repro)")
    del gold

    table = analysis.loss_table(labels, logits, label_names)
    del logits
    per_label = analysis.label_loss(table, label_names)
    metrics = analysis.summary(table, per_label)
    counts = (metrics["mean_loss"], metrics["errors"], metrics["rows"])
    log.info("%s: mean loss %.4f, %d of %d rows misclassified", SPLIT, *counts)
    for row in per_label.itertuples():
        log.info("  %-12s mean loss %.4f (%d rows, %d errors)", row.label, row.mean_loss, row.rows, row.errors)

    top = table.head(params.top_n)
    analysis.write_csv(args.top_losses, analysis.with_texts(top, analysis.texts_of_rows(data, top["row"])))
    analysis.write_csv(args.plots / "label_loss.csv", per_label)
    write_json(args.metrics, {SPLIT: metrics})


if __name__ == "__main__":
    run_stage(main)
