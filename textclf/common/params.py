"""The typed schema of ``params.yaml``: every stage validates the whole file at start.

``params.yaml`` is the only place a parameter's value lives: the schema has no defaults, so a
missing key is an error naming it, like an unknown key (with a "did you mean"), a key written
twice, a wrong type, NaN/infinity or an out-of-range value (``params.yaml: finetune.learning_rate:
...``, one line). The file is read as DVC 3 reads it (``dvc/utils/serialize/_yaml.py``: ruamel.yaml,
``YAML(typ="safe")``, YAML 1.2), so a value means the same to DVC and to the stages: ``no`` and
``yes`` are strings, ``2e-5`` is a float, a duplicate key is refused.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from textclf.common.errors import PipelineError

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
    finetuned_train_rows: int | None = Field(ge=10, le=10**9)


class BaselinesParams(_Section):
    max_iter: int = Field(ge=1, le=10**7)
    max_train_rows: int | None = Field(ge=10, le=10**9)
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
    save_minutes: float | None = Field(gt=0, le=10**6)
    precision: Literal["auto", "fp32", "bf16"]
    seed: int = _seed()
    best_metric: Literal["accuracy", "f1_macro", "loss"] | None
    early_stopping_patience: int | None = Field(ge=0, le=10**6)
    class_weights: Literal["none", "balanced"]


class EvaluateParams(_Section):
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


def _yaml():
    return YAML(typ="safe")  # what DVC's parse_yaml uses


def _key_lines(root) -> tuple[dict, list]:
    """Walk a composed YAML node: {key path: 1-based line}, and [(key path, first line, second line)]
    for keys written twice in one mapping (merge keys ``<<`` are not keys; an aliased node is walked once)."""
    lines, twice, walked = {}, [], set()
    todo = [((), root)]
    while todo:
        path, node = todo.pop()
        if id(node) in walked:
            continue
        walked.add(id(node))
        if isinstance(node, MappingNode):
            seen: dict = {}
            for key, value in node.value:
                if not isinstance(key, ScalarNode) or str(key.tag).endswith(":merge"):
                    continue
                here, line = (*path, key.value), key.start_mark.line + 1
                if key.value in seen:
                    twice.append((here, seen[key.value], line))
                seen.setdefault(key.value, line)
                lines.setdefault(here, line)
                todo.append((here, value))
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                lines.setdefault((*path, index), item.start_mark.line + 1)
                todo.append(((*path, index), item))
    return lines, sorted(twice, key=lambda found: found[2])


def parse_yaml(text: str, source: str = "params.yaml") -> object:
    """Parse YAML with DVC's loader and rules; a syntax error or a key written twice is one line."""
    try:
        return _yaml().load(text)
    except DuplicateKeyError as exc:
        _, twice = _key_lines(_yaml().compose(text))
        if twice:
            path, first, second = twice[0]
            raise PipelineError(
                f"{source}: line {second}: '{'.'.join(map(str, path))}' is set twice (first at line {first}); "
                "keep one (DVC refuses such a file too)"
            ) from None
        raise PipelineError(f"{source}: {_yaml_problem(exc)}") from None
    except YAMLError as exc:
        raise PipelineError(f"{source}: not valid YAML: {_yaml_problem(exc)}") from None


def _yaml_problem(exc: Exception) -> str:
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is None or not problem:
        return " ".join(str(exc).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {' '.join(problem.split())}"


def _suggestion(loc: tuple) -> str:
    """``; did you mean 'learning_rate'?`` for an unknown key close to a known one of its mapping."""
    model: type[BaseModel] | None = Params
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if model else None
        model = field.annotation if field and isinstance(field.annotation, type) else None
        model = model if model and issubclass(model, BaseModel) else None
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1) if model else []
    return f"; did you mean '{close[0]}'?" if close else ""


def parse_params(raw: object, source: str = "params.yaml", lines: dict | None = None) -> Params:
    """Validate a parsed YAML mapping; raise ``PipelineError`` naming the first bad parameter (and its
    line, given ``lines`` from ``_key_lines``).

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
        known = [(lines or {}).get(tuple(err["loc"][:n])) for n in range(len(err["loc"]), 0, -1)]
        at = next((f"line {line}" for line in known if line), "")
        if err["type"] == "extra_forbidden":
            raise PipelineError(
                f"{source}: unknown parameter '{where}'{f' ({at})' if at else ''}{_suggestion(err['loc'])}"
            ) from None
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
    lines, _ = _key_lines(_yaml().compose(text))
    params = parse_params(raw, str(path), lines)
    check_rules(params, str(path))
    return params


def check_rules(params: Params, source: str = "params.yaml") -> None:
    """The rules one key cannot state alone: between keys, or on a list's items. Every stage loads params
    through here, so the params stage (first in every ``dvc repro``) stops on them before DVC removes any
    output; tests/test_params_gate.py finds each param a later stage can refuse and checks it is here."""
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
    """The rules that params.yaml and the listing of the folders it names decide, for the params stage: a
    ``data.source`` folder holds one file per split; ``model.checkpoint`` is the packaged encoder, a folder
    with config.json or a hub id, and ``model.max_length`` fits a checkpoint folder's input limit."""
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
