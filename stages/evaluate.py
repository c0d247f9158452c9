"""Stage evaluate: the fine-tuned model's predictions on validation and test, from its saved hidden states.

The model's classification head reads only the first token's last hidden state, which
hidden_states@finetuned saved for every row (fp32): the logits are that head, its weights read from
the model's safetensors, applied to those states (textclf/evaluation/heads.py), as a forward pass of the whole
model would give them, with no second pass of the encoder and no GPU. A model whose head is not of
that form is run over the rows instead (one log line says why).
Reads params: evaluate.batch_size and device (only for that forward pass)
Writes: <metrics> (accuracy, macro, weighted and per-label F1 per split, bootstrap
95% intervals of accuracy and macro F1), <plots>/confusion.csv (validation predictions, for DVC's
confusion template), <plots>/confusion.png (the notebook's normalized matrix) and
<predictions>/{validation,test}.parquet (per row: label, predicted, loss, logits; read by error_analysis).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from textclf.common.errors import PipelineError
from textclf.common.params import load_params
from textclf.common.stage import run_stage
from textclf.evaluation.error_analysis import write_predictions
from textclf.evaluation.heads import load_head
from textclf.evaluation.metrics import bootstrap_ci95, classification_metrics, collapse_check
from textclf.io.outputs import write_json
from textclf.io.stage_files import open_npy, read_json, read_parquet, read_token_rows
from textclf.models.loading import check_model_folder
from textclf.reporting.plots import save_confusion_png, write_predictions_csv

log = logging.getLogger("stage.evaluate")
EVAL_SPLITS = ("validation", "test")


def forward_pass_logits(args: argparse.Namespace, split: str, batch_size: int, device: str) -> np.ndarray:
    """Logits of a whole-model forward pass over the split's encoded rows (the fallback)."""
    from textclf.models.inference import run_batched
    from textclf.models.loading import load_finetuned, load_tokenizer, resolve_device

    model, tokenizer = load_finetuned(args.model), load_tokenizer(str(args.model))
    rows = read_token_rows(args.encoded / f"{split}.parquet")
    return run_batched(
        model,
        rows,
        tokenizer.pad_token_id,
        batch_size,
        output="logits",
        device=resolve_device(device),
        desc=f"predict {split}",
    )


def head_logits(head, hidden: Path, split: str, n_rows: int) -> np.ndarray:
    """The head applied to the split's saved first-token states, after checking they fit."""
    path = hidden / f"{split}.npy"
    states = open_npy(path)  # rows read from disk a chunk at a time by head.logits
    if states.shape != (n_rows, head.width):
        raise PipelineError(
            f"{path}: states of shape {states.shape}, expected ({n_rows}, {head.width}) for these rows and this "
            "model's head (they come from other data or another model: rerun hidden_states@finetuned, dvc repro)"
        )
    return head.logits(states)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the fine-tuned model (models/finetuned)")
    parser.add_argument("--hidden", type=Path, required=True, help="its first-token states (data/hidden/finetuned)")
    parser.add_argument("--encoded", type=Path, required=True, help="the encode stage's folder (data/encoded)")
    parser.add_argument("--labels", type=Path, required=True, help="label names (data/prepared/labels.json)")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics file (metrics/finetuned.json)")
    parser.add_argument("--plots", type=Path, required=True, help="plots folder (plots/finetuned)")
    parser.add_argument("--predictions", type=Path, required=True, help="per-row outputs (data/predictions)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    all_params = load_params(args.params)

    label_names = read_json(args.labels)
    check_model_folder(args.model, label_names)  # whole (tokenizer, labels, trained head) or refused
    head, how = load_head(args.model, label_names)
    log.info("%s", how if head else f"{how}: running the whole model over the rows")
    metrics, labels, logits = {}, {}, {}
    for split in EVAL_SPLITS:
        labels[split] = read_parquet(args.encoded / f"{split}.parquet", columns=("label",))["label"].to_numpy()
        if head is not None:
            logits[split] = head_logits(head, args.hidden, split, len(labels[split]))
        else:
            logits[split] = forward_pass_logits(args, split, all_params.evaluate.batch_size, all_params.device)
        predicted = logits[split].argmax(-1)
        metrics[split] = classification_metrics(labels[split], predicted, label_names)
        params = all_params.evaluate
        metrics[split].update(
            bootstrap_ci95(labels[split], predicted, params.bootstrap_resamples, params.bootstrap_seed)
        )
        log.info(
            "%s: accuracy %.4f, macro F1 %.4f, weighted F1 %.4f (%d rows)",
            split,
            metrics[split]["accuracy"],
            metrics[split]["f1_macro"],
            metrics[split]["f1_weighted"],
            len(labels[split]),
        )

    predicted = logits["validation"].argmax(-1)
    collapse, warning = collapse_check(labels["validation"], predicted, label_names)
    metrics["validation"].update(collapse)
    if warning:
        log.warning(warning)
    write_predictions(args.predictions, {split: (labels[split], logits[split]) for split in EVAL_SPLITS})
    write_predictions_csv(args.plots / "confusion.csv", labels["validation"], predicted, label_names)
    save_confusion_png(
        args.plots / "confusion.png",
        labels["validation"],
        predicted,
        label_names,
        "Fine-tuned model (validation)",
    )
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
