"""The fine-tuned model's card (Hugging Face format) from the pipeline's outputs; it records the weights'
SHA-256 so that ``textclf export`` refuses to ship it beside other weights."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import yaml

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
EMOTION_LICENCE = "research and educational use only (the emotion dataset's terms: Saravia et al., 2018)"
_SHA_LINE = "<!-- textclf model sha256: {} -->"
_SHA_PATTERN = re.compile(r"<!-- textclf model sha256: ([0-9a-f]{64}) -->")
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


def describe_dataset(source: str, label_names: list[str]) -> dict:
    """Name, hub id (or None), a phrase and the licence of what ``data.source`` names."""
    if source == "sample":
        text = "the project's demo sample (360 tweet-like sentences written for the project, so its metrics say "
        text += "nothing about the real task)"
        licence = "the project's own sentences, no third-party terms"
        return {"name": "textclf demo sample", "hub_id": None, "licence": licence, "text": text}
    shown = local_name(source)
    if label_names == EMOTION_LABELS or source == EMOTION_HUB_ID:
        where = "the Hugging Face hub" if source == EMOTION_HUB_ID else f"a local copy (`{shown}`)"
        text = f"the emotion dataset ({EMOTION_HUB_ID}: English tweets, 6 labels), read from {where}"
        return {"name": "emotion", "hub_id": EMOTION_HUB_ID, "licence": EMOTION_LICENCE, "text": text}
    return {"name": shown, "hub_id": None, "licence": "see the data's own terms", "text": f"`{shown}`"}


def metadata(name: str, base: str | None, licence: str, dataset: dict, label_names: list[str], finetuned: dict) -> dict:
    """The card's YAML header (Hugging Face model-card metadata), a model-index result per split."""
    if missing := [split for split in SPLITS if split not in finetuned]:
        raise PipelineError(f"metrics: no '{missing[0]}' results (run the evaluate stage first: dvc repro)")
    meta: dict = {"language": ["en"], "license": licence}
    if licence == "other":
        meta["license_name"] = "research-only"
    meta |= {
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": ["text-classification", "dvc"],
    }
    if base:
        meta["base_model"] = base
    if dataset["hub_id"]:
        meta["datasets"] = [dataset["hub_id"]]
    meta |= {"metrics": ["accuracy", "f1"], "labels": list(label_names)}
    results = []
    for split in SPLITS:
        scores = []
        for key, title in SCORES:
            if (value := finetuned[split].get(key)) is not None:
                kind, _, average = key.partition("_")  # f1_macro: F1 told apart by its "average" arg
                scores.append({"type": kind, "value": value, "name": title.capitalize()})
                scores[-1] |= {"args": {"average": average}} if average else {}
        data = {"name": dataset["name"], "type": dataset["hub_id"] or dataset["name"], "split": split}
        results.append({"task": {"type": "text-classification", "name": "Text Classification"}, "dataset": data})
        results[-1]["metrics"] = scores
    return meta | {"model-index": [{"name": name, "results": results}]}


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


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table (the card's, the report's): floats with four decimals, None as "—", text made literal."""
    cell = lambda v: f"{v:.4f}" if isinstance(v, float) else ("—" if v is None else markdown_cell(v))  # noqa: E731
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
    base, base_licence = KNOWN_BASES.get(checkpoint, (None, None))
    if base is None and re.match(r"^[\w.-]+/[\w.-]+$", checkpoint) and not Path(checkpoint).exists():
        base = checkpoint  # a hub id the project does not know
    base_shown = base or local_name(checkpoint)
    dataset = describe_dataset(source, label_names)
    emotion = dataset["hub_id"] == EMOTION_HUB_ID
    emotions = emotion or label_names == EMOTION_LABELS  # the demo sample has the same six labels
    name = f"{(base or Path(checkpoint).name).split('/')[-1]}-{'emotion' if emotion else 'textclf'}"
    meta = metadata(name, base, "other" if emotion else (base_licence or "other"), dataset, label_names, finetuned)
    scores = [(k, title) for k, title in SCORES if all(finetuned[s].get(k) is not None for s in SPLITS)]
    noise = ": the emotion dataset's labels come from the tweets' hashtags (distant supervision) and carry their "
    noise = noise + "noise and biases" if emotion else ""

    def summary(split: str) -> str:
        others = ", ".join(f"{title} {finetuned[split][k]:.4f}" for k, title in scores[1:])
        return f"{split} accuracy **{finetuned[split]['accuracy']:.4f}**" + (f" ({others})" if others else "")

    per_label_f1 = finetuned["validation"].get("f1_per_label", {})
    lines = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(), "---", "", f"# {name}", ""]
    lines += [
        f"A {len(label_names)}-label English text classifier ({', '.join(map(markdown_cell, label_names))}), "
        f"fine-tuned from `{base_shown}` by this project's DVC pipeline on {dataset['text']}.",
        "",
        f"V{summary('validation')[1:]}; {summary('test')}.",
        "",
        "The `model_card` stage of `dvc.yaml` writes this card from the pipeline's own outputs (`metrics/*.json`, "
        "`params.yaml`, the model folder), so it describes the run recorded in `dvc.lock`.",
        "",
        "## Labels",
        "",
        *markdown_table(
            ["id", "label", "validation F1"], [[i, n, per_label_f1.get(n)] for i, n in enumerate(label_names)]
        ),
        "",
        "## Results",
        "",
        *markdown_table(
            ["split", *(t for _, t in scores)], [[s, *(finetuned[s].get(k) for k, _ in scores)] for s in SPLITS]
        ),
        "",
    ]
    if baselines:
        lines += [
            "## Baselines",
            "",
            "Classifiers trained on the same data, on the first-token hidden states of the "
            "pretrained encoder (not fine-tuned):",
            "",
            *markdown_table(
                ["model", *(f"{s} {title}" for s in SPLITS for _, title in scores)],
                [
                    [k.replace("_", " "), *(v[s].get(key) for s in SPLITS for key, _ in scores)]
                    for k, v in baselines.items()
                ],
            ),
            "",
        ]
    if error_analysis:
        lines += [
            "## Where it errs",
            "",
            "Mean cross-entropy loss of the validation rows of each gold label (the "
            "`error_analysis` stage, which also lists the highest-loss rows):",
            "",
            *markdown_table(
                ["label", "mean loss"], list(map(list, error_analysis["validation"]["label_loss"].items()))
            ),
            "",
        ]
    lines += [
        "## Training",
        "",
        f"Base model `{base_shown}`, texts truncated at {max_length} tokens; the `finetune` section of `params.yaml`:",
        "",
        "| param | value |",
        "|---|---|",
        *(f"| {k} | {number(v)} |" for k, v in finetune.items()),  # keys: the schema's identifiers, not escaped
        "",
        TRAINING_RUN_PLACEHOLDER,
        "",
        "## How to use",
        "",
        "```bash",
        'textclf predict --model <this folder> "i feel great today"',
        "textclf predict --model <this folder> --input tweets.csv --output labelled.jsonl --all-scores",
        "```",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        'classify = pipeline("text-classification", model="<this folder>")',
        "classify(\"i feel great today\")  # [{'label': ..., 'score': ...}]",
        "```",
        "",
        "## Intended use and limits",
        "",
        f"- Intended use: research on {'emotion ' if emotions else ''}classification of short English texts such as "
        f"tweets into {len(label_names)} labels. Each text gets exactly one label, so mixed or absent "
        f"{'emotions' if emotions else 'classes'} are forced into one of them.",
        f"- Not for decisions about people (hiring, moderation, health, ...){noise}. Other languages, domains and "
        "long texts are out of scope.",
        f"- Licence of the data: {dataset['licence']}. The base model's own licence"
        f"{f' ({base_licence})' if base_licence else ''} applies too.",
        f"- Input: texts were truncated at {max_length} tokens in training. `textclf predict` truncates at the same "
        "length by default (`model_max_length` in `tokenizer_config.json`).",
        "- Scores are softmax probabilities, not calibrated confidences.",
        "",
        _SHA_LINE.format(sha256),
        "",
    ]
    return "\n".join(lines)
