"""The finetune stage around the HF Trainer: resumable sampler, train rows on disk, saves by time, step curves."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import torch
import torch.nn.functional as F
from transformers import (
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from textclf.common.errors import PipelineError
from textclf.common.params import FinetuneParams
from textclf.evaluation.metrics import classification_metrics
from textclf.io.stage_files import iter_token_rows, list_lengths, parquet_rows, read_token_table
from textclf.models.loading import cpu_has_fast_bf16, cpu_info, load_classifier, use_bf16, weights_sha256

log = logging.getLogger(__name__)


class EpochSeededSampler(torch.utils.data.Sampler[int]):
    """Row order that depends only on (seed, epoch), so a resumed run sees the same batches; length-grouped or not."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, group_by_length: bool = True):
        self.lengths = np.asarray(lengths, dtype=np.int32)  # 4 bytes a row (a token count fits)
        self.batch_size, self.seed, self.group_by_length = batch_size, seed, group_by_length
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).numpy()
        size = 50 * self.batch_size
        for i in range(0, len(order), size):  # a mega-batch at a time: no Python int per row before it is asked for
            chunk = order[i : i + size]
            if self.group_by_length:
                chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            yield from chunk.tolist()


def schedule(n_train_rows: int, params: FinetuneParams) -> tuple[int, int]:
    """(optimizer steps, steps between curve points): ``finetune.epochs`` passes but at least ``finetune.min_steps``;
    ``finetune.eval_steps`` below 1 is a fraction of the steps (0.05: 20 points a run)."""
    per_epoch = math.ceil(n_train_rows / params.batch_size)
    total = max(math.ceil(params.epochs * per_epoch), params.min_steps)
    every = params.eval_steps if params.eval_steps >= 1 else max(1, int(total * params.eval_steps))
    return total, int(every)


