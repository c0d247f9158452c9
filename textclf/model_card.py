"""The model card of the fine-tuned model, in the Hugging Face format, written from the pipeline's own outputs.

YAML metadata (``model-index`` with validation and test accuracy and F1, base model, labels, dataset,
licence) and a Markdown body: results, baselines, per-label loss, training params, training time and
hardware, usage, intended use and limits. The card records the SHA-256 of the weights it describes, so
that ``textclf export`` refuses to ship it beside other weights.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import yaml

from textclf.errors import PipelineError
from textclf.modeling import PACKAGED_ENCODER

# The hub ids and licences of the base models this project knows; others are named as given.
KNOWN_BASES = {
    PACKAGED_ENCODER: ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0"),
    "sentence-transformers/all-MiniLM-L6-v2": ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0"),
    "distilbert-base-uncased": ("distilbert/distilbert-base-uncased", "apache-2.0"),
    "distilbert/distilbert-base-uncased": ("distilbert/distilbert-base-uncased", "apache-2.0"),
}
EMOTION_LABELS = ["sadness", "joy", "love", "anger", "fear", "surprise"]
EMOTION_HUB_ID = "dair-ai/emotion"
EMOTION_LICENCE = "research and educational use only (the emotion dataset's terms: Saravia et al., 2018)"
WEIGHTS = "model.safetensors"
_SHA_LINE = "<!-- textclf model sha256: {} -->"
_SHA_PATTERN = re.compile(r"<!-- textclf model sha256: ([0-9a-f]{64}) -->")


def weights_sha256(model_dir: Path) -> str:
    """SHA-256 of the model's weights (``model.safetensors``, or its shards in name order)."""
    files = sorted(Path(model_dir).glob("model*.safetensors"))
    if not files:
        raise PipelineError(f"{model_dir}: no {WEIGHTS} (run the finetune stage first: dvc repro)")
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def card_sha256(card_text: str) -> str | None:
    """The weights' SHA-256 that a card was written for (None: not a textclf card)."""
    match = _SHA_PATTERN.search(card_text)
    return match.group(1) if match else None


def describe_dataset(source: str, label_names: list[str]) -> dict:
    """Name, hub id (or None), a sentence and the licence of what ``data.source`` names."""
    if source == "sample":
        return {"name": "textclf demo sample", "hub_id": None, "licence": "the project's own demo sentences",
                "text": "the project's demo sample (360 tweet-like sentences written for the project): "
                        "its metrics say nothing about the real task"}
    emotion = label_names == EMOTION_LABELS or source == EMOTION_HUB_ID
    if emotion:
        where = "the Hugging Face hub" if source == EMOTION_HUB_ID else f"a local copy ({source})"
        return {"name": "emotion", "hub_id": EMOTION_HUB_ID, "licence": EMOTION_LICENCE,
                "text": f"the emotion dataset ({EMOTION_HUB_ID}, English tweets, 6 labels) from {where}"}
    return {"name": source, "hub_id": None, "licence": "see the data's own terms", "text": f"`{source}`"}


def _metric_rows(metrics: dict) -> list[dict]:
    return [
        {"type": "accuracy", "value": metrics["accuracy"], "name": "Accuracy"},
        {"type": "f1", "value": metrics["f1"], "name": "F1 (weighted)", "args": {"average": "weighted"}},
    ]


def metadata(name: str, base: str | None, licence: str, dataset: dict, label_names: list[str], finetuned: dict) -> dict:
    """The card's YAML header (Hugging Face model-card metadata)."""
    meta: dict = {"language": ["en"], "license": licence}
    if licence == "other":
        meta["license_name"] = "research-only"
    meta.update({"library_name": "transformers", "pipeline_tag": "text-classification", "tags": ["text-classification", "dvc"]})
    if base:
        meta["base_model"] = base
    if dataset["hub_id"]:
        meta["datasets"] = [dataset["hub_id"]]
    meta["metrics"] = ["accuracy", "f1"]
    meta["labels"] = list(label_names)
    results = []
    for split in ("validation", "test"):
        if split not in finetuned:
            raise PipelineError(f"metrics: no '{split}' results (run the evaluate stage first: dvc repro)")
        results.append({
            "task": {"type": "text-classification", "name": "Text Classification"},
            "dataset": {"name": dataset["name"], "type": dataset["hub_id"] or dataset["name"], "split": split},
            "metrics": _metric_rows(finetuned[split]),
        })
    meta["model-index"] = [{"name": name, "results": results}]
    return meta


# Training time and hardware vary from run to run: the pipeline's outputs (this card among them) must not,
# so the card holds this line and `textclf export` replaces it from the run record of the finetune stage.
TRAINING_RUN_PLACEHOLDER = (
    "Training time and hardware: filled in by `textclf export` from the record of the run that trained "
    "these weights (kept out of the pipeline's outputs, which reproduce byte for byte)."
)


