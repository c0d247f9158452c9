"""Measuring tools shared by both sides of the benchmark: clocks, machine facts, the training-step meter."""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from textclf.models.loading import cpu_info

SEED = 42
WARMUP_STEPS = 3  # untimed optimizer steps before the throughput clock starts


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so that a clock read after it counts it."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def load_average() -> list[float] | None:
    """The 1/5/15-minute load averages, or None where the OS has none."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    model = cpu_info()["model"]
    return model if model != "CPU" else (platform.processor() or "unknown")


def machine_info(device: torch.device) -> dict:
    """CPU, cores, torch threads, load, library versions and GPU: what the figures depend on."""
    import datasets
    import sklearn
    import transformers

    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": load_average(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "sklearn": sklearn.__version__,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


@dataclass
class Extraction:
    """One side's hidden states and what producing them cost."""

    X: dict[str, np.ndarray]  # CLS features per split
    encoded: Any  # the tokenized splits, reused by that side's fine-tuning
    tokenize_s: float
    extract_s: float
    tokens_fed: int  # tokens run through the model, padding included
    tokens_real: int
    precision: str
    batch_size: int
    padded_width: dict[str, int] | None = None  # the notebook's fixed width per split

    def report(self, rows: int) -> dict:
        """The JSON record of this side (``rows``: rows extracted over all splits)."""
        record = {
            "tokenize_s": self.tokenize_s,
            "tokenize_rows_per_s": rows / self.tokenize_s,
            "extract_s": self.extract_s,
        }
        if self.padded_width is not None:
            record["padded_width"] = self.padded_width
        record.update(
            tokens_fed=self.tokens_fed,
            tokens_real=self.tokens_real,
            precision=self.precision,
            batch_size=self.batch_size,
        )
        return record


def fit_and_score(model, X: dict, y: dict) -> dict:
    """Fit ``model`` on train (timed), score on validation, and note whether it converged."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X["train"], y["train"])
        fit_s = time.perf_counter() - start
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    accuracy = float((model.predict(X["validation"]) == y["validation"]).mean())
    return {"fit_s": fit_s, "validation_accuracy": accuracy, "converged": converged}


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

    def throughput(self, warmup: int = WARMUP_STEPS) -> dict:
        """Rows/s, real tokens/s and the padding fraction of the steps after ``warmup``; unhooks the model."""
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