class SamplerEpoch(TrainerCallback):
    """The sampler's epoch from the step reached: under DDP the Trainer's ``set_epoch`` misses it in a resumed epoch
    (tests/test_distributed.py::test_ddp_finetune_on_two_processes_resumes_after_sigkill)."""

    def __init__(self, sampler: EpochSeededSampler):
        self.sampler = sampler

    def on_epoch_begin(self, args, state, control, **kwargs):
        batches = math.ceil(len(self.sampler) / args.per_device_train_batch_size)  # all processes' batches
        steps_per_epoch = math.ceil(batches / args.world_size) // args.gradient_accumulation_steps
        self.sampler.set_epoch(state.global_step // max(steps_per_epoch, 1))


class SaveByTime(TrainerCallback):
    """Saves ``minutes`` after the last save too (None: by steps only); DDP processes take the first one's decision."""

    def __init__(self, minutes: float | None, clock=time.monotonic):
        self.seconds, self.clock = None if minutes is None else 60 * minutes, clock
        self.last = clock()

    def on_step_end(self, args, state, control, **kwargs):
        if self.seconds is None:
            return control
        due = torch.tensor(int(control.should_save or self.clock() - self.last >= self.seconds), device=args.device)
        if torch.distributed.is_initialized():
            torch.distributed.broadcast(due, src=0)
        if due.item():
            control.should_save, self.last = True, self.clock()
        return control


class StepProgressBar(ProgressCallback):
    """The Trainer's progress bar over steps, without its printing of each raw log dict (DVCLiveStepLogger logs)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


def balanced_class_weights(labels: np.ndarray, n_labels: int) -> torch.Tensor:
    """n_rows / (n_labels * rows of the label), as sklearn's ``class_weight="balanced"``: mean weight over rows 1."""
    counts = np.bincount(np.asarray(labels), minlength=n_labels)
    if (counts == 0).any():
        raise PipelineError(
            f"finetune.class_weights: balanced needs train rows of every label (counts {counts.tolist()})"
        )
    return torch.tensor(len(labels) / (n_labels * counts), dtype=torch.float32)


class PipelineTrainer(Trainer):
    """The HF Trainer with the pipeline's sampler, an optional class-weighted training loss and a quiet progress bar."""

    def __init__(self, *args, train_sampler: EpochSeededSampler, class_weights: torch.Tensor | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_sampler, self.class_weights = train_sampler, class_weights
        self.add_callback(SamplerEpoch(train_sampler))
        if self.pop_callback(ProgressCallback):
            self.add_callback(StepProgressBar)

    def _get_train_sampler(self, train_dataset=None):
        # ours, not the Trainer's LengthGroupedSampler: that one draws each epoch's order from the global RNG
        # (a resumed epoch gets another order) and holds Python lists of every row
        # (tests/test_reliability.py::test_sigkill_mid_epoch_then_resume_gives_the_same_model)
        return self.train_sampler

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Training loss with class weights: the mean of weight[label] x cross-entropy; evaluation stays unweighted."""
        if self.class_weights is None or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        outputs = model(**{key: value for key, value in inputs.items() if key != "labels"})
        logits = outputs["logits"].float()
        weight = self.class_weights.to(logits.device)
        loss = F.cross_entropy(logits, inputs["labels"], weight=weight, reduction="none").mean()
        return (loss, outputs) if return_outputs else loss


def build_trainer(
    params: FinetuneParams,
    checkpoint: str,
    trust_remote_code: bool,
    label_names: list[str],
    tokenizer,
    train: datasets.Dataset | TokenRowsOnDisk,
    device: torch.device,
    output_dir: Path | str,
    *,
    validation: datasets.Dataset | None = None,
    class_weights: torch.Tensor | None = None,
    processes: int = 1,
    **overrides,
) -> PipelineTrainer:
    """The stage's (and the benchmark's) trainer: a seeded new head, the encoder frozen unless
    ``finetune.train_feature_extractor``, the token embeddings unless ``finetune.train_word_embeddings``; curve points
    on ``validation`` with early stopping when given; with ``finetune.best_metric`` the best point's weights are
    kept. ``overrides`` replace any ``TrainingArguments``."""
    set_seed(params.seed)  # before the model is built: the new head's initialization is seeded
    model = load_classifier(checkpoint, label_names, trust_remote_code, tokenizer=tokenizer)
    if not params.train_feature_extractor:
        log.info("encoder frozen: %d trainable parameters", freeze_encoder(model))
    if not params.train_word_embeddings:  # no gradient nor AdamW update for the token embedding table
        model.get_input_embeddings().weight.requires_grad_(False)
    total, every = schedule(len(train), params)
    best = params.best_metric
    settings = dict(
        output_dir=str(output_dir),
        max_steps=total,
        learning_rate=params.learning_rate,
        # finetune.batch_size is the rows of a step, all processes together: a step is the same at any count
        per_device_train_batch_size=params.batch_size // processes,
        per_device_eval_batch_size=params.eval_batch_size,
        weight_decay=params.weight_decay,
        warmup_steps=params.warmup_ratio,  # transformers 5: a float below 1 is a fraction of all steps
        eval_strategy="steps",
        eval_steps=every,
        logging_steps=every,
        save_steps=every if best else params.save_steps,
        save_total_limit=1,  # the Trainer keeps the best checkpoint too
        load_best_model_at_end=best is not None,
        metric_for_best_model=best,  # greater is better unless it is "loss"
        restore_callback_states_from_checkpoint=True,  # the early-stopping count survives a resume
        seed=params.seed,
        bf16=use_bf16(params.precision, device),
        use_cpu=device.type == "cpu",
        report_to="none",
        log_level="warning",
        ddp_backend=None if processes == 1 else "nccl" if device.type == "cuda" else "gloo",
    )
    patience = params.early_stopping_patience if validation is not None else None
    return PipelineTrainer(
        model=model,
        args=TrainingArguments(**(settings | overrides)),
        train_dataset=train,
        eval_dataset=validation,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=None if validation is None else compute_metrics,
        callbacks=[SaveByTime(params.save_minutes)] + ([EarlyStoppingCallback(patience)] if patience else []),
        train_sampler=EpochSeededSampler(token_lengths(train), params.batch_size, params.seed, params.group_by_length),
        class_weights=class_weights,
    )


def compute_metrics(prediction) -> dict:
    return classification_metrics(prediction.label_ids, prediction.predictions.argmax(-1))


def curve_evaluations(history: list[dict]) -> list[dict]:
    """The training-curve evaluations in ``state.log_history``, in step order."""
    return [entry for entry in history if "eval_accuracy" in entry]


class DVCLiveStepLogger(TrainerCallback):
    """Train loss and curve scores to dvclive on the optimizer-step axis, then the kept point (``best_step``,
    ``chosen.*``). Not dvclive's ``DVCLiveCallback``, which restarts on resume; this one replays ``state.log_history``
    (tests/test_reliability.py::test_sigkill_mid_epoch_then_resume_gives_the_same_model)."""

    def __init__(self, live):
        self.live, self.logged = live, 0  # live None: a process that writes no curves (DDP: all but the first)

    def on_evaluate(self, args, state, control, **kwargs):
        history = state.log_history
        for entry in curve_evaluations(history)[self.logged :] if self.live is not None else ():
            self.live.step = int(entry["step"])
            losses = [e["loss"] for e in history if "loss" in e and e.get("step") == entry["step"]]
            if losses:
                self.live.log_metric("train/loss", round(losses[-1], 6))
            for key in ("loss", "accuracy", "f1_macro", "f1_weighted"):
                # curve_subset: scored on finetune.curve_eval_rows rows (a seeded subset), not to be read as the
                # evaluate stage's metrics (metrics/finetuned.json, every row)
                self.live.log_metric(f"curve_subset/{key}", round(entry[f"eval_{key}"], 6))
            self.live.log_metric("epoch", round(entry["epoch"], 4), plot=False)
            self.live.make_summary()
            self.logged += 1

    on_train_begin = on_evaluate  # a resumed run's earlier points

    def on_step_end(self, args, state, control, **kwargs):
        # the Trainer evaluates and saves at the last step itself; the train loss there must be logged too
        # (in every process: logging gathers the loss from all of them)
        control.should_log |= state.global_step == state.max_steps
        return control

    def on_train_end(self, args, state, control, **kwargs):
        # the kept point: the Trainer's best with finetune.best_metric, else the last one
        if self.live is None:
            return
        evaluations = curve_evaluations(state.log_history)
        step = state.best_global_step if args.load_best_model_at_end else evaluations[-1]["step"]
        chosen = next(entry for entry in evaluations if entry["step"] == step)
        self.live.summary["best_step"] = int(step)
        self.live.summary["chosen"] = {key: round(chosen[f"eval_{key}"], 6) for key in ("loss", "accuracy", "f1_macro")}
        self.live.make_summary()
        log.info("kept the weights of step %d (validation subset: %s)", step, self.live.summary["chosen"])


def mark_chosen_step(live_dir: Path | str, step: int) -> None:
    """Give every dvclive curve file a ``chosen`` column right after ``step`` (DVC plots the last column when no
    ``y`` is given), 1 at ``step`` and 0 elsewhere: the curve template (.dvc/plots/curve.json) draws a rule there."""
    for path in sorted((Path(live_dir) / "plots" / "metrics").rglob("*.tsv")):
        curve = pd.read_csv(path, sep="\t", dtype=str)  # the values' text as dvclive wrote it
        if curve.columns[0] == "step" and "chosen" not in curve:
            curve.insert(1, "chosen", (curve["step"].astype(int) == step).astype(int))
            curve.to_csv(path, sep="\t", index=False)


def load_split(
    path: Path, sort_by_length: bool = False, max_rows: int | None = None, seed: int = 0
) -> datasets.Dataset:
    """Encoded rows as a ``datasets.Dataset`` over the file's Arrow table (no copy); ``max_rows``: a seeded subset."""
    source = read_token_table(path)
    ids, labels = source.column("input_ids").cast(pa.list_(pa.int32())), source.column("label").cast(pa.int64())
    table, keep = pa.table({"input_ids": ids, "labels": labels}), None  # zero-copy if so
    del source, ids, labels
    if max_rows is not None and len(table) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(table), max_rows, replace=False))
    if sort_by_length:
        keep = np.arange(len(table)) if keep is None else keep
        keep = keep[np.argsort(list_lengths(table.column("input_ids"))[keep], kind="stable")]
    if keep is not None:
        table = table.take(pa.array(keep))
    # a fingerprint of its own: without one, datasets hashes (pickles) the whole table, a transient copy
    stat = Path(path).stat()
    name = f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{sort_by_length}|{max_rows}|{seed}"
    fingerprint = hashlib.sha256(name.encode()).hexdigest()[:16]
    return datasets.Dataset(datasets.table.InMemoryTable(table), fingerprint=fingerprint)


