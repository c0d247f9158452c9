"""Generate a dataset of any size from the demo sample, for measuring the pipeline at scale.

    python -m bench.make_scaled_data --rows 1000000 --out /tmp/scale/data-1000000 [--source data/sample] [--seed 0]

Writes OUT/train.jsonl with ROWS rows, OUT/validation.jsonl and OUT/test.jsonl with
max(ROWS // 8, 60) rows each (emotion's 16000 / 2000 / 2000 proportions), and OUT/labels.json
copied from the source. Each row is ``{"text": ..., "label": <int id>}``: a text of the source's
split of the same name with its words lightly perturbed (up to two of: swap two words, drop a word,
repeat a word; seeded), keeping its label. Source texts are used in shuffled rounds (every text once
per round), so the label proportions are the source's (the demo sample: 6 labels, equal shares).

Rows are generated and written in chunks, so memory stays small at any size (1M rows: ~10 s).
Each file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SPLITS = ("train", "validation", "test")
MIN_EVAL_ROWS = 60  # the demo sample's validation/test size: 10 rows per label
CHUNK_ROWS = 50_000
NO_OP, SWAP, DROP, REPEAT = range(4)


def eval_rows(rows: int) -> int:
    """Validation (and test) rows for ``rows`` train rows."""
    return max(rows // 8, MIN_EVAL_ROWS)


def read_source(folder: Path) -> tuple[list[str], dict[str, list[tuple[str, int]]]]:
    """Label names and, per split, the (text, label id) rows of a folder of jsonl files with labels.json.
    Labels may be names (as in data/sample) or integer ids."""
    names = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    if not isinstance(names, list):
        raise SystemExit(f"{folder / 'labels.json'}: expected a list of label names")
    ids = {name: i for i, name in enumerate(names)}
    pools = {}
    for split in SPLITS:
        rows = []
        with open(folder / f"{split}.jsonl", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    label = row["label"] if isinstance(row["label"], int) else ids[row["label"]]
                    rows.append((row["text"], label))
        pools[split] = rows
    return names, pools


def perturb(text: str, ops: np.ndarray, where: np.ndarray) -> str:
    """``text`` with the word operations ``ops`` (NO_OP, SWAP, DROP, REPEAT) applied in turn;
    ``where[k]`` holds two numbers in [0, 1) that pick the words of operation k. A text keeps at
    least 3 words (shorter texts are never shortened)."""
    words = text.split()
    for op, (a, b) in zip(ops, where, strict=True):
        i, j = int(a * len(words)), int(b * len(words))
        if op == SWAP:
            words[i], words[j] = words[j], words[i]
        elif op == DROP and len(words) > 3:
            del words[i]
        elif op == REPEAT:
            words.insert(i, words[i])
    return " ".join(words)


def template_indices(rng: np.random.Generator, pool_size: int, rows: int, chunk: int) -> Iterator[np.ndarray]:
    """Indices into the source pool, ``chunk`` at a time, ``rows`` in all: shuffled rounds of the pool."""
    buffer = np.empty(0, dtype=np.int64)
    for start in range(0, rows, chunk):
        need = min(chunk, rows - start)
        while len(buffer) < need:
            buffer = np.concatenate([buffer, rng.permutation(pool_size)])
        yield buffer[:need]
        buffer = buffer[need:]


def write_split(
    path: Path, pool: list[tuple[str, int]], rows: int, rng: np.random.Generator, chunk: int = CHUNK_ROWS
) -> None:
    """Write ``rows`` perturbed rows of ``pool`` to ``path`` as JSON lines, a chunk at a time."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for index in template_indices(rng, len(pool), rows, chunk):
            n = len(index)
            ops = rng.integers(0, 4, size=(n, 2))
            where = rng.random(size=(n, 2, 2))
            lines = []
            for k, i in enumerate(index):
                text, label = pool[i]
                lines.append(json.dumps({"text": perturb(text, ops[k], where[k]), "label": label}) + "\n")
            f.write("".join(lines))
    tmp.replace(path)


def make_scaled_data(rows: int, out: Path, source: Path, seed: int = 0) -> dict[str, int]:
    """Write the scaled dataset into ``out``; return the rows written per split."""
    names, pools = read_source(source)
    out.mkdir(parents=True, exist_ok=True)
    counts = {"train": rows, "validation": eval_rows(rows), "test": eval_rows(rows)}
    for split, generator in zip(
        SPLITS, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)), strict=True
    ):
        write_split(out / f"{split}.jsonl", pools[split], counts[split], generator)
    (out / "labels.json").write_text(json.dumps(names) + "\n", encoding="utf-8")
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True, help="train rows (validation and test: max(rows // 8, 60))")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (created; files replaced)")
    parser.add_argument(
        "--source",
        type=Path,
        default=Path("data/sample"),
        help="folder with {train,validation,test}.jsonl and labels.json (default: data/sample)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    start = time.perf_counter()
    counts = make_scaled_data(args.rows, args.out, args.source, args.seed)
    seconds = time.perf_counter() - start
    print(f"wrote {', '.join(f'{n} {split}' for split, n in counts.items())} rows to {args.out} in {seconds:.1f} s")


if __name__ == "__main__":
    main()
