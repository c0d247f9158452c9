"""The fine-tuned model's card (Hugging Face format) from the pipeline's outputs; it records the weights'
SHA-256 so that ``textclf export`` refuses to ship it beside other weights."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from textclf.common.checkpoints import PACKAGED_ENCODER
from textclf.common.errors import PipelineError
from textclf.common.escape import markdown_cell

# The hub ids and licences of the base models this project knows; others are named as given.
MINILM = ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0")
DISTILBERT = ("distilbert/distilbert-base-uncased", "apache-2.0")
KNOWN_BASES = {
    PACKAGED_ENCODER: MINILM,
    MINILM[0]: MINILM,
    "distilbert-base-uncased": DISTILBERT,
    DISTILBERT[0]: DISTILBERT,
}
EMOTION_LABELS = ["sadness", "joy", "love", "anger", "fear", "surprise"]
EMOTION_HUB_ID = "dair-ai/emotion"
# The card's Markdown, a Jinja2 template as huggingface_hub's own (no autoescape: HTML's is not Markdown's, see cell).
TEMPLATE = Path(__file__).with_name("model_card.md.j2")
_SHA_PATTERN = re.compile(r"<!-- textclf model sha256: ([0-9a-f]{64}) -->")  # the template's last line
# Metric keys of classification_metrics (textclf/evaluation/metrics.py) and how the card names them.
SCORES = (("accuracy", "accuracy"), ("f1_macro", "F1 (macro)"), ("f1_weighted", "F1 (weighted)"))
SPLITS = ("validation", "test")


def card_sha256(card_text: str) -> str | None:
    """The weights' SHA-256 that a card was written for (None: not a textclf card)."""
    return match.group(1) if (match := _SHA_PATTERN.search(card_text)) else None


def local_name(value: str) -> str:
    """A path as the card shows it: an absolute or home path relative to here, else by its name (never its place)."""
    path = Path(value).expanduser()
    if not (Path(value).is_absolute() or value.startswith("~")):
        return value
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or path.name
    except ValueError:
        return path.name or value


# Training time and hardware vary between runs, the pipeline's outputs must not: `textclf export` fills this in.
TRAINING_RUN_PLACEHOLDER = (
    "Training time and hardware: filled in by `textclf export` from the record of the run that trained "
    "these weights (kept out of the pipeline's outputs, which reproduce byte for byte)."
)


def training_run_line(record: dict) -> str:
    """The card's line for a finetune run record (checkpoints/finetune-run.json), torch's threads said once."""
    processes = record.get("processes", 1)  # records written before multi-process training lack it
    where = record["hardware"] if processes == 1 else f"{processes} processes on {record['hardware']}"
    threads = record.get("torch_threads")  # newer records; a CPU's hardware line already names its threads
    threads = f", {threads} torch threads" if threads and f"{threads} threads" not in where else ""
    return (
        f"Training time: {record['train_runtime_s'] / 60:.1f} min ({record['steps']} optimizer steps, "
        f"{record['rows_per_second']:.1f} rows/s) on {where}, {record['precision']}{threads}."
    )


def number(value: object) -> str:
    """A param value as YAML writes it (1.5e-4, 0.01, true, null); other values as Markdown text."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float) and value != 0 and abs(value) < 1e-3:  # repr's digits, in the form people write
        mantissa, exponent = np.format_float_scientific(value, unique=True, trim="-").split("e")
        return f"{mantissa}e{int(exponent)}"
    return repr(value) if isinstance(value, float) else markdown_cell(value)


def cell(value: object) -> str:
    """A table cell (the card's, the report's): floats with four decimals, None as "—", text made literal."""
    return f"{value:.4f}" if isinstance(value, float) else ("—" if value is None else markdown_cell(value))


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table of ``cell``s (the report's; the card's template lays out its own)."""
    lines = [f"| {' | '.join(map(cell, row))} |" for row in [header, *rows]]
    return [lines[0], "|" + "---|" * len(header), *lines[1:]]


def render(
    *,
    label_names: list[str],
    checkpoint: str,
    source: str,
    max_length: int,
    finetune: dict,
    finetuned: dict,
    baselines: dict,
    error_analysis: dict | None,
    sha256: str,
) -> str:
    """The whole card (metadata + Markdown) from the pipeline's outputs; pure, for tests."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData  # only the card's writer needs it

    if missing := [split for split in SPLITS if split not in finetuned]:
        raise PipelineError(f"metrics: no '{missing[0]}' results (run the evaluate stage first: dvc repro)")
    base, base_licence = KNOWN_BASES.get(checkpoint, (None, None))
    if base is None and re.match(r"^[\w.-]+/[\w.-]+$", checkpoint) and not Path(checkpoint).exists():
        base = checkpoint  # a hub id the project does not know
    shown = local_name(source)
    emotion = source != "sample" and (label_names == EMOTION_LABELS or source == EMOTION_HUB_ID)
    dataset = "textclf demo sample" if source == "sample" else "emotion" if emotion else shown
    name = f"{(base or Path(checkpoint).name).split('/')[-1]}-{'emotion' if emotion else 'textclf'}"
    licence = "other" if emotion else (base_licence or "other")
    results = [  # one model-index result per split; F1 told apart by its "average" arg (f1_macro: macro)
        EvalResult(
            task_type="text-classification",
            task_name="Text Classification",
            dataset_type=EMOTION_HUB_ID if emotion else dataset,
            dataset_name=dataset,
            dataset_split=split,
            metric_type=key.partition("_")[0],
            metric_value=value,
            metric_name=title.capitalize(),
            metric_args={"average": key.partition("_")[2]} if "_" in key else None,
        )
        for split in SPLITS
        for key, title in SCORES
        if (value := finetuned[split].get(key)) is not None
    ]
    card = ModelCard.from_template(
        ModelCardData(  # the template's header adds the fixed keys (language, tags, ...)
            license=licence,
            license_name="research-only" if licence == "other" else None,
            base_model=base,
            datasets=[EMOTION_HUB_ID] if emotion else None,
            labels=list(label_names),
            model_name=name,
            eval_results=results,
        ),
        template_path=TEMPLATE,
        cell=cell,
        name=name,
        base_shown=base or local_name(checkpoint),
        base_licence=base_licence,
        source=source,
        shown=shown,
        emotion=emotion,
        emotions=emotion or label_names == EMOTION_LABELS,  # the demo sample has the same six labels
        max_length=max_length,
        splits=SPLITS,
        scores=[(k, title) for k, title in SCORES if all(finetuned[s].get(k) is not None for s in SPLITS)],
        finetuned=finetuned,
        baselines=baselines,
        error_analysis=error_analysis,
        params=[(k, number(v)) for k, v in finetune.items()],  # keys: the schema's identifiers, not escaped
        placeholder=TRAINING_RUN_PLACEHOLDER,
        sha256=sha256,
    )
    return f"{card}\n"  # Jinja drops the template's final newline
