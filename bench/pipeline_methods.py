"""The pipeline's way of each benchmarked step, through the same ``textclf`` code the stages run.

Each function mirrors a notebook counterpart in ``bench.notebook_methods`` with the same name.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.measure import Extraction, StepMeter, sync
from stages.baselines import baseline_classifiers
from textclf.common.params import Params
from textclf.common.user_paths import SPLITS
from textclf.models.inference import length_sorted_batches, run_batched
from textclf.models.loading import encode_texts, load_encoder, use_bf16
from textclf.training import trainer as training
from textclf.training.trainer import load_split


def padded_tokens(lengths: list[int], batch_size: int) -> int:
    """Tokens run_batched feeds the model: each length-sorted batch padded to its longest row."""
    lengths = np.asarray(lengths)
    return int(sum(len(b) * lengths[b].max() for b in length_sorted_batches(lengths, batch_size)))


def extract_hidden_states(
    checkpoint: str, tokenizer, frames: dict, max_length: int, params: Params, device: torch.device
) -> Extraction:
    """The encode and hidden_states stages: unpadded ids (``encode_texts``), then ``run_batched``
    with params.yaml's ``hidden_states.batch_size`` and ``precision``."""
    encoder = load_encoder(checkpoint, params.model.trust_remote_code)
    bf16 = use_bf16(params.hidden_states.precision, device)
    batch_size = params.hidden_states.batch_size

    start = time.perf_counter()
    ids = {s: encode_texts(tokenizer, frames[s]["text"].tolist(), max_length) for s in SPLITS}
    tokenize_s = time.perf_counter() - start

    sync(device)
    start = time.perf_counter()
    X = {
        s: run_batched(
            encoder,
            ids[s],
            tokenizer.pad_token_id,
            batch_size,
            output="first_token",
            device=device,
            bf16=bf16,
            desc=f"pipeline hidden states {s}",
        )
        for s in SPLITS
    }
    sync(device)
    extract_s = time.perf_counter() - start
    return Extraction(
        X=X,
        encoded=ids,
        tokenize_s=tokenize_s,
        extract_s=extract_s,
        tokens_fed=sum(padded_tokens([len(r) for r in ids[s]], batch_size) for s in SPLITS),
        tokens_real=sum(len(r) for s in SPLITS for r in ids[s]),
        precision="bf16" if bf16 else "fp32",
        batch_size=batch_size,
    )


def classifier(params: Params):
    """The baselines stage's logistic regression (``baselines.max_iter`` and ``seed``)."""
    return baseline_classifiers(params.baselines.max_iter, params.baselines.seed)["logistic_regression"]


def classifier_name(params: Params) -> str:
    """How the JSON names ``classifier(params)``."""
    return f"baseline_classifiers({params.baselines.max_iter}, {params.baselines.seed})['logistic_regression']"


def train_split(ids: list[list[int]], labels: np.ndarray, folder: Path):
    """The training rows as the finetune stage reads them: written like the encode stage's parquet
    file, read back through ``textclf.training.trainer.load_split``."""
    path = Path(folder) / "train.parquet"
    pd.DataFrame({"input_ids": ids, "label": labels}).to_parquet(path, index=False)
    return load_split(path)


def build_trainer(
    checkpoint: str, tokenizer, train, label_names: list[str], params: Params, device: torch.device, out_dir: str, **run
) -> tuple:
    """The finetune stage's trainer (``textclf.training.trainer.build_trainer``) with params.yaml's ``finetune:``
    values, without checkpoints, evaluation or dvclive.

    ``run``: ``max_steps`` (the step count replaces the stage's schedule). Returns the trainer and its ``StepMeter``.
    """
    trainer = training.build_trainer(
        params.finetune,
        checkpoint,
        params.model.trust_remote_code,
        label_names,
        tokenizer,
        train,
        device,
        out_dir,
        eval_strategy="no",
        save_strategy="no",
        **run,
    )
    meter = StepMeter(trainer.model, device)
    trainer.add_callback(meter.callback)
    return trainer, meter


def validation_accuracy(
    trainer, ids: list[list[int]], labels: np.ndarray, pad_id: int, params: Params, device: torch.device
) -> float:
    """The pipeline's way: ``run_batched`` logits with ``hidden_states.batch_size`` (as hidden_states@finetuned)."""
    logits = run_batched(
        trainer.model,
        ids,
        pad_id,
        params.hidden_states.batch_size,
        output="logits",
        device=device,
        desc="pipeline predict validation",
    )
    return float((logits.argmax(-1) == labels).mean())
