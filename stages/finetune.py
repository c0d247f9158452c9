"""Stage finetune: train a sequence classifier on the encoded data with the HF Trainer.

Reads params: finetune.*, model.checkpoint, model.trust_remote_code, device
Writes: <out>/ (model and tokenizer, safetensors: the last step's weights, or with
``finetune.best_metric`` those of the best curve point) and <live>/ (dvclive: train loss and validation
loss, accuracy and F1 every ``finetune.eval_steps`` optimizer steps; ``best_step`` and ``chosen.*`` (in metrics.json) name
the kept point). Resumable state goes to <state>/<fingerprint>/ every
``finetune.save_steps`` steps: a killed run resumes from there on the next ``dvc repro``, and the
folder is removed after success.
Under `textclf.launch --processes N` (the ``processes`` param) the HF Trainer trains with DDP on N
processes: ``finetune.batch_size`` stays the rows per optimizer step, split evenly between them, so the
learning rate and the number of steps mean the same at any N. Only the first process writes outputs.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from contextlib import nullcontext
from pathlib import Path

from transformers import DataCollatorWithPadding, set_seed

from textclf import distributed
from textclf.errors import PipelineError
from textclf.stage import run_stage
from textclf.files import atomic_path, write_json
from textclf.tables import read_json
from textclf.modeling import load_classifier, load_tokenizer, resolve_checkpoint, resolve_device, save_tokenizer
from textclf.params import load_params
from textclf.training import (
    BestModel,
    DVCLiveStepLogger,
    PipelineTrainer,
    balanced_class_weights,
    compute_metrics,
    fingerprint,
    freeze_encoder,
    load_split,
    log_chosen_point,
    resumable_state,
    run_record,
    token_lengths,
    train_sampler,
    training_arguments,
)

log = logging.getLogger("stage.finetune")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoded", type=Path, required=True, help="the encode stage's folder (data/encoded)")
    parser.add_argument("--labels", type=Path, required=True, help="label names (data/prepared/labels.json)")
    parser.add_argument("--out", type=Path, required=True, help="model folder (models/finetuned)")
    parser.add_argument("--live", type=Path, required=True, help="dvclive folder (dvclive)")
    parser.add_argument("--state", type=Path, required=True, help="resumable state, never cached (checkpoints/finetune)")
    parser.add_argument("--run-record", type=Path, required=True,
                        help="time and hardware of this run, for `textclf export`; never a DVC output (checkpoints/finetune-run.json)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    all_params = load_params(args.params)
    params, model_params = all_params.finetune, all_params.model

    device = resolve_device(all_params.device)
    distributed.local_device(device)  # one GPU a process (the Trainer picks cuda:LOCAL_RANK itself)
    processes, main_process = distributed.world_size(), distributed.is_main()
    if params.early_stopping_patience and params.best_metric is None:
        raise PipelineError(
            "params.yaml: finetune.early_stopping_patience: early stopping needs finetune.best_metric "
            "(accuracy, f1_macro or loss); set one, or set the patience to null"
        )
    if params.batch_size % processes:
        raise PipelineError(f"finetune.batch_size: {params.batch_size} rows a step cannot be split evenly between {processes} processes")
    label_names = read_json(args.labels)
    tokenizer = load_tokenizer(str(args.encoded / "tokenizer"))
    train = load_split(args.encoded / "train.parquet")
    validation = load_split(
        args.encoded / "validation.parquet", sort_by_length=True, max_rows=params.curve_eval_rows, seed=params.seed
    )

    set_seed(params.seed)  # before the model is built: the new head's initialization is seeded
    model = load_classifier(model_params.checkpoint, label_names, model_params.trust_remote_code, tokenizer=tokenizer)
    if not params.train_feature_extractor:
        log.info("encoder frozen: %d trainable parameters", freeze_encoder(model))

    run_id = fingerprint(
        [args.encoded / "train.parquet", args.encoded / "validation.parquet", args.labels],
        {"finetune": params.model_dump(), "model": model_params.model_dump(), "device": device.type, "processes": processes},
    )
    state_dir, resume = resumable_state(args.state, run_id, remove_stale=main_process)
    if resume and main_process:
        log.info("resuming from %s", resume)

    weights = None
    if params.class_weights == "balanced":
        weights = balanced_class_weights(train.data.column("labels").to_numpy(), len(label_names))
        log.info("class weights: %s", ", ".join(f"{n} {w:.2f}" for n, w in zip(label_names, weights.tolist())))
    best_model = BestModel(params.best_metric, params.early_stopping_patience, resume)

    from dvclive import Live

    # dvclive writes files as it logs: only the first process keeps the curves
    live_context = Live(dir=str(args.live), dvcyaml=None, save_dvc_exp=False) if main_process else nullcontext()
    with live_context as live:
        trainer = PipelineTrainer(
            model=model,
            args=training_arguments(params, device, state_dir, len(train), processes=processes),
            train_dataset=train,
            eval_dataset=validation,
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
            compute_metrics=compute_metrics,
            callbacks=[DVCLiveStepLogger(live)] if main_process else [],
            train_sampler=train_sampler(token_lengths(train), params),
            class_weights=weights,
            best_model=best_model,
        )
        result = trainer.train(resume_from_checkpoint=resume)
        if main_process:
            log.info("trained %d steps, %.1f rows/s", result.global_step, result.metrics["train_samples_per_second"])
            chosen = log_chosen_point(live, trainer.state.log_history, params.best_metric)
            log.info("kept the weights of step %d (validation subset: accuracy %.4f, macro F1 %.4f, loss %.4f)",
                     chosen["step"], chosen["eval_accuracy"], chosen["eval_f1_macro"], chosen["eval_loss"])
    if not main_process:
        return
    best_model.restore(trainer.model)

    inputs = [args.encoded, args.labels, args.state, resolve_checkpoint(model_params.checkpoint)]
    with atomic_path(args.out, is_dir=True, inputs=inputs) as out:
        # save_pretrained, not trainer.save_model: that adds training_args.bin, a pickle
        trainer.model.save_pretrained(out, safe_serialization=True)
        save_tokenizer(tokenizer, out)
    shutil.rmtree(state_dir, ignore_errors=True)
    # Time and hardware vary from run to run, so they stay out of the outputs (which reproduce byte for byte).
    write_json(args.run_record, run_record(result, device, trainer.args.bf16, args.out, processes))


if __name__ == "__main__":
    run_stage(main)
