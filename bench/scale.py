"""Time, throughput and peak memory of each pipeline stage at several data sizes.

    python -m bench.scale --rows 16000 100000 1000000 --workdir /tmp/scale --out bench/scale_results.json \\
        --tiny-model --set finetune.epochs=0.0001 finetune.min_steps=50

For each size N (train rows; validation and test get max(N // 8, 60) each):
1. ``bench.make_scaled_data`` writes WORKDIR/data-N (kept and reused when its train.jsonl has N rows);
2. this repository's HEAD is cloned into WORKDIR/repo-N (replacing it), as bench/time_pipeline.sh does,
   and its params.yaml gets ``data.source`` = WORKDIR/data-N, ``data.label_names: null`` and the
   ``--set`` overrides (values are YAML: ``finetune.epochs=0.01``, ``device=cpu``);
3. each asked stage runs, in dvc.yaml order, as ``dvc repro --force --single-item <stage>`` under
   ``/usr/bin/time -f %M``: its wall time and peak RSS (of the largest process of its tree, in
   practice the stage's python), its log in WORKDIR/repo-N/log.<stage>.

Rows a stage processed: data, encode, hidden_states@pretrained: train + validation + test rows (counted in
data/prepared/*.parquet); hidden_states@finetuned: validation + test + hidden_states.finetuned_train_rows
train rows (its train sample); evaluate: validation + test; finetune: optimizer steps x finetune.batch_size
(steps from checkpoints/finetune-run.json, else the log line "trained N steps"). rows/s = rows / wall
seconds of the whole stage, model loading and writing included. A "finetune (training loop)" line
adds the Trainer's own rows/s and seconds (checkpoints/finetune-run.json): the training itself.

Once per run (in the first clone), the **model footprint** is measured: the peak RSS of a python
process that imports torch and transformers and loads the model.checkpoint classifier
(``textclf.models.loading.load_classifier``), i.e. what any stage needs just to hold the model. The issue's
budget is each stage's peak RSS at most 1.5 GB above it (the ``above model MB`` column). Measured on
2 cores: ~450 MB for the tiny model and for the packaged MiniLM alike (importing torch and transformers
alone peaks at ~440 MB), so stages that never load a model (data, encode) come out below it.
The peak is that of the largest process (``dvc`` itself: ~60 MB), not the sum of the tree.

Keeping runs short:
- ``--tiny-model`` builds once, into WORKDIR/tiny-model, a random-weight BERT (2 layers, hidden 128,
  2 heads, intermediate 256, 512 positions) with the packaged encoder's tokenizer, and sets
  ``model.checkpoint`` to it: memory that scales with the data shows the same, at a fraction of the
  time (1M rows through the real 6-layer MiniLM take about an hour per hidden-state pass on 2 cores).
- finetune: ``--set finetune.epochs=0.0001 finetune.min_steps=50`` trains 50 steps at every size up to
  16M rows (the same work everywhere); ``finetune.epochs=0.01 finetune.min_steps=0`` trains 1% of an
  epoch instead (5 steps at 16k rows, 313 at 1M, batch 32). With so few steps the training-curve
  points (every 5% of the steps, ``finetune.curve_eval_rows`` validation rows each) take most of
  the stage's time: add ``finetune.eval_steps=50`` to measure training alone. Every stage's wall
  time includes ~5 s of python, torch and dvc start-up, which dominates rows/s at small sizes.

Writes the JSON (``--out``; rewritten after every stage, so a stopped run keeps what it measured)
and prints a markdown table. A failing stage prints the tail of its log; the run stops with exit
status 1, or with ``--keep-going`` skips the size's remaining stages, goes on with the next size and
exits 1 at the end. Needs the venv's ``dvc`` (the venv of the python running this is put first on PATH).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench.make_scaled_data import SPLITS, eval_rows, make_scaled_data

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STAGES = ["data", "encode", "finetune", "hidden_states@pretrained", "hidden_states@finetuned", "evaluate"]
TINY_BERT = dict(
    num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=256, max_position_embeddings=512
)
LOG_TAIL_LINES = 25


class _Loader(yaml.SafeLoader):
    """YAML 1.2 floats (``2e-5`` is a float, not a string), as textclf/common/params.py reads params.yaml."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?(?:[eE][-+]?\d+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def yaml_value(text: str) -> object:
    return yaml.load(text, Loader=_Loader)