class TokenRowsOnDisk(torch.utils.data.Dataset):
    """``load_split``'s rows (the same weights) with the ids in an unlinked file of ``folder`` (nothing left behind
    after a SIGKILL), read back with ``os.pread``: memory holds 16 bytes a row."""

    def __init__(self, path: Path | str, folder: Path | str, rows_per_slice: int = 10_000):
        n_rows = parquet_rows(path, ("input_ids", "label"))
        self.offsets = np.zeros(n_rows + 1, dtype=np.int64)  # in tokens: row i is ids [offsets[i], offsets[i + 1])
        self.labels = np.empty(n_rows, dtype=np.int64)
        Path(folder).mkdir(parents=True, exist_ok=True)
        self.file = tempfile.TemporaryFile(prefix=".train-ids-", suffix=".tmp", dir=folder)  # "w+b", never named
        for start, rows in iter_token_rows(path, rows_per_slice):
            stop = start + len(rows)
            self.offsets[start + 1 : stop + 1] = self.offsets[start] + rows.offsets[1:]
            self.labels[start:stop] = rows.labels
            self.file.write(rows.values.tobytes())
        self.file.flush()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        start, stop = int(self.offsets[i]), int(self.offsets[i + 1])
        ids = np.frombuffer(os.pread(self.file.fileno(), 4 * (stop - start), 4 * start), dtype=np.int32)
        return {"input_ids": ids.tolist(), "labels": int(self.labels[i])}

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets).astype(np.int32)

    def close(self) -> None:
        self.file.close()