def training_run_line(record: dict) -> str:
    """The card's line for a finetune run record (checkpoints/finetune-run.json)."""
    processes = record.get("processes", 1)  # records written before multi-process training lack it
    where = record["hardware"] if processes == 1 else f"{processes} processes on {record['hardware']}"
    return (f"Training time: {record['train_runtime_s'] / 60:.1f} min ({record['steps']} optimizer steps, "
            f"{record['rows_per_second']:.1f} rows/s) on {where}, {record['precision']}.")


def _table(header: list[str], rows: list[list]) -> list[str]:
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))  # noqa: E731
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(fmt(v) for v in row) + " |" for row in rows
    ]


def render(*, label_names: list[str], checkpoint: str, source: str, max_length: int, finetune: dict,
           finetuned: dict, baselines: dict, error_analysis: dict | None, sha256: str) -> str:
    """The whole card (metadata + Markdown) from the pipeline's outputs; pure, for tests."""
    base, base_licence = KNOWN_BASES.get(checkpoint, (None, None))
    if base is None and re.match(r"^[\w.-]+/[\w.-]+$", checkpoint) and not Path(checkpoint).exists():
        base = checkpoint  # a hub id the project does not know
    dataset = describe_dataset(source, label_names)
    licence = "other" if dataset["hub_id"] == EMOTION_HUB_ID else (base_licence or "other")
    short = (base or Path(checkpoint).name).split("/")[-1]
    name = f"{short}-{'emotion' if dataset['hub_id'] == EMOTION_HUB_ID else 'textclf'}"
    meta = metadata(name, base, licence, dataset, label_names, finetuned)
    val, test = finetuned["validation"], finetuned["test"]

    lines = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(), "---", "", f"# {name}", ""]
    lines += [
        f"A {len(label_names)}-label English text classifier ({', '.join(label_names)}), fine-tuned from "
        f"`{base or checkpoint}` on {dataset['text']} by this project's DVC pipeline. Validation accuracy "
        f"**{val['accuracy']:.4f}** (weighted F1 {val['f1']:.4f}), test accuracy **{test['accuracy']:.4f}** "
        f"(weighted F1 {test['f1']:.4f}).", "",
        "This card is written by the `model_card` stage of `dvc.yaml` from the pipeline's own outputs "
        "(`metrics/*.json`, `params.yaml`, the model folder), so it matches `dvc.lock`.", "",
        "## Labels", "", *_table(["id", "label", "validation F1"],
                                 [[i, n, val.get("f1_per_label", {}).get(n)] for i, n in enumerate(label_names)]), "",
        "## Results", "", *_table(["split", "accuracy", "F1 (weighted)"],
                                  [[s, finetuned[s]["accuracy"], finetuned[s]["f1"]] for s in ("validation", "test")]), "",
    ]
    if baselines:
        lines += ["## Baselines", "", "The same data, on the pretrained encoder's first-token hidden states:", "",
                  *_table(["model", "validation accuracy", "validation F1", "test accuracy", "test F1"],
                          [[k.replace("_", " "), v["validation"]["accuracy"], v["validation"]["f1"],
                            v["test"]["accuracy"], v["test"]["f1"]] for k, v in baselines.items()]), ""]
    if error_analysis:
        per_label = error_analysis["validation"]["label_loss"]
        lines += ["## Where it errs", "", "Mean cross-entropy per gold label on validation (the `error_analysis` stage; "
                  "its highest-loss rows are in `plots/errors/top_losses.csv`):", "",
                  *_table(["label", "mean loss"], [[k, v] for k, v in per_label.items()]), ""]
    lines += ["## Training", "", f"Base model `{base or checkpoint}`, texts truncated at {max_length} tokens, "
              "the `finetune` section of `params.yaml`:", "", *_table(["param", "value"], [[k, v] for k, v in finetune.items()]), ""]
    lines += [TRAINING_RUN_PLACEHOLDER, ""]
    lines += [
        "## How to use", "", "```bash", "textclf predict --model <this folder> \"i feel great today\"",
        "textclf predict --model <this folder> --input tweets.csv --output labelled.jsonl --all-scores", "```", "",
        "```python", "from transformers import pipeline", "",
        "classify = pipeline(\"text-classification\", model=\"<this folder>\")",
        "classify(\"i feel great today\")  # [{'label': ..., 'score': ...}]", "```", "",
        "## Intended use and limits", "",
        f"- Intended use: research on emotion classification of short English texts such as tweets, into "
        f"{len(label_names)} labels. One label per text: mixed or absent emotions are forced into one of them.",
        "- Not for decisions about people (hiring, moderation, health, ...)"
        + (": the emotion dataset's labels come from the tweets' hashtags (distant supervision) and carry "
           "their noise and biases" if dataset["hub_id"] == EMOTION_HUB_ID else "")
        + "; other languages, domains and long texts are out of scope.",
        f"- Licence: {dataset['licence']}; the base model's own licence applies too.",
        f"- Input: at most {max_length} tokens were seen in training; longer texts are truncated.",
        "- Scores are softmax probabilities, not calibrated confidences.", "",
        _SHA_LINE.format(sha256), "",
    ]
    return "\n".join(lines)
