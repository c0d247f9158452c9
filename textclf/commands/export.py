"""``textclf export``: the model folder plus its card, ready to ship (copy, upload, ``push_to_hub``).

    textclf export --out dist/emotion-classifier          # models/finetuned + models/MODEL_CARD.md

The card becomes the folder's ``README.md``; a card written for other weights is refused (rerun ``dvc repro``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from textclf.common.errors import PipelineError, run_cli
from textclf.common.escape import terminal
from textclf.io.outputs import MARKER, atomic_path, check_output
from textclf.models.loading import check_model_folder, weights_sha256
from textclf.reporting.model_card import TRAINING_RUN_PLACEHOLDER, card_sha256, training_run_line

RUN_RECORD = Path("checkpoints/finetune-run.json")


def export(model: Path, card: Path, out: Path, force: bool = False, run_record: Path = RUN_RECORD) -> Path:
    """Copy the checked model folder and its card (README.md) to ``out``, world-readable (``force``: replace it)."""
    inputs = [model, card, run_record]
    check_output(out, inputs, is_dir=True)  # before any work: a refusal leaves everything as it was
    if out.exists() and not force:
        raise PipelineError(f"{out}: already exists (use --force to replace it)")
    if not card.is_file():
        raise PipelineError(f"{card}: no model card (run the model_card stage: dvc repro model_card)")
    check_model_folder(model)
    text = card.read_text(encoding="utf-8")
    sha256 = weights_sha256(model)
    if card_sha256(text) != sha256:
        raise PipelineError(f"{card}: written for other weights than {model}'s (rerun the pipeline: dvc repro)")
    try:  # the card's training time line, from the finetune run record of these weights
        record = json.loads(run_record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {}
    if record.get("weights_sha256") == sha256:  # else another run's (say, the model came from the DVC remote)
        text = text.replace(TRAINING_RUN_PLACEHOLDER, training_run_line(record))
    with atomic_path(out, is_dir=True, inputs=inputs) as tmp:
        shutil.copytree(model, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(MARKER))
        (tmp / "README.md").write_text(text, encoding="utf-8")
        for path in [tmp, *tmp.rglob("*")]:  # save_pretrained's model.safetensors is 0600: ship 0644 / 0755
            path.chmod(0o755 if path.is_dir() else 0o644)
    return out


def cli(argv: list[str] | None = None) -> int:
    description, epilog = __doc__.strip("` ").split("\n\n", 1)
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="textclf export", description=description, formatter_class=formatter, epilog=epilog
    )
    parser.add_argument("--model", type=Path, default=Path("models/finetuned"), help="default: models/finetuned")
    parser.add_argument("--card", type=Path, default=Path("models/MODEL_CARD.md"), help="default: models/MODEL_CARD.md")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write (model files + README.md)")
    record_help = "the finetune stage's record of its run (time, hardware); default: checkpoints/finetune-run.json"
    parser.add_argument("--run-record", type=Path, default=RUN_RECORD, help=record_help)
    parser.add_argument("--force", action="store_true", help="replace --out if an earlier export wrote it")
    args = parser.parse_args(argv)
    body = lambda: print(terminal(export(args.model, args.card, args.out, args.force, args.run_record)))  # noqa: E731
    return run_cli(body, str(args.out))
