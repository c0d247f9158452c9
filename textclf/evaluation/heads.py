"""Classification heads that read only the first token's last hidden state: a fine-tuned model's
logits from the states ``hidden_states@finetuned`` saved, without running the encoder again.

Each head below is transformers' own, at evaluation (dropout is the identity):
- ``BertForSequenceClassification``: pooler (dense + tanh on token 0), classifier;
- ``DistilBertForSequenceClassification``: pre_classifier + ReLU on token 0, classifier;
- ``RobertaForSequenceClassification``: classifier.dense + tanh on token 0, classifier.out_proj.
Any other architecture has no entry: the caller runs the whole model instead (``load_head`` says why).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open

from textclf.common.errors import PipelineError
from textclf.io.stage_files import read_json

# architecture -> its head's layers in order: (weight name prefix in the checkpoint, activation after it)
HEADS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "BertForSequenceClassification": (("bert.pooler.dense", "tanh"), ("classifier", None)),
    "DistilBertForSequenceClassification": (("pre_classifier", "relu"), ("classifier", None)),
    "RobertaForSequenceClassification": (("classifier.dense", "tanh"), ("classifier.out_proj", None)),
}
_ACTIVATIONS = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0), None: lambda x: x}


@dataclass
class FirstTokenHead:
    """A classification head as a list of (weight, bias, activation) layers, in float32 (numpy: no torch
    import, so evaluating takes seconds)."""

    architecture: str
    layers: list[tuple[np.ndarray, np.ndarray, str | None]]

    @property
    def width(self) -> int:
        """The hidden size the head reads."""
        return self.layers[0][0].shape[1]

    def logits(self, states: np.ndarray, rows_per_chunk: int = 65_536) -> np.ndarray:
        """Logits (float32, rows x labels) of first-token states (rows x hidden size), a chunk of rows
        at a time: ``NpyRows`` (or a memory-mapped array) are read from disk one chunk at a time."""
        out = np.empty((len(states), self.layers[-1][0].shape[0]), dtype=np.float32)
        for start in range(0, len(states), rows_per_chunk):
            x = np.asarray(states[start : start + rows_per_chunk], dtype=np.float32)
            for weight, bias, activation in self.layers:
                x = _ACTIVATIONS[activation](x @ weight.T + bias)
            out[start : start + len(x)] = x
        return out


def model_labels(folder: Path, label_names: list[str] | None = None) -> dict:
    """The fine-tuned model's config.json; with ``label_names``, its outputs must be those labels."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise PipelineError(f"{folder}: no fine-tuned model here (run the finetune stage first: dvc repro)")
    config = read_json(folder / "config.json")
    id2label = config.get("id2label") or {}
    outputs = [id2label.get(str(i)) for i in range(len(id2label))]
    if label_names is not None and outputs != list(label_names):
        raise PipelineError(
            f"{folder}: the model's labels {outputs} are not the data's {list(label_names)} "
            "(the model was trained on other data: run dvc repro)"
        )
    return config


def load_head(folder: Path | str, label_names: list[str] | None = None) -> tuple[FirstTokenHead | None, str]:
    """The head of the fine-tuned model in ``folder`` (only its weights are read), or None and the
    reason when the architecture is not one whose head reads the first token alone."""
    folder = Path(folder)
    config = model_labels(folder, label_names)
    architecture = (config.get("architectures") or ["(none)"])[0]
    if architecture not in HEADS:
        return None, f"{folder}: a {architecture} head is not one of {', '.join(HEADS)}"
    names = [f"{prefix}.{part}" for prefix, _ in HEADS[architecture] for part in ("weight", "bias")]
    tensors = _read_tensors(folder, names)
    missing = [n for n in names if n not in tensors]
    if missing:
        raise PipelineError(
            f"{folder}: the {architecture} weights lack {', '.join(missing)}; the folder is damaged or incomplete"
        )
    if any(t is None for t in tensors.values()):
        return None, f"{folder}: the head's weights are not float32"
    layers = [(tensors[f"{p}.weight"], tensors[f"{p}.bias"], act) for p, act in HEADS[architecture]]
    if len(layers[-1][1]) != len(config.get("id2label") or {}):
        raise PipelineError(
            f"{folder}: the classifier has {len(layers[-1][1])} outputs, config.json names "
            f"{len(config.get('id2label') or {})} labels; the folder is damaged or incomplete"
        )
    return FirstTokenHead(architecture, layers), f"{architecture} head from {folder}"


def _read_tensors(folder: Path, names: list[str]) -> dict[str, np.ndarray | None]:
    """The tensors called ``names`` from the folder's safetensors files (nothing else is read);
    None for one that is not float32."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise PipelineError(f"{folder}: no model.safetensors (run the finetune stage first: dvc repro)")
    found = {}
    for path in files:
        try:
            with safe_open(str(path), framework="np") as handle:
                for name in set(names) & set(handle.keys()):
                    fp32 = handle.get_slice(name).get_dtype() == "F32"
                    found[name] = handle.get_tensor(name) if fp32 else None
        except Exception as exc:  # safetensors raises its own error type for a damaged header or data
            raise PipelineError(
                f"{path}: could not load the model ({' '.join(str(exc).split(chr(10))[0].split())}); "
                "the folder is damaged or incomplete"
            ) from None
    return found
