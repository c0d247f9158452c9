"""Stage encode: tokenize every split once with the checkpoint's tokenizer (no padding).

Writes input_ids (int32 lists), label and length per row, ``ROWS_PER_SLICE`` rows at a time, and the tokenizer.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from textclf.common.errors import PipelineError
from textclf.common.stage import StageParser, run_stage
from textclf.common.user_paths import SPLITS
from textclf.io.outputs import atomic_path
from textclf.io.stage_files import iter_parquet, parquet_rows
from textclf.models.loading import encode_texts, load_tokenizer, max_positions, resolve_checkpoint, save_tokenizer

log = logging.getLogger("stage.encode")
ROWS_PER_SLICE = 10_000
SCHEMA = pa.schema([("input_ids", pa.list_(pa.int32())), ("label", pa.int64()), ("length", pa.int32())])


def encode_file(tokenizer, source: Path, target: Path, max_length: int, desc: str) -> tuple[int, int, int]:
    """Tokenize ``source``'s texts into ``target``, a slice at a time; (rows, tokens, truncated rows)."""
    rows = tokens = truncated = 0
    bar = tqdm(total=parquet_rows(source), desc=desc, unit="row", mininterval=2.0)
    with pq.ParquetWriter(target, SCHEMA) as writer, bar:
        for _, batch in iter_parquet(source, ("text", "label"), ROWS_PER_SLICE):
            ids = encode_texts(tokenizer, batch.column("text").to_pylist(), max_length)
            lengths = [len(row) for row in ids]
            writer.write_table(pa.table({"input_ids": ids, "label": batch.column("label"), "length": lengths}, SCHEMA))
            rows, tokens = rows + len(ids), tokens + sum(lengths)
            truncated += sum(n >= max_length for n in lengths)
            bar.update(len(ids))
    return rows, tokens, truncated


def main(argv: list[str] | None = None) -> None:
    parser = StageParser(__doc__)
    parser.add_argument("--data", type=Path, required=True, help="the data stage's folder (data/prepared)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (data/encoded)")
    args, params = parser.parse(argv, "model")

    tokenizer = load_tokenizer(params.checkpoint, params.trust_remote_code)
    limit = max_positions(params.checkpoint, tokenizer)
    if params.max_length > limit:
        raise PipelineError(f"model.max_length: {params.max_length} is above the model's limit of {limit} tokens")

    with atomic_path(args.out, is_dir=True, inputs=[args.data, resolve_checkpoint(params.checkpoint)]) as out:
        for split in SPLITS:
            source, target = args.data / f"{split}.parquet", out / f"{split}.parquet"
            rows, tokens, truncated = encode_file(tokenizer, source, target, params.max_length, f"encode {split}")
            log.info("%s: %d rows, mean %.1f tokens, %d truncated", split, rows, tokens / max(rows, 1), truncated)
        save_tokenizer(tokenizer, out / "tokenizer", max_length=params.max_length)


if __name__ == "__main__":
    run_stage(main)