# ---- pure functions (unit-tested in tests/test_bench_scale.py) ----


def parse_overrides(items: list[str]) -> dict[str, object]:
    """``["finetune.epochs=0.01", "device=cpu"]`` -> ``{"finetune.epochs": 0.01, "device": "cpu"}``."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or key.count(".") > 1:
            raise ValueError(f"--set {item!r}: expected section.key=value or key=value")
        overrides[key] = yaml_value(value)
    return overrides


def apply_overrides(params: dict, overrides: dict[str, object]) -> dict:
    """``params`` with each dotted key set; a key that params.yaml lacks is an error (a typo)."""
    for key, value in overrides.items():
        *section, name = key.split(".")
        target = params[section[0]] if section else params
        if not isinstance(target, dict) or name not in target:
            raise ValueError(f"--set {key}: params.yaml has no such key")
        target[name] = value
    return params


def ordered_stages(requested: list[str], available: list[str]) -> list[str]:
    """The requested stages in dvc.yaml order; an unknown name is an error."""
    unknown = [s for s in requested if s not in available]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; dvc.yaml has {available}")
    return [s for s in available if s in requested]


def stage_rows(
    stage: str,
    splits: dict[str, int],
    finetune_steps: int | None,
    batch_size: int,
    finetuned_train_rows: int | None = None,
) -> int | None:
    """Rows the stage processed (None when unknown: finetune without a step count, unlisted stages).
    ``hidden_states@finetuned`` runs over validation, test and ``finetuned_train_rows`` train rows (null: all)."""
    name = stage.partition("@")[0]
    if stage == "hidden_states@finetuned" and finetuned_train_rows is not None:
        return min(splits["train"], finetuned_train_rows) + splits["validation"] + splits["test"]
    if name in ("data", "encode", "hidden_states"):
        return sum(splits.values())
    if name == "evaluate":
        return splits["validation"] + splits["test"]
    if name == "finetune" and finetune_steps is not None:
        return finetune_steps * batch_size
    return None


def stage_record(seconds: float, rows: int | None, peak_kb: int, model_kb: int | None) -> dict:
    """One stage's figures: {seconds, rows, rows_per_s, peak_rss_mb, above_model_mb}."""
    peak_mb = peak_kb / 1024
    return {
        "seconds": round(seconds, 2),
        "rows": rows,
        "rows_per_s": round(rows / seconds, 1) if rows is not None and seconds > 0 else None,
        "peak_rss_mb": round(peak_mb, 1),
        "above_model_mb": round(peak_mb - model_kb / 1024, 1) if model_kb is not None else None,
    }


def read_peak_kb(time_output: str) -> int:
    """Peak RSS (KB) from ``/usr/bin/time -f %M -o FILE``'s file; its last line (a failed command
    adds "Command exited with non-zero status N" before it)."""
    return int(time_output.strip().splitlines()[-1])


def steps_from_log(log: str) -> int | None:
    """Optimizer steps from the finetune stage's "trained N steps" log line."""
    found = re.findall(r"trained (\d+) steps", log)
    return int(found[-1]) if found else None


