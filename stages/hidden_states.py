"""Stage hidden_states: the first token's last hidden state per row, for each split.

Run once for the pretrained encoder (``--encoder`` = model.checkpoint, the param; ``--kind encoder``) and
once for the fine-tuned classifier (``--encoder models/finetuned --kind classifier``, the finetune stage's folder).
Reads params: model.checkpoint, model.trust_remote_code, device, hidden_states.*
Writes: <out>/{train,validation,test}.npy (float32, rows in data order); with ``--train-rows sample``
(the fine-tuned encoder) train.npy holds only a stratified sample of ``hidden_states.finetuned_train_rows``
train rows, the only train states read downstream (by umap@finetuned), and train_rows.npy their positions.
``--kind classifier`` runs the whole classifier once per row and also writes <out>/<split>_logits.npy
(its logits, the evaluate stage's predictions), in fp32 whatever ``hidden_states.precision`` says: the
metrics then do not depend on whether the machine computes in bf16.
Each split is read a slice of ``textclf.io.stage_files.ROWS_PER_SLICE`` rows at a time, sorted by length and padded
per batch within the slice; rows are written as computed at their place in the split, so memory holds the
model, one slice's token ids and one batch, whatever the data's size.
Under `textclf.models.launch --processes N` the N processes split each slice's batches and write their rows
into the same .npy files.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from textclf.common.params import load_params
from textclf.common.stage import run_stage
from textclf.common.user_paths import SPLITS
from textclf.evaluation.sampling import stratified_sample
from textclf.io.stage_files import (
    ROWS_SUFFIX,
    NpyRowWriter,
    TokenRows,
    iter_token_rows,
    parquet_rows,
    read_parquet,
)
from textclf.models import distributed, loading
from textclf.models.inference import LOGITS_SUFFIX, output_width, run_batched

log = logging.getLogger("stage.hidden_states")
# umap.seed's default: at the default params the two UMAPs embed the same train rows
TRAIN_SAMPLE_SEED = 42


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
        "--kind",
        choices=("encoder", "classifier"),
        required=True,
        help="encoder: the bare encoder's states at hidden_states.precision; classifier: states and logits, fp32",
    )
    parser.add_argument(
        "--train-rows",
        choices=("all", "sample"),
        required=True,
        help="all train rows (the baselines read them) or hidden_states.finetuned_train_rows of them (the UMAP's)",
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    all_params = load_params(args.params)
    params, model_params = all_params.hidden_states, all_params.model

    device = distributed.local_device(loading.resolve_device(all_params.device))
    classifier = args.kind == "classifier"
    bf16 = not classifier and loading.use_bf16(params.precision, device)
    checkpoint = model_params.checkpoint if args.encoder == "pretrained" else args.encoder
    tokenizer = loading.load_tokenizer(str(args.encoded / "tokenizer"))
    # rows from the footers (a damaged or foreign file is refused before the model loads); ids are read later
    n_rows = {split: parquet_rows(args.encoded / f"{split}.parquet", ("input_ids", "label")) for split in SPLITS}
    keep = {split: None for split in SPLITS}  # positions of the rows to compute, None: all
    if args.train_rows == "sample" and params.finetuned_train_rows is not None:
        keep["train"] = train_sample(args.encoded / "train.parquet", params.finetuned_train_rows)
    torch.manual_seed(0)  # weights a checkpoint lacks (say, a pooler) are initialized alike every run
    if classifier:  # checked whole: labels, trained head, tokenizer
        model = loading.load_finetuned(checkpoint)
    else:
        model = loading.load_encoder(checkpoint, model_params.trust_remote_code, tokenizer=tokenizer)
    outputs = {"first_token": ".npy", **({"logits": LOGITS_SUFFIX} if classifier else {})}  # output -> file suffix
    log.info(
        "%s from %s on %s (%s), process %d of %d",
        args.kind,
        checkpoint,
        device,
        "bf16" if bf16 else "fp32",
        distributed.rank() + 1,
        distributed.world_size(),
    )

    inputs = [args.encoded, loading.resolve_checkpoint(checkpoint)]  # never written over
    with distributed.process_group(), distributed.shared_output_dir(args.out, inputs=inputs) as out:
        for split, count in n_rows.items():
            start = time.perf_counter()
            count = count if keep[split] is None else len(keep[split])
            files = {name: (out / f"{split}{suffix}", output_width(model, name)) for name, suffix in outputs.items()}
            if distributed.is_main():
                for path, width in files.values():
                    NpyRowWriter(path, count, width, create=True).close()
                if keep[split] is not None:
                    np.save(out / f"{split}{ROWS_SUFFIX}", keep[split])
            distributed.barrier()  # the files exist before any process writes into them
            sinks = {name: NpyRowWriter(path, count, width, create=False) for name, (path, width) in files.items()}
            bar = tqdm(
                total=count,
                desc=f"{args.out.name} {split}",
                unit="row",
                mininterval=2.0,
                disable=not distributed.is_main(),
            )
            try:
                for first_row, rows in selected_rows(args.encoded / f"{split}.parquet", keep[split]):
                    run_batched(
                        model,
                        rows,
                        tokenizer.pad_token_id,
                        params.batch_size,
                        output="first_token",
                        device=device,
                        bf16=bf16,
                        progress=False,
                        sinks=sinks,
                        first_row=first_row,
                    )
                    bar.update(len(rows))
            finally:
                for sink in sinks.values():
                    sink.close()
                bar.close()
            seconds = time.perf_counter() - start
            log.info("%s: %d rows in %.1fs (%.0f rows/s)", split, count, seconds, count / seconds)


def train_sample(path: Path, n: int) -> np.ndarray | None:
    """Positions of ``n`` train rows, stratified by label with seed ``TRAIN_SAMPLE_SEED`` (None: the split
    has no more rows than that, so all are computed)."""
    labels = read_parquet(path, columns=("label",))["label"].to_numpy()
    return None if n >= len(labels) else stratified_sample(labels, n, TRAIN_SAMPLE_SEED)


def selected_rows(path: Path, keep: np.ndarray | None) -> Iterator[tuple[int, TokenRows]]:
    """``iter_token_rows`` of the split, or only its rows at the sorted positions ``keep``, numbered
    from 0 in that order (their places in the output file)."""
    done = 0
    for first_row, rows in iter_token_rows(path):
        if keep is None:
            yield first_row, rows
            continue
        local = keep[(keep >= first_row) & (keep < first_row + len(rows))] - first_row
        if len(local):
            yield done, rows.take(local)
            done += len(local)


if __name__ == "__main__":
    run_stage(main)
