"""Stage finetune: train a sequence classifier on the encoded data with the HF Trainer.

Reads params: finetune.*, model.checkpoint, model.trust_remote_code, device
Writes: models/finetuned/ (final model and tokenizer, safetensors) and dvclive/ (per-epoch
train loss and validation loss, accuracy and F1). Resumable state goes to
checkpoints/finetune/<fingerprint>/ every ``finetune.save_steps`` steps: a killed run resumes
from there on the next ``dvc repro``, and the folder is removed after success.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

import datasets
from transformers import DataCollatorWithPadding, set_seed

from textclf.errors import run_stage
from textclf.io import atomic_path, read_json, read_parquet
from textclf.modeling import load_classifier, load_tokenizer, resolve_device
from textclf.params import load_params
from textclf.training import (
    DVCLiveEpochLogger,
    PipelineTrainer,
    compute_metrics,
    fingerprint,
    last_complete_checkpoint,
    train_sampler,
    training_arguments,
)

log = logging.getLogger("stage.finetune")


def load_split(path: Path, sort_by_length: bool = False) -> datasets.Dataset:
    """Encoded rows as a ``datasets.Dataset`` with the columns the model and collator take.

    ``sort_by_length`` orders rows by length (for evaluation, whose metrics ignore order): each
    evaluation batch is then padded to barely more than its rows' own length.
    """
    frame = read_parquet(path)
    if sort_by_length:
        frame = frame.iloc[frame["input_ids"].map(len).argsort(kind="stable")]
    return datasets.Dataset.from_dict({"input_ids": frame["input_ids"].tolist(), "labels": frame["label"].tolist()})


def freeze_encoder(model) -> int:
    """Freeze the pretrained encoder (found through ``base_model``) and return the trainable count."""
    for parameter in model.base_model.parameters():
        parameter.requires_grad = False
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoded", type=Path, default=Path("data/encoded"))
    parser.add_argument("--labels", type=Path, default=Path("data/prepared/labels.json"))
    parser.add_argument("--out", type=Path, default=Path("models/finetuned"))
    parser.add_argument("--live", type=Path, default=Path("dvclive"))
    parser.add_argument("--state", type=Path, default=Path("checkpoints/finetune"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    all_params = load_params(args.params)
    params, model_params = all_params.finetune, all_params.model

    device = resolve_device(all_params.device)
    label_names = read_json(args.labels)
    tokenizer = load_tokenizer(str(args.encoded / "tokenizer"))
    train = load_split(args.encoded / "train.parquet")
    validation = load_split(args.encoded / "validation.parquet", sort_by_length=True)

    set_seed(params.seed)  # before the model is built: the new head's initialization is seeded
    model = load_classifier(model_params.checkpoint, label_names, model_params.trust_remote_code)
    if not params.train_feature_extractor:
        log.info("encoder frozen: %d trainable parameters", freeze_encoder(model))

    run_id = fingerprint(
        [args.encoded / "train.parquet", args.encoded / "validation.parquet", args.labels],
        {"finetune": params.model_dump(), "model": model_params.model_dump(), "device": device.type},
    )
    state_dir = args.state / run_id
    for stale in args.state.glob("*"):  # state of other settings can never be resumed
        if stale != state_dir:
            shutil.rmtree(stale, ignore_errors=True)
    resume = last_complete_checkpoint(state_dir)
    if resume:
        log.info("resuming from %s", resume)

    training_args = training_arguments(params, device, state_dir)
    sampler = train_sampler(train["input_ids"], params)
    from dvclive import Live

    with Live(dir=str(args.live), dvcyaml=None, save_dvc_exp=False) as live:
        trainer = PipelineTrainer(
            model=model,
            args=training_args,
            train_dataset=train,
            eval_dataset=validation,
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
            compute_metrics=compute_metrics,
            callbacks=[DVCLiveEpochLogger(live)],
            train_sampler=sampler,
        )
        result = trainer.train(resume_from_checkpoint=resume)
        log.info("trained %d steps, %.1f rows/s", result.global_step, result.metrics["train_samples_per_second"])

    with atomic_path(args.out, is_dir=True) as out:
        # save_pretrained, not trainer.save_model: that adds training_args.bin, a pickle
        trainer.model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
    shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    run_stage(main)