def markdown_table(sizes: dict[str, dict]) -> str:
    """rows | stage | seconds | rows/s | peak RSS MB | above model MB | rows/s vs the smallest size.
    ``sizes`` maps train rows (str or int) to {"stages": {stage: record}}; the ratio compares a
    stage's rows/s with that of the same stage at the smallest size that measured it."""

    def fmt(value, spec: str) -> str:
        return "" if value is None else format(value, spec)

    ordered = sorted(sizes.items(), key=lambda kv: int(kv[0]))
    base: dict[str, float] = {}
    lines = [
        "| rows | stage | seconds | rows/s | peak RSS MB | above model MB | rows/s vs smallest |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for rows, size in ordered:
        for stage, rec in size["stages"].items():
            if rec.get("failed"):
                seconds = fmt(rec.get("seconds"), ".1f")
                lines.append(f"| {int(rows):,} | {stage} | {seconds} | failed (exit {rec['returncode']}) | | | |")
                continue
            speed = rec["rows_per_s"]
            if speed and stage not in base:
                base[stage] = speed
            ratio = f"{speed / base[stage]:.2f}x" if speed and stage in base else ""
            lines.append(
                f"| {int(rows):,} | {stage} | {rec['seconds']:.1f} | {fmt(speed, ',.0f')} | "
                f"{rec['peak_rss_mb']:,.0f} | {fmt(rec['above_model_mb'], ',.0f')} | {ratio} |"
            )
    return "\n".join(lines)


# ---- running things ----


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


def data_ready(folder: Path, rows: int) -> bool:
    """True when ``folder`` holds a complete generated dataset with ``rows`` train rows."""
    files = [folder / f"{split}.jsonl" for split in SPLITS] + [folder / "labels.json"]
    return (
        all(f.is_file() for f in files)
        and count_lines(folder / "train.jsonl") == rows
        and count_lines(folder / "validation.jsonl") == eval_rows(rows)
    )


def build_tiny_model(folder: Path) -> Path:
    """A random-weight BERT (TINY_BERT) with the packaged encoder's tokenizer, saved once into ``folder``
    (as tests/conftest.py's ``tiny_model`` fixture builds its smaller one)."""
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from textclf.models.loading import PACKAGED_ENCODER, resolve_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(resolve_checkpoint(PACKAGED_ENCODER))
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, **TINY_BERT))
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    tmp.rename(folder)
    return folder


def measured(command: list[str], cwd: Path, log: Path, env: dict) -> tuple[int, float, int]:
    """Run ``command`` under /usr/bin/time -f %M, output into ``log``: (exit status, wall seconds, peak RSS KB)."""
    peak_file = log.with_name(log.name + ".peak-rss")
    start = time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", str(peak_file), *command],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        ).returncode
    return rc, time.perf_counter() - start, read_peak_kb(peak_file.read_text())


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def prepared_rows(repo: Path) -> dict[str, int] | None:
    """Rows per split of the data stage's output, or None before it ran."""
    import pyarrow.parquet as pq

    files = {split: repo / "data" / "prepared" / f"{split}.parquet" for split in SPLITS}
    if not all(f.is_file() for f in files.values()):
        return None
    return {split: pq.read_metadata(f).num_rows for split, f in files.items()}


def finetune_steps(repo: Path, log: Path) -> int | None:
    record = repo / "checkpoints" / "finetune-run.json"
    if record.is_file():
        return int(json.loads(record.read_text())["steps"])
    return steps_from_log(log.read_text(errors="replace"))


