"""Stage hidden_states: the first token's last hidden state per row, for each split.

Run once for the pretrained encoder (``--encoder`` = model.checkpoint, the param) and once for
the fine-tuned one (``--encoder models/finetuned``, the finetune stage's folder).
Reads params: model.checkpoint, model.trust_remote_code, device, hidden_states.*
Writes: <out>/{train,validation,test}.npy (float32, rows in data order)
``--precision fp32`` computes in fp32 whatever ``hidden_states.precision`` says: the fine-tuned model's
states are exactly what its classification head reads, and the evaluate stage's logits come from them.
Under `textclf.launch --processes N` the N processes split each split's batches and write their rows
into the same .npy files; rows are written as computed, so memory holds the model and one batch.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from textclf import distributed
from textclf.batching import output_width, run_batched
from textclf.modeling import load_encoder, load_tokenizer, resolve_checkpoint, resolve_device, use_bf16
from textclf.params import load_params
from textclf.stage import run_stage
from textclf.tables import SPLITS, NpyRowWriter, read_token_rows

log = logging.getLogger("stage.hidden_states")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--encoder",
        required=True,
        help="'pretrained' (the model.checkpoint param) or a model folder (models/finetuned)",
    )
    parser.add_argument("--encoded", type=Path, required=True, help="the encode stage's folder (data/encoded)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (data/hidden/<encoder>)")
    parser.add_argument(
        "--precision",
        choices=("param", "fp32"),
        required=True,
        help="param: hidden_states.precision; fp32: always (states that evaluate turns into logits)",
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    all_params = load_params(args.params)
    params, model_params = all_params.hidden_states, all_params.model

    device = distributed.local_device(resolve_device(all_params.device))
    bf16 = args.precision == "param" and use_bf16(params.precision, device)
    checkpoint = model_params.checkpoint if args.encoder == "pretrained" else args.encoder
    tokenizer = load_tokenizer(str(args.encoded / "tokenizer"))
    rows = {split: read_token_rows(args.encoded / f"{split}.parquet") for split in SPLITS}
    torch.manual_seed(0)  # weights a checkpoint lacks (say, a pooler) are initialized alike every run
    encoder = load_encoder(checkpoint, model_params.trust_remote_code, tokenizer=tokenizer)
    log.info(
        "encoder from %s on %s (%s), process %d of %d",
        checkpoint,
        device,
        "bf16" if bf16 else "fp32",
        distributed.rank() + 1,
        distributed.world_size(),
    )

    inputs = [args.encoded, resolve_checkpoint(checkpoint)]  # never written over
    with distributed.process_group(), distributed.shared_output_dir(args.out, inputs=inputs) as out:
        for split, split_rows in rows.items():
            start = time.perf_counter()
            path, shape = out / f"{split}.npy", (len(split_rows), output_width(encoder, "first_token"))
            if distributed.is_main():
                NpyRowWriter(path, *shape, create=True).close()
            distributed.barrier()  # the file exists before any process writes into it
            sink = NpyRowWriter(path, *shape, create=False)
            try:
                run_batched(
                    encoder,
                    split_rows,
                    tokenizer.pad_token_id,
                    params.batch_size,
                    output="first_token",
                    device=device,
                    bf16=bf16,
                    desc=f"{args.out.name} {split}",
                    sink=sink,
                )
            finally:
                sink.close()
            seconds = time.perf_counter() - start
            log.info("%s: %s in %.1fs (%.0f rows/s)", split, shape, seconds, len(split_rows) / seconds)


if __name__ == "__main__":
    run_stage(main)
