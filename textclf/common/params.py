"""The typed schema of ``params.yaml``, read as DVC 3 reads it (YAML 1.2: ``no`` is a string); a mistake is one line."""

from __future__ import annotations

import difflib
from functools import partial
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from textclf.common.errors import PipelineError

PARAMS_FILE = Path("params.yaml")

# A ceiling for counts where a larger value can only be a typo (rows per batch, tokens, epochs...).
BATCH_LIMIT = 65536
# numpy / sklearn / UMAP seeds must fit in 32 bits.
Seed = Annotated[int, Field(ge=0, lt=2**32)]


class _Section(BaseModel):
    # strict: "2" is not an int, 1 not a bool; extra keys are typos; no field has a default: params.yaml holds all
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
    finetuned_train_rows: int | None = Field(ge=10, le=10**9)


class BaselinesParams(_Section):
    max_iter: int = Field(ge=1, le=10**7)
    max_train_rows: int | None = Field(ge=10, le=10**9)
    seed: Seed


class UmapParams(_Section):
    n_neighbors: int = Field(ge=2, le=10**5)
    min_dist: float = Field(ge=0.0, le=1.0)  # UMAP refuses a min_dist above its spread (1.0)
    max_points: int | None = Field(ge=10, le=10**9)
    seed: Seed


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
    train_word_embeddings: bool
    group_by_length: bool
    save_steps: int = Field(ge=1, le=10**9)
    save_minutes: float | None = Field(gt=0, le=10**6)
    precision: Literal["auto", "fp32", "bf16"]
    seed: Seed
    best_metric: Literal["accuracy", "f1_macro", "loss"] | None
    early_stopping_patience: int | None = Field(ge=0, le=10**6)
    class_weights: Literal["none", "balanced"]


class EvaluateParams(_Section):
    bootstrap_resamples: int = Field(ge=0, le=10**5)
    bootstrap_seed: Seed


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


_yaml = partial(YAML, typ="safe")  # a new loader each time, as DVC's parse_yaml makes one


def _key_lines(root) -> dict[tuple, list[int]]:
    """{key path: the 1-based lines it is written on} of a composed YAML node (merge keys ``<<`` are not keys)."""
    lines, walked, todo = {}, set(), [((), root)]
    while todo:
        path, node = todo.pop()
        if id(node) in walked:
            continue
        walked.add(id(node))
        named = []  # (key or index, the node its line is taken from, the node under it)
        if isinstance(node, MappingNode):
            keys = [(k, v) for k, v in node.value if isinstance(k, ScalarNode)]
            named = [(k.value, k, v) for k, v in keys if not str(k.tag).endswith(":merge")]
        elif isinstance(node, SequenceNode):
            named = [(index, item, item) for index, item in enumerate(node.value)]
        for name, key, value in named:
            lines.setdefault((*path, name), []).append(key.start_mark.line + 1)
            todo.append(((*path, name), value))
    return lines


def parse_yaml(text: str, source: str = "params.yaml") -> object:
    """Parse YAML with DVC's loader and rules; a syntax error or a key written twice is one line."""
    try:
        return _yaml().load(text)
    except DuplicateKeyError as exc:
        found = _key_lines(_yaml().compose(text)).items()
        twice = [(lines[1], lines[0], path) for path, lines in found if len(lines) > 1]
        if not twice:
            raise PipelineError(f"{source}: {_yaml_problem(exc)}") from None
        second, first, path = min(twice, key=lambda found: found[0])  # the first repeat in the file
        raise PipelineError(
            f"{source}: line {second}: '{'.'.join(map(str, path))}' is set twice (first at line {first}); "
            "keep one (DVC refuses such a file too)"
        ) from None
    except YAMLError as exc:
        raise PipelineError(f"{source}: not valid YAML: {_yaml_problem(exc)}") from None


def _yaml_problem(exc: Exception) -> str:
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is None or not problem:
        return " ".join(str(exc).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {' '.join(problem.split())}"


def parse_params(raw: object, source: str = "params.yaml", lines: dict | None = None) -> Params:
    """Validate a parsed YAML mapping; a ``PipelineError`` names the first bad parameter (a wrong value first)."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise PipelineError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: e["type"] == "missing")
        err = errors[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        known = [(lines or {}).get(tuple(err["loc"][:n])) for n in range(len(err["loc"]), 0, -1)]
        at = next((f"line {line}" for line in known if line), "")
        if err["type"] == "extra_forbidden":  # did you mean a known key of its mapping (a section, or the top level)?
            model = Params.model_fields[err["loc"][0]].annotation if len(err["loc"]) > 1 else Params
            close = difflib.get_close_matches(str(err["loc"][-1]), list(model.model_fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise PipelineError(f"{source}: unknown parameter '{where}'{f' ({at})' if at else ''}{hint}") from None
        if err["type"] == "missing":
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise PipelineError(
                f"{source}: {where}: missing{more}; every parameter must be set: "
                "copy it from the project's committed params.yaml"
            ) from None
        got = f"got {err.get('input')!r}" + (f", {at}" if at else "")
        raise PipelineError(f"{source}: {where}: {err['msg']} ({got})") from None


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    """Read ``params.yaml`` as DVC does (``parse_yaml``) and validate it."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: params file not found (run from the project root)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    raw = parse_yaml(text, str(path))
    lines = {key: found[0] for key, found in _key_lines(_yaml().compose(text)).items()}
    params = parse_params(raw, str(path), lines)
    check_rules(params, str(path))
    return params


def check_rules(params: Params, source: str = "params.yaml") -> None:
    """The rules one key cannot state alone (between keys, on a list's items): checked by every stage, so first
    by the params stage, before DVC removes any output (tests/test_params_gate.py)."""
    tune = params.finetune
    if tune.early_stopping_patience and tune.best_metric is None:
        raise PipelineError(
            f"{source}: finetune.early_stopping_patience: early stopping needs finetune.best_metric "
            "(accuracy, f1_macro or loss); set one, or set the patience to null"
        )
    if tune.batch_size % params.processes:
        raise PipelineError(
            f"{source}: finetune.batch_size: {tune.batch_size} rows a step cannot be split evenly between "
            f"processes: {params.processes}; make it a multiple"
        )
    names = params.data.label_names or []
    if any(not name.strip() for name in names):
        raise PipelineError(f"{source}: data.label_names: a label name is empty")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise PipelineError(f"{source}: data.label_names: {', '.join(map(repr, twice))} appear more than once")


def check_files(params: Params) -> None:
    """For the params stage: ``data.source``'s split files, ``model.checkpoint``, ``model.max_length`` against it."""
    from textclf.common.checkpoints import folder_input_limit, resolve_checkpoint
    from textclf.common.user_paths import SPLITS, source_folder, split_file

    folder = source_folder(params.data.source)
    for split in SPLITS if folder is not None else ():
        split_file(folder, split)
    checkpoint = resolve_checkpoint(params.model.checkpoint)
    limit = folder_input_limit(checkpoint) if Path(checkpoint).is_dir() else None
    if limit is not None and params.model.max_length > limit:
        raise PipelineError(
            f"model.max_length: {params.model.max_length} is above the limit of {params.model.checkpoint} "
            f"({limit} tokens, from its config files); lower it"
        )
