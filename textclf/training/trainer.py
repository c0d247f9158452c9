"""Pieces of the fine-tuning stage around the HF Trainer: a resumable length-grouped sampler, train rows on disk,
saves by wall time, dvclive curves on the optimizer-step axis."""

from __future__ import annotations

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
import pyarrow as pa
import torch
import torch.nn.functional as F
from transformers import (
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from textclf.common.errors import PipelineError
from textclf.common.params import FinetuneParams
from textclf.evaluation.metrics import classification_metrics
from textclf.io.outputs import sha256_files
from textclf.io.stage_files import iter_parquet, list_lengths, parquet_rows, read_token_table
from textclf.models.loading import hardware_description, load_classifier, use_bf16, weights_sha256

log = logging.getLogger(__name__)


class EpochSeededSampler(torch.utils.data.Sampler[int]):
    """Shuffled row order that depends only on (seed, epoch), so a resumed run sees the same batches.

    With ``group_by_length`` the shuffled rows are cut into mega-batches of 50 batches, each sorted
    by length: batches hold rows of similar length (little padding) yet stay random. The Trainer
    calls ``set_epoch`` before each epoch, resumed runs included.
    """

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
        return self._rows(order)

    def _rows(self, order: np.ndarray) -> Iterator[int]:
        """The rows of the shuffled ``order`` (one int64 array), a mega-batch at a time (each sorted by
        length with ``group_by_length``): no Python int is made for a row before it is asked for."""
        size = 50 * self.batch_size
        for i in range(0, len(order), size):
            chunk = order[i : i + size]
            if self.group_by_length:
                chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            yield from chunk.tolist()


def schedule(n_train_rows: int, params: FinetuneParams) -> tuple[int, int]:
    """(optimizer steps, steps between training-curve points) for this many training rows.

    Steps are ``finetune.epochs`` passes over the data, but at least ``finetune.min_steps``: a small
    dataset still gets enough updates to learn (one epoch of the 240-row demo sample is 8 steps, most
    of them warm-up). ``finetune.eval_steps`` below 1 is a fraction of the steps (0.05: 20 points a run).
    """
    per_epoch = math.ceil(n_train_rows / params.batch_size)
    total = max(math.ceil(params.epochs * per_epoch), params.min_steps)
    every = params.eval_steps if params.eval_steps >= 1 else max(1, int(total * params.eval_steps))
    return total, int(every)


def training_arguments(
    params: FinetuneParams,
    device: torch.device,
    output_dir: Path | str,
    n_train_rows: int,
    processes: int = 1,
    **overrides,
) -> TrainingArguments:
    """The finetune stage's ``TrainingArguments`` for ``processes`` DDP processes; ``overrides`` replace
    any of them (the benchmark turns saving and evaluation off, or sets ``max_steps``).

    ``finetune.batch_size`` is the rows of one optimizer step, all processes together: each process
    takes ``batch_size / processes`` and DDP averages their gradients, so a step is the same step at any
    process count and the learning rate needs no scaling. ``eval_batch_size`` is per process.

    With ``finetune.best_metric`` the Trainer saves at every curve point (the best may be any of them)
    and loads the best one's weights at the end; without it, saves come every ``finetune.save_steps``."""
    total, every = schedule(n_train_rows, params)
    best = params.best_metric
    settings = dict(
        output_dir=str(output_dir),
        max_steps=total,
        learning_rate=params.learning_rate,
        per_device_train_batch_size=params.batch_size // processes,
        per_device_eval_batch_size=params.eval_batch_size,
        weight_decay=params.weight_decay,
        warmup_steps=params.warmup_ratio,  # transformers 5: a float below 1 is a fraction of all steps
        eval_strategy="steps",
        eval_steps=every,
        logging_strategy="steps",
        logging_steps=every,
        save_strategy="steps",
        save_steps=every if best else params.save_steps,
        save_total_limit=1,  # the Trainer keeps the best checkpoint too
        load_best_model_at_end=best is not None,
        metric_for_best_model=best,
        greater_is_better=None if best is None else best != "loss",
        restore_callback_states_from_checkpoint=True,  # the early-stopping count survives a resume
        seed=params.seed,
        bf16=use_bf16(params.precision, device),
        use_cpu=device.type == "cpu",
        report_to="none",
        log_level="warning",
        dataloader_num_workers=0,
    )
    if processes > 1:
        settings["ddp_backend"] = "nccl" if device.type == "cuda" else "gloo"
    settings.update(overrides)
    return TrainingArguments(**settings)


def train_sampler(lengths: Sequence[int], params: FinetuneParams) -> EpochSeededSampler:
    """The finetune stage's sampler for training rows of these lengths (tokens)."""
    return EpochSeededSampler(lengths, params.batch_size, params.seed, params.group_by_length)


class SamplerEpoch(TrainerCallback):
    """Sets the sampler's epoch at each epoch's start, from the optimizer step reached.

    The Trainer calls ``set_epoch`` itself, but under DDP, in the epoch a resumed run starts
    mid-way, its skipping wrapper hides the sampler: a resumed process would replay epoch 0's order
    (tests/test_distributed.py::test_ddp_finetune_on_two_processes_resumes_after_sigkill).
    """

    def __init__(self, sampler: EpochSeededSampler):
        self.sampler = sampler

    def on_epoch_begin(self, args, state, control, **kwargs):
        batches = math.ceil(len(self.sampler) / args.per_device_train_batch_size)  # all processes' batches
        steps_per_epoch = math.ceil(batches / args.world_size) // args.gradient_accumulation_steps
        self.sampler.set_epoch(state.global_step // max(steps_per_epoch, 1))


class SaveByTime(TrainerCallback):
    """Saves resumable state ``minutes`` after the last save too (``finetune.save_minutes``; None: by steps
    only), so that a run stopped before its first ``save_steps`` keeps what it did. Every process of a DDP
    run takes the first process's decision (they save together)."""

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


def balanced_class_weights(labels: np.ndarray, n_labels: int) -> torch.Tensor:
    """``finetune.class_weights: balanced``: n_rows / (n_labels * rows of the label), from the train
    labels (as sklearn's ``class_weight="balanced"``): the mean weight over the train rows is 1."""
    counts = np.bincount(np.asarray(labels), minlength=n_labels)
    if (counts == 0).any():
        raise PipelineError(
            f"finetune.class_weights: balanced needs train rows of every label (counts {counts.tolist()})"
        )
    return torch.tensor(len(labels) / (n_labels * counts), dtype=torch.float32)


class PipelineTrainer(Trainer):
    """The HF Trainer with the pipeline's sampler (``train_sampler`` given at construction) and an
    optional class-weighted training loss."""

    def __init__(self, *args, train_sampler: EpochSeededSampler, class_weights: torch.Tensor | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_sampler, self.class_weights = train_sampler, class_weights
        self.add_callback(SamplerEpoch(train_sampler))

    def _get_train_sampler(self, train_dataset=None):
        # ours, not the Trainer's LengthGroupedSampler: that one draws each epoch's order from the global RNG
        # (a resumed epoch gets another order) and holds Python lists of every row
        # (tests/test_reliability.py::test_sigkill_mid_epoch_then_resume_gives_the_same_model)
        return self.train_sampler

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """With class weights, the training loss is the mean of weight[label] x cross-entropy over the
        batch's rows; evaluation losses stay unweighted, comparable between runs."""
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
    """The finetune stage's ``PipelineTrainer``: ``checkpoint`` as a classifier of ``label_names`` with a
    seeded new head (its encoder frozen unless ``finetune.train_feature_extractor``), the stage's
    ``TrainingArguments`` (``overrides`` replace any of them), the length-grouped sampler and a padding
    collator; curve points on ``validation`` when given, with early stopping after
    ``finetune.early_stopping_patience`` points without a better ``finetune.best_metric``. The benchmark
    builds its trainer here too."""
    set_seed(params.seed)  # before the model is built: the new head's initialization is seeded
    model = load_classifier(checkpoint, label_names, trust_remote_code, tokenizer=tokenizer)
    if not params.train_feature_extractor:
        log.info("encoder frozen: %d trainable parameters", freeze_encoder(model))
    patience = params.early_stopping_patience if validation is not None else None
    return PipelineTrainer(
        model=model,
        args=training_arguments(params, device, output_dir, len(train), processes=processes, **overrides),
        train_dataset=train,
        eval_dataset=validation,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=None if validation is None else compute_metrics,
        callbacks=[SaveByTime(params.save_minutes)] + ([EarlyStoppingCallback(patience)] if patience else []),
        train_sampler=train_sampler(token_lengths(train), params),
        class_weights=class_weights,
    )


def compute_metrics(prediction) -> dict:
    """Accuracy, macro F1 and weighted F1 of an evaluation pass."""
    return classification_metrics(prediction.label_ids, prediction.predictions.argmax(-1))


def curve_evaluations(history: list[dict]) -> list[dict]:
    """The training-curve evaluations (validation subset) recorded in ``state.log_history``, in step order."""
    return [entry for entry in history if "eval_accuracy" in entry]


class DVCLiveStepLogger(TrainerCallback):
    """Logs train loss and validation loss/accuracy/macro and weighted F1 to dvclive at every evaluation, on the
    optimizer-step axis, the last step's included, so the curve ends at the model; at the end, names the
    point whose weights are kept (``best_step`` and ``chosen.*`` in ``metrics.json``).

    Ours, not dvclive's ``DVCLiveCallback``: that one counts its own steps (one per log call, so train and
    validation points fall on different steps) and starts afresh on resume, while this one logs from
    ``state.log_history``, so a resumed run first replays the points the checkpoint holds
    (tests/test_reliability.py::test_sigkill_mid_epoch_then_resume_gives_the_same_model).
    """

    def __init__(self, live):
        self.live, self.logged = live, 0  # live None: a process that writes no curves (DDP: all but the first)

    def _log_new_points(self, history: list[dict]) -> None:
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

    def on_train_begin(self, args, state, control, **kwargs):
        self._log_new_points(state.log_history)

    def on_step_end(self, args, state, control, **kwargs):
        # the Trainer evaluates and saves at the last step itself; the train loss there must be logged too
        # (in every process: logging gathers the loss from all of them)
        control.should_log |= state.global_step == state.max_steps
        return control

    def on_evaluate(self, args, state, control, **kwargs):
        self._log_new_points(state.log_history)

    def on_train_end(self, args, state, control, **kwargs):
        """``best_step`` and ``chosen.{loss,accuracy,f1_macro}`` (its curve-subset scores) in metrics.json: the
        best point with ``finetune.best_metric`` (the Trainer's), else the last one."""
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
    """Give every dvclive curve file a ``chosen`` column, 1 at ``step`` (whose weights were kept) and 0
    elsewhere, so that the curve template (.dvc/plots/curve.json) draws a rule there on the plots page.

    The column goes right after ``step``: DVC plots the last column when no ``y`` is given. Done once
    training has ended; dvclive starts its files afresh every run, so a rerun never sees the column.
    """
    for path in sorted((Path(live_dir) / "plots" / "metrics").rglob("*.tsv")):
        header, *rows = path.read_text(encoding="utf-8").splitlines()
        names = header.split("\t")
        if names[0] != "step" or "chosen" in names:
            continue
        lines = ["\t".join(["step", "chosen", *names[1:]])]
        for row in rows:
            first, *rest = row.split("\t")
            lines.append("\t".join([first, "1" if int(first) == step else "0", *rest]))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def last_complete_checkpoint(state_dir: Path) -> str | None:
    """The newest ``checkpoint-N`` whose ``trainer_state.json`` (written last by the Trainer) parses.

    Ours, not ``transformers.trainer_utils.get_last_checkpoint``, which takes the newest folder even when a
    kill while saving left it partial (tests/test_reliability.py::test_a_partial_checkpoint_is_not_resumed).
    """
    states = Path(state_dir).glob("checkpoint-*/trainer_state.json")
    for state in sorted(states, key=lambda p: -int(p.parent.name.split("-")[1])):
        try:
            json.loads(state.read_text())
            return str(state.parent)
        except (OSError, ValueError):
            continue
    return None


def fingerprint(files: Sequence[Path], settings: dict) -> str:
    """A short hash of the inputs and settings: saved training state is resumed only when it matches."""
    return sha256_files(files, prefix=json.dumps(settings, sort_keys=True).encode())[:16]


def load_split(
    path: Path, sort_by_length: bool = False, max_rows: int | None = None, seed: int = 0
) -> datasets.Dataset:
    """Encoded rows as a ``datasets.Dataset`` with the columns the model and collator take, backed by
    the Arrow table read from the Parquet file itself (4 bytes a token: no copy of the ids, no Python
    list per row, whatever the split's size).

    ``max_rows`` keeps a seeded random subset (the training curves' validation rows: evaluating all
    of a large split 20 times a run would cost minutes). ``sort_by_length`` orders rows by length
    (for evaluation, whose metrics ignore order): each batch is then padded to barely more than its
    rows' own length.
    """
    source = read_token_table(path)
    n_rows, keep = len(source), None
    if max_rows is not None and n_rows > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(n_rows, max_rows, replace=False))
    if sort_by_length:
        lengths = list_lengths(source.column("input_ids"))
        keep = np.arange(n_rows) if keep is None else keep
        keep = keep[np.argsort(lengths[keep], kind="stable")]
    ids, labels = source.column("input_ids"), source.column("label")
    table = pa.table(
        {
            "input_ids": ids if ids.type == pa.list_(pa.int32()) else ids.cast(pa.list_(pa.int32())),
            "labels": labels if labels.type == pa.int64() else labels.cast(pa.int64()),
        }
    )
    del source, ids, labels
    if keep is not None:
        table = table.take(pa.array(keep))
    # a fingerprint of its own: without one, datasets hashes (pickles) the whole table, a transient copy
    stat = Path(path).stat()
    name = f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{sort_by_length}|{max_rows}|{seed}"
    return datasets.Dataset(
        datasets.table.InMemoryTable(table), fingerprint=hashlib.sha256(name.encode()).hexdigest()[:16]
    )


# Rows of the encoded file that ``TokenRowsOnDisk`` reads at a time while copying their ids to disk
DISK_COPY_ROWS = 10_000


class TokenRowsOnDisk(torch.utils.data.Dataset):
    """The encode stage's rows (``input_ids``, ``label``) for training, their token ids on disk.

    The Parquet file is read a slice of ``rows_per_slice`` rows at a time and its ids are copied, as
    int32, into a file of ``folder`` that is unlinked as soon as it is open (nothing is left behind, even
    after a SIGKILL); a row's ids are read back with ``os.pread`` when the sampler asks for it. Memory
    holds the row offsets and the labels (16 bytes a row: 160 MB for 10M rows) instead of the ids
    (about 75 bytes a row of tweets); the OS's page cache keeps what is read often. A row is the same
    ``{"input_ids": [...], "labels": ...}`` that ``load_split``'s ``datasets.Dataset`` gives, so training
    sees the same batches and writes the same weights.
    """

    def __init__(self, path: Path | str, folder: Path | str, rows_per_slice: int = DISK_COPY_ROWS):
        n_rows = parquet_rows(path, ("input_ids", "label"))
        self.offsets = np.zeros(n_rows + 1, dtype=np.int64)  # in tokens: row i is ids [offsets[i], offsets[i + 1])
        self.labels = np.empty(n_rows, dtype=np.int64)
        Path(folder).mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".train-ids-", suffix=".tmp", dir=folder)
        os.unlink(name)
        self.file = os.fdopen(fd, "w+b")
        tokens = 0
        for start, batch in iter_parquet(path, ("input_ids", "label"), rows_per_slice):
            ids, stop = batch.column("input_ids"), start + batch.num_rows
            flat = ids.flatten().to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
            np.cumsum(list_lengths(pa.chunked_array([ids])), out=self.offsets[start + 1 : stop + 1])
            self.offsets[start + 1 : stop + 1] += tokens
            self.labels[start:stop] = batch.column("label").to_numpy(zero_copy_only=False)
            self.file.write(flat.tobytes())
            tokens += len(flat)
        self.file.flush()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        start, stop = int(self.offsets[i]), int(self.offsets[i + 1])
        ids = np.frombuffer(os.pread(self.file.fileno(), 4 * (stop - start), 4 * start), dtype=np.int32)
        return {"input_ids": ids.tolist(), "labels": int(self.labels[i])}

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per row (int32)."""
        return np.diff(self.offsets).astype(np.int32)

    def close(self) -> None:
        self.file.close()


def token_lengths(dataset: datasets.Dataset | TokenRowsOnDisk) -> np.ndarray:
    """Tokens per row of a ``load_split`` dataset, read from its Arrow column (no row is decoded), or of a
    ``TokenRowsOnDisk``."""
    if isinstance(dataset, TokenRowsOnDisk):
        return dataset.lengths
    return list_lengths(dataset.data.column("input_ids"))


def freeze_encoder(model) -> int:
    """Freeze the pretrained encoder (found through ``base_model``) and return the trainable count."""
    for parameter in model.base_model.parameters():
        parameter.requires_grad = False
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def resumable_state(state_root: Path, run_id: str, remove_stale: bool = True) -> tuple[Path, str | None]:
    """The state folder of this run's settings and the checkpoint to resume from (or None).

    State saved under other settings (another fingerprint) can never be resumed: it is deleted
    (by one process of a multi-process run: ``remove_stale``). Only folders named like a fingerprint
    (16 hex digits) go: whatever else ``state_root`` holds is not this stage's and stays.
    """
    state_dir = Path(state_root) / run_id
    for stale in Path(state_root).glob("[0-9a-f]" * 16) if remove_stale else ():
        if stale != state_dir and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    return state_dir, last_complete_checkpoint(state_dir)


def run_record(
    result, device: torch.device, bf16: bool, model_dir: Path, processes: int = 1, history: list[dict] = ()
) -> dict:
    """What ``textclf export`` writes into the shipped model card about the run that trained these
    weights: time, steps, speed, hardware and precision, tied to the weights by their SHA-256; and the
    seconds the training-curve evaluations took (``history``: the Trainer's ``state.log_history``)."""
    return {
        "weights_sha256": weights_sha256(model_dir),
        "train_runtime_s": round(result.metrics["train_runtime"], 1),
        "curve_eval_s": round(sum(entry.get("eval_runtime", 0.0) for entry in curve_evaluations(history)), 1),
        "steps": result.global_step,
        "rows_per_second": round(result.metrics["train_samples_per_second"], 1),
        "hardware": hardware_description(device),
        "processes": processes,
        "precision": "bf16" if bf16 else "fp32",
    }
