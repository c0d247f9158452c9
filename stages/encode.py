"""Stage encode: tokenize every split once with the checkpoint's tokenizer (no padding).

Reads params: model.checkpoint, model.max_length, model.trust_remote_code
Writes: <out>/{train,validation,test}.parquet (input_ids as lists, label, length) and <out>/tokenizer/
Padding happens per batch downstream, so each row is stored at its own length.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from textclf.data import SPLITS
from textclf.errors import PipelineError, run_stage
from textclf.io import atomic_path, read_parquet
from textclf.modeling import encode_texts, load_tokenizer, max_positions, save_tokenizer
from textclf.params import load_params

log = logging.getLogger("stage.encode")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the data stage's folder (data/prepared)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (data/encoded)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    params = load_params(args.params).model

    tokenizer = load_tokenizer(params.checkpoint, params.trust_remote_code)
    limit = max_positions(params.checkpoint, tokenizer)
    if params.max_length > limit:
        raise PipelineError(f"model.max_length: {params.max_length} is above the model's limit of {limit} tokens")
    frames = {split: read_parquet(args.data / f"{split}.parquet") for split in SPLITS}

    with atomic_path(args.out, is_dir=True) as out:
        for split, frame in frames.items():
            ids = encode_texts(tokenizer, frame["text"].tolist(), params.max_length)
            lengths = [len(row) for row in ids]
            encoded = pd.DataFrame({"input_ids": ids, "label": frame["label"], "length": lengths})
            encoded.to_parquet(out / f"{split}.parquet", index=False)
            truncated = sum(n >= params.max_length for n in lengths)
            log.info("%s: %d rows, mean %.1f tokens, %d truncated", split, len(ids), sum(lengths) / len(ids), truncated)
        save_tokenizer(tokenizer, out / "tokenizer")


if __name__ == "__main__":
    run_stage(main)
