"""Stage finetune: train a sequence classifier on the encoded data with the HF Trainer.

Writes <out>/ (the last step's weights, or the ``finetune.best_metric`` best curve point's) and <live>/ (curves);
a killed run resumes from <state>/<fingerprint>/. Under DDP only the first process writes outputs."""

from __future__ import annotations

import json
import logging
import shutil
from contextlib import nullcontext
from pathlib import Path

from dvclive import Live

from textclf.common.errors import PipelineError
from textclf.common.stage import StageParser, run_stage
from textclf.io.outputs import atomic_path, sha256_files, write_json
from textclf.io.stage_files import read_json
from textclf.models import distributed
from textclf.models.loading import load_tokenizer, resolve_checkpoint, resolve_device, save_tokenizer
from textclf.training.trainer import (
    DVCLiveStepLogger,
    TokenRowsOnDisk,
    balanced_class_weights,
    build_trainer,
    curve_evaluations,
    load_split,
    mark_chosen_step,
    resumable_state,
    run_record,
)

log = logging.getLogger("stage.finetune")


def main(argv: list[str] | None = None) -> None:
    parser = StageParser(__doc__)
    parser.add_argument("--encoded", type=Path, required=True, help="the encode stage's folder (data/encoded)")
    parser.add_argument("--labels", type=Path, required=True, help="label names (data/prepared/labels.json)")
    parser.add_argument("--out", type=Path, required=True, help="model folder (models/finetuned)")
    parser.add_argument("--live", type=Path, required=True, help="dvclive folder (dvclive)")
    parser.add_argument("--state", type=Path, required=True, help="resumable state, not cached (checkpoints/finetune)")
    parser.add_argument("--run-record", type=Path, required=True, help="time and hardware, for `textclf export`")
    args, all_params = parser.parse(argv)
    params, model_params = all_params.finetune, all_params.model
    device = resolve_device(all_params.device)
    distributed.local_device(device)  # one GPU a process (the Trainer picks cuda:LOCAL_RANK itself)
    processes, main_process = distributed.world_size(), distributed.is_main()
    if params.batch_size % processes:  # the gate checks the processes param; this, the processes launched
        raise PipelineError(
            f"finetune.batch_size: {params.batch_size} rows a step cannot be split evenly between {processes} processes"
        )
    label_names = read_json(args.labels)
    tokenizer = load_tokenizer(str(args.encoded / "tokenizer"))
    settings = dict(
        finetune=params.model_dump(), model=model_params.model_dump(), device=device.type, processes=processes
    )
    # a short hash of the inputs and settings: saved training state is resumed only when it matches
    hashed = [args.encoded / "train.parquet", args.encoded / "validation.parquet", args.labels]
    run_id = sha256_files(hashed, prefix=json.dumps(settings, sort_keys=True).encode())[:16]
    state_dir, resume = resumable_state(args.state, run_id, remove_stale=main_process)
    if resume and main_process:
        log.info("resuming from %s", resume)
    # the train rows' ids go to an unlinked file beside the state, read back a row at a time: memory
    # does not grow with the ids; the curves' validation subset is small and held as a Dataset
    train_rows = TokenRowsOnDisk(args.encoded / "train.parquet", state_dir)
    validation = load_split(
        args.encoded / "validation.parquet", sort_by_length=True, max_rows=params.curve_eval_rows, seed=params.seed
    )
    weights = None
    if params.class_weights == "balanced":
        weights = balanced_class_weights(train_rows.labels, len(label_names))
        shown = zip(label_names, weights.tolist(), strict=True)
        log.info("class weights: %s", ", ".join(f"{name} {weight:.2f}" for name, weight in shown))
    trainer = build_trainer(
        params,
        model_params.checkpoint,
        model_params.trust_remote_code,
        label_names,
        tokenizer,
        train_rows,
        device,
        state_dir,
        validation=validation,
        class_weights=weights,
        processes=processes,
    )
    # dvclive writes files as it logs: only the first process keeps the curves
    with Live(dir=str(args.live), dvcyaml=None, save_dvc_exp=False) if main_process else nullcontext() as live:
        trainer.add_callback(DVCLiveStepLogger(live))
        result = trainer.train(resume_from_checkpoint=resume)
    if not main_process:
        return
    log.info("trained %d steps, %.1f rows/s", result.global_step, result.metrics["train_samples_per_second"])
    mark_chosen_step(args.live, live.summary["best_step"])  # after dvclive has closed its files: the rule on the curves
    inputs = [args.encoded, args.labels, args.state, resolve_checkpoint(model_params.checkpoint)]
    with atomic_path(args.out, is_dir=True, inputs=inputs) as out:
        # save_pretrained, not trainer.save_model: that adds training_args.bin, a pickle
        trainer.model.save_pretrained(out, safe_serialization=True)
        save_tokenizer(tokenizer, out)
    shutil.rmtree(state_dir, ignore_errors=True)
    # Time and hardware vary from run to run, so they stay out of the outputs (which reproduce byte for byte).
    record = run_record(result, device, trainer.args.bf16, args.out, processes, trainer.state.log_history)
    evaluations = len(curve_evaluations(trainer.state.log_history))
    log.info(f"training curves: {evaluations} evaluations, {record['curve_eval_s']} s of {record['train_runtime_s']} s")
    write_json(args.run_record, record)


if __name__ == "__main__":
    run_stage(main)
