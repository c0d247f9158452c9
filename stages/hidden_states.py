"""Stage hidden_states: the first token's last hidden state per row, for each split.

Writes <out>/{train,validation,test}.npy (float32, data order); ``--kind classifier`` also <split>_logits.npy (fp32,
evaluate's predictions); ``--train-rows sample``: a stratified sample of train rows (positions in train_rows.npy).
Rows are read and written a slice at a time; under `textclf.models.launch` N processes split each slice's batches."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from textclf.common.stage import StageParser, run_stage
from textclf.common.user_paths import SPLITS
from textclf.evaluation.sampling import stratified_sample
from textclf.io.stage_files import ROWS_SUFFIX, NpyRowWriter, TokenRows, iter_token_rows, parquet_rows, read_parquet
from textclf.models import distributed, loading
from textclf.models.inference import LOGITS_SUFFIX, output_width, run_batched

log = logging.getLogger("stage.hidden_states")
# umap.seed's default: at the default params the two UMAPs embed the same train rows
TRAIN_SAMPLE_SEED = 42


def main(argv: list[str] | None = None) -> None:
    parser = StageParser(__doc__)
    parser.add_argument("--encoder", required=True, help="'pretrained' (model.checkpoint) or a model folder")
    parser.add_argument("--encoded", type=Path, required=True, help="the encode stage's folder (data/encoded)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (data/hidden/<encoder>)")
    parser.add_argument("--kind", choices=("encoder", "classifier"), required=True, help="classifier: logits too, fp32")
    parser.add_argument("--train-rows", choices=("all", "sample"), required=True, help="sample: the UMAP's rows only")
    args, all_params = parser.parse(argv)
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
        labels = read_parquet(args.encoded / "train.parquet", columns=("label",))["label"].to_numpy()
        if params.finetuned_train_rows < len(labels):  # else every row is computed
            keep["train"] = stratified_sample(labels, params.finetuned_train_rows, TRAIN_SAMPLE_SEED)
    torch.manual_seed(0)  # weights a checkpoint lacks (say, a pooler) are initialized alike every run
    if classifier:  # checked whole: labels, trained head, tokenizer
        model = loading.load_finetuned(checkpoint)
    else:
        model = loading.load_encoder(checkpoint, model_params.trust_remote_code, tokenizer=tokenizer)
    outputs = {"first_token": ".npy", **({"logits": LOGITS_SUFFIX} if classifier else {})}  # output -> file suffix
    where = f"process {distributed.rank() + 1} of {distributed.world_size()}"
    log.info("%s from %s on %s (%s), %s", args.kind, checkpoint, device, "bf16" if bf16 else "fp32", where)
    forward = partial(run_batched, model, pad_id=tokenizer.pad_token_id, batch_size=params.batch_size, device=device)

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
            desc = f"{args.out.name} {split}"
            bar = tqdm(total=count, desc=desc, unit="row", mininterval=2.0, disable=not distributed.is_main())
            try:
                for first_row, rows in selected_rows(args.encoded / f"{split}.parquet", keep[split]):
                    forward(rows, output="first_token", bf16=bf16, progress=False, sinks=sinks, first_row=first_row)
                    bar.update(len(rows))
            finally:
                for sink in sinks.values():
                    sink.close()
                bar.close()
            seconds = time.perf_counter() - start
            log.info("%s: %d rows in %.1fs (%.0f rows/s)", split, count, seconds, count / seconds)


def selected_rows(path: Path, keep: np.ndarray | None) -> Iterator[tuple[int, TokenRows]]:
    """``iter_token_rows``, or only the rows at the sorted positions ``keep``, numbered from 0 (their output rows)."""
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
