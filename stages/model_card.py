"""Stage model_card: the fine-tuned model's card (Hugging Face format) from the pipeline's own outputs;
`textclf export` ships it beside the weights as README.md."""

from __future__ import annotations

from pathlib import Path

from textclf.common.stage import StageParser, run_stage
from textclf.io.outputs import atomic_path
from textclf.io.stage_files import read_json
from textclf.models.loading import weights_sha256
from textclf.reporting.model_card import render


def main(argv: list[str] | None = None) -> None:
    parser = StageParser(__doc__)
    parser.add_argument("--model", type=Path, required=True, help="the fine-tuned model (models/finetuned)")
    parser.add_argument("--labels", type=Path, required=True, help="label names (data/prepared/labels.json)")
    parser.add_argument("--metrics", type=Path, required=True, help="the evaluate stage's (metrics/finetuned.json)")
    parser.add_argument("--baselines", type=Path, required=True, help="the baselines' metrics (metrics/baselines.json)")
    parser.add_argument("--errors", type=Path, required=True, help="error analysis (metrics/error_analysis.json)")
    parser.add_argument("--out", type=Path, required=True, help="the card (models/MODEL_CARD.md)")
    args, params = parser.parse(argv)

    card = render(
        label_names=read_json(args.labels),
        checkpoint=params.model.checkpoint,
        source=params.data.source,
        max_length=params.model.max_length,
        finetune=params.finetune.model_dump(),
        finetuned=read_json(args.metrics),
        baselines=read_json(args.baselines),
        error_analysis=read_json(args.errors),
        sha256=weights_sha256(args.model),
    )
    with atomic_path(args.out, inputs=[args.model, args.labels, args.metrics, args.baselines, args.errors]) as tmp:
        tmp.write_text(card, encoding="utf-8")


if __name__ == "__main__":
    run_stage(main)