def clone(repo: Path, overrides: dict[str, object]) -> dict:
    """Clone ROOT's HEAD into ``repo`` (replacing it) and write its params.yaml; return the params."""
    shutil.rmtree(repo, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    params = apply_overrides(yaml.load((repo / "params.yaml").read_text(), Loader=_Loader), overrides)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def model_footprint_kb(repo: Path, checkpoint: str, labels: Path, env: dict) -> int:
    """Peak RSS of a python that imports the stack and loads the classifier, run in ``repo``."""
    code = (
        "import json, sys; from textclf.models.loading import load_classifier; "
        "load_classifier(sys.argv[1], json.load(open(sys.argv[2])))"
    )
    log = repo / "log.model-footprint"
    rc, _, peak_kb = measured([sys.executable, "-c", code, checkpoint, str(labels)], repo, log, env)
    if rc != 0:
        raise SystemExit(f"measuring the model footprint failed (exit {rc}):\n{log_tail(log)}")
    return peak_kb


def write_results(path: Path, results: dict) -> None:
    results["table"] = markdown_table(results["sizes"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", required=True, help="train rows of each size")
    parser.add_argument("--workdir", type=Path, required=True, help="where data-N, repo-N and tiny-model go")
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="params.yaml overrides, e.g. finetune.epochs=0.01 (values are YAML)",
    )
    parser.add_argument("--stages", nargs="+", default=DEFAULT_STAGES, help=f"default: {' '.join(DEFAULT_STAGES)}")
    parser.add_argument("--tiny-model", action="store_true", help="use a random 2-layer BERT (WORKDIR/tiny-model)")
    parser.add_argument("--source", type=Path, default=ROOT / "data" / "sample", help="texts to scale up")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument("--keep-going", action="store_true", help="after a failed stage, go on with the next size")
    parser.add_argument("--out", type=Path, default=Path("bench/scale_results.json"))
    args = parser.parse_args(argv)
    if min(args.rows) < 1:
        parser.error("--rows must be at least 1")
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    overrides = parse_overrides(args.overrides)
    if args.tiny_model:
        overrides["model.checkpoint"] = str(build_tiny_model(workdir / "tiny-model"))

    results = {
        "command": shlex.join(["python", "-m", "bench.scale", *(sys.argv[1:] if argv is None else argv)]),
        "started_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip(),
        "machine": {"cores": os.cpu_count(), "load_average_start": os.getloadavg()[0]},
        "overrides": overrides,
        "model": None,
        "sizes": {},
    }
    model_kb, failed = None, False
    for rows in sorted(set(args.rows)):
        data = workdir / f"data-{rows}"
        if data_ready(data, rows):
            print(f"[{rows}] reusing {data}")
        else:
            start = time.perf_counter()
            make_scaled_data(rows, data, args.source, args.seed)
            print(f"[{rows}] generated {data} in {time.perf_counter() - start:.1f} s")
        repo = workdir / f"repo-{rows}"
        params = clone(repo, {**overrides, "data.source": str(data), "data.label_names": None})
        available = subprocess.run(
            ["dvc", "stage", "list", "--name-only"], cwd=repo, env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        stages = ordered_stages(args.stages, available)
        if model_kb is None:
            checkpoint = params["model"]["checkpoint"]
            model_kb = model_footprint_kb(repo, checkpoint, data / "labels.json", env)
            results["model"] = {"checkpoint": checkpoint, "footprint_mb": round(model_kb / 1024, 1)}
            print(f"model footprint ({checkpoint}): {model_kb / 1024:.0f} MB peak RSS")
        size = results["sizes"][str(rows)] = {"splits": None, "stages": {}}
        if "params" in available:  # every stage depends on the params check's stamp: not measured, a second
            subprocess.run(
                ["dvc", "repro", "--single-item", "params"], cwd=repo, env=env, capture_output=True, check=True
            )
        for stage in stages:
            log = repo / f"log.{stage}"
            load = os.getloadavg()[0]
            rc, seconds, peak_kb = measured(["dvc", "repro", "--force", "--single-item", stage], repo, log, env)
            size["splits"] = size["splits"] or prepared_rows(repo)
            if rc != 0:
                failed = True
                size["stages"][stage] = {
                    "failed": True,
                    "returncode": rc,
                    "seconds": round(seconds, 2),
                    "peak_rss_mb": round(peak_kb / 1024, 1),
                    "log": str(log),
                    "log_tail": log_tail(log),
                }
                print(
                    f"[{rows}] {stage} FAILED (exit {rc}) after {seconds:.1f} s; tail of {log}:\n{log_tail(log)}",
                    file=sys.stderr,
                )
                write_results(args.out, results)
                break
            steps = finetune_steps(repo, log) if stage == "finetune" else None
            done = (
                stage_rows(
                    stage,
                    size["splits"],
                    steps,
                    params["finetune"]["batch_size"],
                    params["hidden_states"].get("finetuned_train_rows"),
                )
                if size["splits"]
                else None
            )
            record = stage_record(seconds, done, peak_kb, model_kb)
            size["stages"][stage] = {**record, "load_average_before": load, "log": str(log)}
            print(
                f"[{rows}] {stage:<26} {seconds:7.1f} s  {record['rows_per_s'] or 0:9.1f} rows/s  "
                f"peak {record['peak_rss_mb']:6.0f} MB ({record['above_model_mb']:+.0f} MB above the model)"
            )
            run_file = repo / "checkpoints" / "finetune-run.json"
            if stage == "finetune" and run_file.is_file():  # the Trainer's own loop, start-up and loading left out
                run = json.loads(run_file.read_text())
                size["stages"]["finetune (training loop)"] = {
                    **record,
                    "seconds": run["train_runtime_s"],
                    "rows_per_s": run["rows_per_second"],
                }
            write_results(args.out, results)
        if failed and not args.keep_going:
            break
    results["finished_utc"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    write_results(args.out, results)
    print(f"\n{results['table']}\n\nmodel footprint: {results['model']['footprint_mb']:.0f} MB; written: {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
