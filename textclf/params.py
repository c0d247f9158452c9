"""The typed schema of ``params.yaml``: every stage validates the whole file at start.

``params.yaml`` is the only place a parameter's value lives: the schema has no defaults, so a
missing key is an error naming it, like an unknown key, a wrong type, NaN/infinity or an
out-of-range value (``params.yaml: finetune.learning_rate: ...``, one line).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from textclf.errors import PipelineError

PARAMS_FILE = Path("params.yaml")

# numpy / sklearn / UMAP seeds must fit in 32 bits.
SEED_LIMIT = 2**32
# A ceiling for counts where a larger value can only be a typo (rows per batch, tokens, epochs...).
BATCH_LIMIT = 65536


def _seed() -> int:
    return Field(ge=0, lt=SEED_LIMIT)


class _Section(BaseModel):
    # strict: "2" is not an int and 1 is not a bool; extra keys are typos, not options;
    # no NaN or infinity in a float. No field has a default: params.yaml holds every value.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class DataParams(_Section):
    source: str = Field(min_length=1)
    label_names: list[str] | None = Field(min_length=2)
    empty_texts: Literal["error", "drop"]
    max_train_samples: int | None = Field(ge=1, le=10**9)
    max_eval_samples: int | None = Field(ge=1, le=10**9)


class ModelParams(_Section):
    checkpoint: str = Field(min_length=1)
    max_length: int = Field(ge=2, le=BATCH_LIMIT)
    trust_remote_code: bool


class HiddenStatesParams(_Section):
    batch_size: int = Field(ge=1, le=BATCH_LIMIT)
    precision: Literal["auto", "fp32", "bf16"]


class BaselinesParams(_Section):
    max_iter: int = Field(ge=1, le=10**7)
    seed: int = _seed()


class UmapParams(_Section):
    n_neighbors: int = Field(ge=2, le=10**5)
    min_dist: float = Field(ge=0.0, le=1.0)  # UMAP refuses a min_dist above its spread (1.0)
    max_points: int | None = Field(ge=10, le=10**9)
    seed: int = _seed()


class FinetuneParams(_Section):
    epochs: float = Field(gt=0, le=1000)
    min_steps: int = Field(ge=0, le=10**9)
    eval_steps: float = Field(gt=0, le=10**9)
    curve_eval_rows: int | None = Field(ge=1, le=10**9)
    learning_rate: float = Field(gt=0, le=1.0)
    batch_size: int = Field(ge=1, le=BATCH_LIMIT)
    eval_batch_size: int = Field(ge=1, le=BATCH_LIMIT)
    weight_decay: float = Field(ge=0, le=1.0)
    warmup_ratio: float = Field(ge=0, lt=1)
    train_feature_extractor: bool
    group_by_length: bool
    save_steps: int = Field(ge=1, le=10**9)
    precision: Literal["auto", "fp32", "bf16"]
    seed: int = _seed()
    best_metric: Literal["accuracy", "f1_macro", "loss"] | None
    early_stopping_patience: int | None = Field(ge=0, le=10**6)
    class_weights: Literal["none", "balanced"]


class EvaluateParams(_Section):
    batch_size: int = Field(ge=1, le=BATCH_LIMIT)
    bootstrap_resamples: int = Field(ge=0, le=10**5)
    bootstrap_seed: int = _seed()


class ErrorAnalysisParams(_Section):
    top_n: int = Field(ge=1, le=10**6)


class Params(_Section):
    device: Literal["auto", "cpu", "cuda"]
    processes: int = Field(ge=1, le=1024)
    data: DataParams
    model: ModelParams
    hidden_states: HiddenStatesParams
    baselines: BaselinesParams
    umap: UmapParams
    finetune: FinetuneParams
    evaluate: EvaluateParams
    error_analysis: ErrorAnalysisParams


class _Loader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where ``2e-5`` is a string; DVC (YAML 1.2) writes floats like that."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?(?:[eE][-+]?\d+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def parse_params(raw: object, source: str = "params.yaml") -> Params:
    """Validate a parsed YAML mapping; raise ``PipelineError`` naming the first bad parameter.

    A wrong value is reported before a missing key (it is the more specific of the two)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PipelineError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: e["type"] == "missing")
        err = errors[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            raise PipelineError(f"{source}: unknown parameter '{where}'") from None
        if err["type"] == "missing":
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise PipelineError(
                f"{source}: {where}: missing{more}; every parameter must be set: "
                "copy it from the project's committed params.yaml"
            ) from None
        raise PipelineError(f"{source}: {where}: {err['msg']} (got {err.get('input')!r})") from None


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: params file not found (run from the project root)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    try:
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_params(raw, str(path))