def token_lengths(dataset: datasets.Dataset | TokenRowsOnDisk) -> np.ndarray:
    """Tokens per row (int32), of a ``TokenRowsOnDisk`` or read from a ``load_split`` dataset's Arrow column."""
    return dataset.lengths if isinstance(dataset, TokenRowsOnDisk) else list_lengths(dataset.data.column("input_ids"))


def freeze_encoder(model) -> int:
    """Freeze the pretrained encoder (found through ``base_model``) and return the trainable count."""
    model.base_model.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def resumable_state(state_root: Path, run_id: str, remove_stale: bool = True) -> tuple[Path, str | None]:
    """This run's state folder and checkpoint to resume (or None); other fingerprints' folders are deleted."""
    state_dir = Path(state_root) / run_id
    for stale in Path(state_root).glob("[0-9a-f]" * 16) if remove_stale else ():
        if stale != state_dir and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    # the newest checkpoint whose trainer_state.json (written last) parses; transformers' get_last_checkpoint takes
    # a folder a kill while saving left partial (tests/test_reliability.py::test_a_partial_checkpoint_is_not_resumed)
    states = state_dir.glob("checkpoint-*/trainer_state.json")
    for state in sorted(states, key=lambda p: -int(p.parent.name.split("-")[1])):
        with contextlib.suppress(OSError, ValueError):
            json.loads(state.read_text())
            return state_dir, str(state.parent)
    return state_dir, None


def run_record(
    result, device: torch.device, bf16: bool, model_dir: Path, processes: int = 1, history: list[dict] = ()
) -> dict:
    """The run behind these weights (tied by their SHA-256) for the model card ``textclf export`` writes."""
    native = " (native bf16)" if cpu_has_fast_bf16() else ""
    hardware = f"{cpu_info()['model']}, {torch.get_num_threads()} threads{native}"
    if device.type == "cuda":
        hardware = f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return {
        "weights_sha256": weights_sha256(model_dir),
        "train_runtime_s": round(result.metrics["train_runtime"], 1),
        "curve_eval_s": round(sum(entry.get("eval_runtime", 0.0) for entry in curve_evaluations(history)), 1),
        "steps": result.global_step,
        "rows_per_second": round(result.metrics["train_samples_per_second"], 1),
        "hardware": hardware,
        "processes": processes,
        "precision": "bf16" if bf16 else "fp32",
        "torch_threads": torch.get_num_threads(),
    }
