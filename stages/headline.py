"""Stage headline: the few numbers runs are compared by (the only metrics file of dvc.yaml), with no torch."""

from __future__ import annotations

from pathlib import Path

from textclf.common.errors import PipelineError
from textclf.common.stage import StageParser, run_stage
from textclf.io.outputs import write_json
from textclf.io.stage_files import read_json

# short, flat names: `dvc exp show` and `dvc metrics diff` print them without a file prefix, in narrow columns
SPLITS = {"validation": "val", "test": "test"}
KEYS = ("accuracy", "f1_macro", "f1_weighted")


def headline(finetuned: dict, baselines: dict, finetuned_path: Path, baselines_path: Path) -> dict:
    """{val_accuracy, val_f1_macro, ..., logreg_val_accuracy}: a missing key left out, a missing accuracy an error."""
    out: dict = {}
    for split, prefix in SPLITS.items():
        scores = finetuned.get(split) if isinstance(finetuned, dict) else None
        if not isinstance(scores, dict) or not isinstance(scores.get("accuracy"), (int, float)):
            raise PipelineError(f"{finetuned_path}: no {split} accuracy: rerun the evaluate stage (dvc repro evaluate)")
        out |= {f"{prefix}_{key}": v for key in KEYS if isinstance(v := scores.get(key), (int, float))}
    try:
        out["logreg_val_accuracy"] = baselines["logistic_regression"]["validation"]["accuracy"]
    except (KeyError, TypeError):
        raise PipelineError(
            f"{baselines_path}: no logistic_regression validation accuracy: rerun the baselines stage"
        ) from None
    return out


def main(argv: list[str] | None = None) -> None:
    parser = StageParser(__doc__)
    parser.add_argument("--finetuned", type=Path, required=True, help="the evaluate stage's metrics")
    parser.add_argument("--baselines", type=Path, required=True, help="the baselines stage's metrics")
    parser.add_argument("--out", type=Path, required=True, help="the headline metrics file")
    args, _ = parser.parse(argv)  # params checked like every stage's, although this one reads none
    write_json(args.out, headline(read_json(args.finetuned), read_json(args.baselines), args.finetuned, args.baselines))


if __name__ == "__main__":
    run_stage(main)
