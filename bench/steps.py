"""The four compared steps; each returns its JSON record (both sides' rows/s, their ratio, quality).

A. hidden states (``extract_features`` measures, ``compare_hidden_states`` reports), B. logistic
regression, C. fine-tuning throughput and quality. Each side's methods: ``bench.notebook_methods``
and ``bench.pipeline_methods``.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from bench import notebook_methods as notebook
from bench import pipeline_methods as pipeline
from bench.config import Bench
from bench.measure import WARMUP_STEPS, Extraction, fit_and_score, now
from textclf.common.user_paths import SPLITS

log = logging.getLogger("bench")


def ratio(pipeline_value: float, notebook_value: float) -> float:
    """Pipeline ÷ notebook (rows/s): above 1, the pipeline is faster."""
    return pipeline_value / notebook_value


def side_by_side(notebook_rows_per_s: float, pipeline_rows_per_s: float) -> dict:
    """The three figures every step reports first."""
    return {
        "notebook_rows_per_s": notebook_rows_per_s,
        "pipeline_rows_per_s": pipeline_rows_per_s,
        "ratio": ratio(pipeline_rows_per_s, notebook_rows_per_s),
    }


def extract_features(bench: Bench) -> tuple[Extraction, Extraction]:
    """A's measured part: both sides' hidden states of every split, the notebook first."""
    log.info("A. hidden states: notebook method")
    nb = notebook.extract_hidden_states(bench.source, bench.tokenizer, bench.frames, bench.device)
    log.info("A. hidden states: pipeline (run_batched)")
    ours = pipeline.extract_hidden_states(
        bench.options.checkpoint, bench.tokenizer, bench.frames, bench.max_length, bench.params, bench.device
    )
    return nb, ours


def compare_hidden_states(bench: Bench, nb: Extraction, ours: Extraction, pipeline_fit: dict, started: str) -> dict:
    """Step A: extraction and tokenization speed, and feature quality: the pipeline's logistic
    regression on each feature set (``pipeline_fit``: B's fit on ours) and the features' distance."""
    log.info("A. quality: the pipeline's logistic regression on the notebook's features")
    nb_acc = fit_and_score(pipeline.classifier(bench.params), nb.X, bench.y)["validation_accuracy"]
    ours_acc = pipeline_fit["validation_accuracy"]
    Xn = np.concatenate([nb.X[s] for s in SPLITS])
    Xp = np.concatenate([ours.X[s] for s in SPLITS])
    cosine = (Xn * Xp).sum(1) / (np.linalg.norm(Xn, axis=1) * np.linalg.norm(Xp, axis=1))
    total = sum(bench.rows.values())
    return {
        "what": "CLS hidden states of train+validation+test; rows/s of the extraction alone",
        **side_by_side(total / nb.extract_s, total / ours.extract_s),
        "tokenize_ratio": ratio(total / ours.tokenize_s, total / nb.tokenize_s),
        "notebook": nb.report(total),
        "pipeline": ours.report(total),
        "quality": {
            "classifier": "baseline_classifiers(...)['logistic_regression'] fitted on train",
            "notebook_features_validation_accuracy": nb_acc,
            "pipeline_features_validation_accuracy": ours_acc,
            "difference_points": 100 * (ours_acc - nb_acc),
            "within_0_3_points": abs(ours_acc - nb_acc) <= 0.003,  # issue 22: bf16 features as good as fp32
            "max_abs_diff": float(np.abs(Xn - Xp).max()),
            "mean_cosine_similarity": float(cosine.mean()),
            "min_cosine_similarity": float(cosine.min()),
        },
        "started": started,
        "finished": now(),
    }


def compare_logistic_regression(bench: Bench, nb: Extraction, ours: Extraction) -> dict:
    """Step B: each side's logistic regression fitted on its own features (fit time, validation accuracy)."""
    started = now()
    log.info("B. logistic regression: notebook %s", notebook.CLASSIFIER)
    lr_nb = fit_and_score(notebook.classifier(), nb.X, bench.y)
    log.info("B. logistic regression: pipeline baseline_classifiers()['logistic_regression']")
    lr_ours = fit_and_score(pipeline.classifier(bench.params), ours.X, bench.y)
    n_train = bench.rows["train"]
    return {
        "what": "fit on train; rows/s = train rows / fit seconds",
        **side_by_side(n_train / lr_nb["fit_s"], n_train / lr_ours["fit_s"]),
        "notebook": {"classifier": f"{notebook.CLASSIFIER} on notebook features", **lr_nb},
        "pipeline": {"classifier": f"{pipeline.classifier_name(bench.params)} on pipeline features", **lr_ours},
        "started": started,
        "finished": now(),
    }


def compare_finetune_throughput(bench: Bench, nb: Extraction, train, tmp: str) -> dict:
    """Step C, speed: ``WARMUP_STEPS + --train-steps`` optimizer steps of each trainer, the
    warm-ups untimed; ``train``: the pipeline's training rows (``pipeline.train_split``)."""
    steps = WARMUP_STEPS + bench.options.train_steps
    started = now()
    log.info("C. fine-tuning throughput: notebook Trainer, %d steps (%d untimed)", steps, WARMUP_STEPS)
    trainer, meter = notebook.build_trainer(
        bench.source, bench.tokenizer, nb.encoded, len(bench.label_names), bench.device, f"{tmp}/nb", max_steps=steps
    )
    trainer.train()
    tp_nb = {"batch_size": notebook.BATCH_SIZE, **meter.throughput()}
    del trainer, meter
    log.info("C. fine-tuning throughput: pipeline PipelineTrainer, %d steps (%d untimed)", steps, WARMUP_STEPS)
    trainer, meter = pipeline_trainer(bench, train, f"{tmp}/ours", max_steps=steps)
    trainer.train()
    p = bench.params.finetune
    tp_ours = {
        "batch_size": p.batch_size,
        "bf16": trainer.args.bf16,
        "group_by_length": p.group_by_length,
        **meter.throughput(),
    }
    del trainer, meter
    return {
        "what": f"training rows/s over {bench.options.train_steps} optimizer steps "
        f"after {WARMUP_STEPS} untimed warm-up steps",
        **side_by_side(tp_nb["rows_per_s"], tp_ours["rows_per_s"]),
        "notebook": tp_nb,
        "pipeline": tp_ours,
        "started": started,
        "finished": now(),
    }


def pipeline_trainer(bench: Bench, train, out_dir: str, **run) -> tuple:
    """``pipeline_methods.build_trainer`` with the bench's checkpoint, tokenizer, labels, params and device."""
    return pipeline.build_trainer(
        bench.options.checkpoint, bench.tokenizer, train, bench.label_names, bench.params, bench.device, out_dir, **run
    )


def timed_training(trainer) -> dict:
    """Train to the end; wall seconds and optimizer steps."""
    start = time.perf_counter()
    out = trainer.train()
    return {"train_s": time.perf_counter() - start, "optimizer_steps": out.global_step}


def compare_finetune_quality(bench: Bench, nb: Extraction, ours: Extraction, train, tmp: str) -> dict:
    """Step C, quality: ``--epochs`` epochs of each trainer, then each side's validation accuracy."""
    epochs = bench.options.epochs
    started = now()
    log.info("C. fine-tuning quality: notebook Trainer, %g epochs", epochs)
    trainer, _ = notebook.build_trainer(
        bench.source,
        bench.tokenizer,
        nb.encoded,
        len(bench.label_names),
        bench.device,
        f"{tmp}/nbq",
        num_train_epochs=epochs,
    )
    q_nb = timed_training(trainer)
    q_nb["validation_accuracy"] = notebook.validation_accuracy(trainer, nb.encoded)
    del trainer
    log.info("C. fine-tuning quality: pipeline PipelineTrainer, %g epochs", epochs)
    trainer, _ = pipeline_trainer(
        bench, train, f"{tmp}/oursq", max_steps=math.ceil(epochs * len(train) / bench.params.finetune.batch_size)
    )
    q_ours = timed_training(trainer)
    q_ours["validation_accuracy"] = pipeline.validation_accuracy(
        trainer,
        ours.encoded["validation"],
        bench.y["validation"],
        bench.tokenizer.pad_token_id,
        bench.params,
        bench.device,
    )
    del trainer
    rows_trained = bench.rows["train"] * epochs
    return {
        "what": f"train {epochs:g} epochs on the train split, then validation accuracy; "
        "rows/s = train rows x epochs / training wall seconds",
        "epochs": epochs,
        **side_by_side(rows_trained / q_nb["train_s"], rows_trained / q_ours["train_s"]),
        "notebook": q_nb,
        "pipeline": q_ours,
        "validation_accuracy_difference_points": 100 * (q_ours["validation_accuracy"] - q_nb["validation_accuracy"]),
        "started": started,
        "finished": now(),
    }
