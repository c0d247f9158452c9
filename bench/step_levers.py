#!/usr/bin/env python
"""What makes a fine-tuning step cheaper: the finetune stage's trainer with one Trainer setting changed at a time.

Each variant trains ``3 + --steps`` optimizer steps of the same seeded run on the same rows (the warm-up steps
untimed; torch.compile's compilation happens there and in the first timed steps, so it is charged as a run would
be), back to back in one process; the default runs first and last, so that drift of the machine shows. Variants:
``default`` (params.yaml), ``fused_adamw`` (``optim="adamw_torch_fused"``), ``compile`` (``torch_compile=True``),
``loader_worker`` (``dataloader_num_workers=1``: collation in a second process), ``frozen_word_embeddings`` (the
token embedding table left out of training: no gradient nor AdamW update for its 11.7M of the encoder's 22.7M
parameters; the trainer as built, then that one tensor frozen). Run from the project root:

    python -m bench.step_levers --data ../shared/data/emotion --steps 60 --out /tmp/levers.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import pipeline_methods as pipeline  # noqa: E402
from bench.config import Options, prepare  # noqa: E402
from bench.measure import WARMUP_STEPS, machine_info, now  # noqa: E402
from bench.steps import pipeline_trainer  # noqa: E402
from textclf.models.loading import encode_texts  # noqa: E402

VARIANTS = {
    "default": {},
    "fused_adamw": {"optim": "adamw_torch_fused"},
    "compile": {"torch_compile": True},
    "loader_worker": {"dataloader_num_workers": 1},
    "frozen_word_embeddings": {"freeze": "word_embeddings"},
}
log = logging.getLogger("bench")


def main(argv: list[str] | None = None) -> dict:
    """Time every variant (and the default again at the end); print one line each, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, default=60, help="timed optimizer steps per variant")
    parser.add_argument("--out", type=Path, default=Path("/tmp/step_levers.json"))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="a comma-separated subset")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    bench = prepare(Options(data=args.data, skip_quality=True))
    ids = encode_texts(bench.tokenizer, bench.frames["train"]["text"].tolist(), bench.max_length)
    names = [*args.variants.split(","), "default"]
    result = {"started": now(), "machine": machine_info(bench.device), "steps": args.steps, "runs": []}
    with tempfile.TemporaryDirectory(prefix="levers-") as tmp:
        train = pipeline.train_split(ids, bench.y["train"], tmp)
        for i, name in enumerate(names):
            overrides = {k: v for k, v in VARIANTS[name].items() if k != "freeze"}
            steps = WARMUP_STEPS + args.steps
            trainer, meter = pipeline_trainer(bench, train, f"{tmp}/{i}", max_steps=steps, **overrides)
            if VARIANTS[name].get("freeze") == "word_embeddings":  # before train(): the optimizer skips it
                trainer.model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
            trainer.train()
            run = {"variant": name, **VARIANTS[name], **meter.throughput()}
            result["runs"].append(run)
            print(f"{name:<14} {run['rows_per_s']:8.1f} rows/s  {run['timed_s']:6.1f} s", flush=True)
            del trainer, meter
    result["finished"] = now()
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
