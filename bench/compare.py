#!/usr/bin/env python
"""Benchmark the reference notebook's methods against the pipeline's own code, side by side.

One process, the same data, model and machine; each pair is measured back to back:

  A. hidden-state extraction (train+validation+test): the notebook's ``datasets.map`` over rows
     padded to each split's longest row vs ``textclf.models.inference.run_batched`` (length-sorted,
     per-batch padding, bf16 where native); quality: the pipeline's logistic regression fitted
     on each feature set, and how far apart the two feature sets are;
  B. logistic-regression fit: the notebook's ``LogisticRegression(max_iter=3000)`` on its features
     vs ``stages.baselines.baseline_classifiers(...)["logistic_regression"]`` on the pipeline's;
  C. fine-tuning: the notebook's ``Trainer`` on its padded-to-max dataset vs the finetune stage's
     ``PipelineTrainer`` + ``EpochSeededSampler`` + ``DataCollatorWithPadding``: training
     throughput over ``--train-steps`` optimizer steps (after 3 untimed warm-up steps), and
     (unless ``--skip-quality``) validation accuracy after ``--epochs`` epochs.

Layout: ``bench.config`` (options, shared inputs), ``bench.steps`` (one function per step),
``bench.notebook_methods`` / ``bench.pipeline_methods`` (the two sides), ``bench.measure``
(clocks, step meter), ``bench.report`` (the table). Run from the project root:
    python -m bench.compare --data ../shared/data/emotion --out bench/results.json
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/compare.py` puts bench/, not the project root, on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import pipeline_methods as pipeline  # noqa: E402
from bench.config import Bench, Options, prepare  # noqa: E402
from bench.measure import SEED, WARMUP_STEPS, load_average, machine_info, now  # noqa: E402
from bench.report import format_table  # noqa: E402
from bench.steps import (  # noqa: E402
    compare_finetune_quality,
    compare_finetune_throughput,
    compare_hidden_states,
    compare_logistic_regression,
    extract_features,
)
from textclf.common.stage import run_stage

log = logging.getLogger("bench")
COMMAND = "python -m bench.compare" if __package__ else "python bench/compare.py"


def parse_args(argv: list[str] | None = None) -> Options:
    """Options from the command line (``sys.argv`` when ``argv`` is None); exits 2 on bad values."""
    d = Options(data="")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="data source as in data.source: a local folder or a hub id")
    parser.add_argument("--out", type=Path, default=d.out)
    parser.add_argument("--checkpoint", default=d.checkpoint, help="packaged encoder, local folder or hub id")
    parser.add_argument("--params", type=Path, default=d.params)
    parser.add_argument("--rows", type=int, default=d.rows, help="keep only the first N rows of every split")
    parser.add_argument(
        "--train-steps", type=int, default=d.train_steps, help="timed optimizer steps (after 3 warm-up steps)"
    )
    parser.add_argument("--epochs", type=float, default=d.epochs, help="epochs of the fine-tuning quality runs")
    parser.add_argument("--skip-quality", action="store_true", help="skip the fine-tuning quality runs")
    args = parser.parse_args(argv)
    if args.rows is not None and args.rows < 1:
        parser.error("--rows must be at least 1")
    if args.train_steps < 1 or args.epochs <= 0:
        parser.error("--train-steps must be at least 1 and --epochs above 0")
    return Options(**vars(args))


def header(bench: Bench, argv: list[str] | None, started: str) -> dict:
    """The JSON's run description: command, machine, data, checkpoint and settings."""
    o = bench.options
    return {
        "command": shlex.join([*COMMAND.split(), *(sys.argv[1:] if argv is None else argv)]),
        "started": started,
        "machine": machine_info(bench.device),
        "data": str(o.data),
        "rows": bench.rows,
        "label_names": bench.label_names,
        "checkpoint": o.checkpoint,
        "checkpoint_path": bench.source,
        "settings": {
            "seed": SEED,
            "warmup_steps_untimed": WARMUP_STEPS,
            "train_steps": o.train_steps,
            "epochs": o.epochs,
            "skip_quality": o.skip_quality,
            "max_length": bench.max_length,
            "params": bench.params.model_dump(
                include={"device", "model", "hidden_states", "baselines", "finetune", "evaluate"}
            ),
        },
    }


def main(argv: list[str] | None = None) -> dict:
    """Run every step, print the table, write the JSON report to ``--out`` and return it."""
    options = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    started, wall_start = now(), time.perf_counter()
    bench = prepare(options)
    result = header(bench, argv, started)

    a_started = now()
    nb, ours = extract_features(bench)
    lr_step = compare_logistic_regression(bench, nb, ours)
    steps = {
        "hidden_states": compare_hidden_states(bench, nb, ours, lr_step["pipeline"], a_started),
        "logistic_regression": lr_step,
    }
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        train = pipeline.train_split(ours.encoded["train"], bench.y["train"], tmp)
        steps["finetune_throughput"] = compare_finetune_throughput(bench, nb, train, tmp)
        steps["finetune_quality"] = (
            None if options.skip_quality else compare_finetune_quality(bench, nb, ours, train, tmp)
        )

    table = format_table(steps)
    result.update(steps=steps, finished=now(), wall_s=time.perf_counter() - wall_start, table=table.splitlines())
    result["machine"]["load_average_at_end"] = load_average()
    print(table, flush=True)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s", options.out)
    return result


if __name__ == "__main__":
    run_stage(main)
