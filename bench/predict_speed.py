#!/usr/bin/env python
"""Rows/s of `textclf predict` against `transformers.pipeline("text-classification")`, side by side.

    python bench/predict_speed.py --model models/finetuned --data ../shared/data/emotion --out bench/predict_speed.json

Both sides label the same texts (validation + test of --data, in file order) with the same model folder,
each as its own fresh process timed from start to exit (interpreter start, imports, model load,
tokenization, inference, writing the results), one after the other on the same machine:

- pipeline, batch 1: `pipeline("text-classification", model=..., device="cpu")(texts, truncation=True)`,
  what a user writes (the pipeline's default: one text per forward pass);
- pipeline, batch 64: the same with `batch_size=64` (texts padded to each batch's longest, unsorted);
- `python -m textclf predict --input ... --output ...` with its defaults (length-sorted batches of 64,
  bf16 where the CPU computes it natively) and with `--precision fp32`.

Accuracy against the gold labels is reported for each, so a faster path's accuracy change is visible
(this project keeps a faster path only if validation accuracy moves by at most 0.3 points). The load
average is recorded before and after each run: on a shared machine, compare ratios, not absolute rows/s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("validation", "test")

PIPELINE_CODE = """
import json, sys
from transformers import pipeline
model, source, target, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
texts = [json.loads(line)["text"] for line in open(source, encoding="utf-8")]
classify = pipeline("text-classification", model=model, device="cpu")
results = classify(texts, batch_size=batch, truncation=True) if batch > 1 else classify(texts, truncation=True)
with open(target, "w", encoding="utf-8") as out:
    for r in results:
        out.write(json.dumps({"label": r["label"], "score": r["score"]}) + "\\n")
"""


def read_rows(folder: Path) -> list[dict]:
    rows = []
    for split in SPLITS:
        for line in (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append({**json.loads(line), "split": split})
    return rows


def load() -> float:
    return round(os.getloadavg()[0], 2)


def timed(cmd: list[str]) -> dict:
    before = load()
    start = time.perf_counter()
    result = subprocess.run(
        cmd,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{result.stderr[-2000:]}")
    return {"seconds": round(seconds, 2), "load_before": before, "load_after": load()}


def accuracy(predicted: list[str], rows: list[dict], label_names: list[str]) -> dict:
    result = {}
    for split in SPLITS:
        pairs = [(p, r) for p, r in zip(predicted, rows, strict=True) if r["split"] == split]
        gold = [label_names[r["label"]] if isinstance(r["label"], int) else r["label"] for _, r in pairs]
        result[split] = round(sum(p == g for (p, _), g in zip(pairs, gold, strict=True)) / len(pairs), 4)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/finetuned"), help="a fine-tuned model folder")
    parser.add_argument("--data", type=Path, required=True, help="a folder with validation.jsonl and test.jsonl")
    parser.add_argument("--out", type=Path, default=Path("bench/predict_speed.json"), help="the JSON report")
    parser.add_argument("--rows", type=int, help="keep the first N rows (of validation + test)")
    parser.add_argument("--skip", nargs="*", default=[], help="variants to leave out (by name)")
    args = parser.parse_args(argv)

    model = args.model.resolve()
    label_names = [
        json.loads((model / "config.json").read_text())["id2label"][str(i)]
        for i in range(len(json.loads((model / "config.json").read_text())["id2label"]))
    ]
    rows = read_rows(args.data)[: args.rows]
    variants = {
        "pipeline, batch 1": ("pipeline", 1),
        "pipeline, batch 64": ("pipeline", 64),
        "textclf predict": ("predict", []),
        "textclf predict --precision fp32": ("predict", ["--precision", "fp32"]),
    }
    report = {
        "rows": len(rows),
        "model": str(args.model),
        "cpu_count": os.cpu_count(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "load_start": load(),
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "texts.jsonl"
        source.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in rows), encoding="utf-8")
        for name, (kind, option) in variants.items():
            if name in args.skip:
                continue
            target = Path(tmp) / "out.jsonl"
            if kind == "pipeline":
                cmd = [sys.executable, "-c", PIPELINE_CODE, str(model), str(source), str(target), str(option)]
            else:
                cmd = [
                    sys.executable,
                    "-m",
                    "textclf",
                    "predict",
                    "--model",
                    str(model),
                    "--input",
                    str(source),
                    "--output",
                    str(target),
                    "--no-progress",
                    *option,
                ]
            run = timed(cmd)
            predicted = [json.loads(line)["label"] for line in target.read_text(encoding="utf-8").splitlines()]
            assert len(predicted) == len(rows), name
            run["rows_per_s"] = round(len(rows) / run["seconds"], 1)
            run["accuracy"] = accuracy(predicted, rows, label_names)
            report["runs"][name] = run
            print(
                f"{name:34s} {run['seconds']:7.1f} s {run['rows_per_s']:8.1f} rows/s  accuracy {run['accuracy']}  "
                f"load {run['load_before']} -> {run['load_after']}",
                flush=True,
            )
    base = report["runs"].get("pipeline, batch 1")
    if base:
        for run in report["runs"].values():
            run["speedup_vs_pipeline"] = round(run["rows_per_s"] / base["rows_per_s"], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("\n| run | seconds | rows/s | vs pipeline | validation acc. | test acc. | load before -> after |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, run in report["runs"].items():
        print(
            f"| {name} | {run['seconds']} | {run['rows_per_s']} | {run.get('speedup_vs_pipeline', '')}x | "
            f"{run['accuracy']['validation']:.4f} | {run['accuracy']['test']:.4f} | "
            f"{run['load_before']} -> {run['load_after']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
