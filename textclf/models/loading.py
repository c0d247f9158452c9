"""Checkpoint resolution, device choice and model loading (safetensors only)."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import torch

from textclf.common.checkpoints import PACKAGED_ENCODER, input_limit, resolve_checkpoint
from textclf.common.errors import PipelineError, first_line
from textclf.common.hub import hub_unreachable_reason
from textclf.io.outputs import sha256_files

log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for ``cuda`` without it is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise PipelineError("device: 'cuda' was asked for but CUDA is not available (use 'auto' or 'cpu')")
    return torch.device(device)


def cpu_has_fast_bf16() -> bool:
    """CPUs with native bf16 matmuls (``amx_bf16``, ``avx512_bf16``), where ``precision: auto`` picks bf16: faster,
    accuracy within seed noise of fp32 (bench/RESULTS.md, section 10; on busy shared cores slower, section 4)."""
    flags = cpu_info()["flags"]
    return "amx_bf16" in flags or "avx512_bf16" in flags


@functools.cache
def cpu_info() -> dict[str, object]:
    """The CPU's ``model`` name and ``flags``, from /proc/cpuinfo (elsewhere "CPU", none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    first = dict(reversed([[part.strip() for part in line.split(":", 1)] for line in lines if ":" in line]))
    return {"model": first.get("model name", "CPU"), "flags": frozenset(first.get("flags", "").split())}


def use_bf16(precision: str, device: torch.device) -> bool:
    """Resolve a ``precision`` param: ``auto`` means bf16 where the hardware does it natively."""
    if precision == "fp32":
        return False
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_fast_bf16()
    if precision == "bf16":
        if not native:
            log.warning("bf16 asked for on %s without native support: it will be slow", device)
        return True
    return native


def _from_pretrained(loader_name: str, source: str, what: str, strict: bool = False, **kwargs):
    """``transformers.<loader_name>.from_pretrained``; a model's load report in one line (``strict``: every weight)."""
    import transformers

    loader = getattr(transformers, loader_name)
    if what != "model":
        return loader.from_pretrained(source, **kwargs)
    # The library's logger, not modeling_utils' own: with the child's level raised, transformers 5.24
    # runs a tensor-parallel check that warns about "layers not sharded" on every CPU load.
    quiet = logging.getLogger("transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        model, info = loader.from_pretrained(source, output_loading_info=True, **kwargs)
    finally:
        quiet.setLevel(level)
    missing = info.get("missing_keys") or []
    mismatched = [str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys") or []]
    if strict and (missing or mismatched):
        keys = sorted(missing) + sorted(mismatched)
        raise PipelineError(
            f"{source}: weights missing or of another shape in its safetensors ({', '.join(keys[:4])}"
            f"{' ...' if len(keys) > 4 else ''}): not a whole fine-tuned model (rerun dvc repro)"
        )
    changes = {"newly initialized": missing, "not used": info.get("unexpected_keys"), "re-initialized": mismatched}
    if parts := [f"{kind}: {sorted({k.rsplit('.', 1)[0] for k in keys})}" for kind, keys in changes.items() if keys]:
        log.info("loaded %s; %s", source, "; ".join(parts))
    return model


def _weights_files(folder: Path) -> str:
    files = sorted(p.name for p in folder.glob("*.safetensors"))
    return str(folder / files[0]) if len(files) == 1 else f"{folder}/{{{','.join(files)}}}" if files else str(folder)


def _damaged(where: str, what: str, exc: Exception) -> PipelineError:
    return PipelineError(f"{where}: could not load the {what} ({first_line(exc)}); the folder is damaged or incomplete")


def _load(loader_name: str, source: str, what: str, **kwargs):
    """``_from_pretrained`` with a damaged folder or unfetchable hub id as one line. With the hub unreachable a
    hub id comes from the local cache, or is refused at once (not after the hub client's 30-60 s of retries)."""
    if Path(source).is_dir():
        try:
            return _from_pretrained(loader_name, source, what, **kwargs)
        except PipelineError:
            raise
        except Exception as exc:  # safetensors, tokenizers, json and transformers each raise their own types
            where = _weights_files(Path(source)) if type(exc).__name__ == "SafetensorError" else source
            raise _damaged(where, what, exc) from None
    reason = hub_unreachable_reason()
    if reason is not None:
        kwargs["local_files_only"] = True
    try:
        return _from_pretrained(loader_name, source, what, **kwargs)
    except OSError:
        why = f"the hub is unreachable: {reason}; not in the local cache" if reason else "offline, or no such id"
        raise PipelineError(
            f"model.checkpoint '{source}': could not load the {what} from the Hugging Face hub ({why}); "
            f"point model.checkpoint at a local folder or use '{PACKAGED_ENCODER}'"
        ) from None
    except ValueError as exc:  # e.g. a checkpoint whose code needs model.trust_remote_code
        raise PipelineError(f"model.checkpoint '{source}': could not load the {what}: {first_line(exc)}") from None


def encode_texts(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated at ``max_length``, unpadded (padding happens per batch)."""
    return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]


# Keys tokenizer_config.json gets from the environment (HF_HUB_OFFLINE, the venv's path), not the tokenizer.
_ENVIRONMENT_KEYS = "local_files_only is_local name_or_path _name_or_path cache_dir token proxies revision".split()


def save_tokenizer(tokenizer, folder: Path, max_length: int | None = None) -> None:
    """``save_pretrained`` minus ``_ENVIRONMENT_KEYS`` (same tokenizer, same bytes); ``max_length`` is saved as
    ``model_max_length``, where ``textclf predict`` and transformers' pipelines truncate."""
    tokenizer.save_pretrained(folder)
    config_file = Path(folder) / "tokenizer_config.json"
    if config_file.is_file():
        config = {k: v for k, v in json.loads(config_file.read_text("utf-8")).items() if k not in _ENVIRONMENT_KEYS}
        if max_length is not None:
            config["model_max_length"] = max_length
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")


def load_tokenizer(checkpoint: str, trust_remote_code: bool = False):
    """The tokenizer of ``checkpoint``; a local folder must hold tokenizer files that fit its config.json."""
    source = resolve_checkpoint(checkpoint, need_config=False)
    folder = Path(source)
    if folder.is_dir() and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise PipelineError(
            f"{folder}: no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...): save the model's "
            "tokenizer beside it (tokenizer.save_pretrained(folder))"
        )
    tokenizer = _load("AutoTokenizer", source, "tokenizer", trust_remote_code=trust_remote_code)
    if folder.is_dir() and (folder / "config.json").is_file():
        config = _load("AutoConfig", source, "config", trust_remote_code=trust_remote_code)
        check_tokenizer_fits(tokenizer, config, folder)
    return tokenizer


def load_encoder(checkpoint: str, trust_remote_code: bool = False, tokenizer=None, loader="AutoModel", **kwargs):
    """The bare encoder (or ``loader``'s model) of a checked checkpoint; ``tokenizer``, when given, must fit it."""
    source = resolve_checkpoint(checkpoint)
    if Path(source).is_dir():
        check_model_folder(source, classifier=False, trust_remote_code=trust_remote_code)
    model = _load(loader, source, "model", use_safetensors=True, trust_remote_code=trust_remote_code, **kwargs)
    if tokenizer is not None:
        check_tokenizer_fits(tokenizer, model.config, checkpoint)
    return model


def load_classifier(checkpoint: str, label_names: list[str], trust_remote_code: bool = False, tokenizer=None):
    """A sequence classifier with the data's labels; a new head when the checkpoint has none."""
    labels = {"id2label": dict(enumerate(label_names)), "label2id": {name: i for i, name in enumerate(label_names)}}
    loader = "AutoModelForSequenceClassification"
    return load_encoder(checkpoint, trust_remote_code, tokenizer, loader, num_labels=len(label_names), **labels)


def load_finetuned(folder: Path | str, label_names: list[str] | None = None):
    """A fine-tuned classifier, checked whole first; every weight must come from the folder."""
    folder = Path(folder)
    check_model_folder(folder, label_names)
    return _load("AutoModelForSequenceClassification", str(folder), "model", strict=True, use_safetensors=True)


# A tokenizer folder holds one of these (transformers would otherwise build a stand-in from the config).
TOKENIZER_FILES = "tokenizer.json vocab.txt vocab.json tokenizer.model spiece.model sentencepiece.bpe.model".split()
TOKENIZER_FILES += ["sentencepiece.model"]


def check_tokenizer_fits(tokenizer, config, where: Path | str) -> None:
    """Refuse a tokenizer with more tokens than the embedding table, or far fewer (padding up to 5% is fine)."""
    vocab, size = getattr(config, "vocab_size", None), len(tokenizer)
    if isinstance(vocab, int) and vocab > 0 and (size > vocab or vocab - size > max(1024, vocab // 20)):
        raise PipelineError(
            f"{where}: the tokenizer has {size} tokens but the model's vocabulary (config.json vocab_size) has "
            f"{vocab}: they belong to different models (save the model's own tokenizer)"
        )


def _weight_names(folder: Path) -> set[str]:
    """The tensor names in the folder's safetensors (or its shards' index), without reading tensors."""
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    try:
        if index.is_file():
            return set(json.loads(index.read_text(encoding="utf-8"))["weight_map"])
        with safe_open(folder / "model.safetensors", framework="pt") as handle:
            return set(handle.keys())
    except Exception as exc:  # no model.safetensors, safetensors' own error type, bad JSON, no weight_map
        raise _damaged(_weights_files(folder), "model", exc) from None


def _labels_of(folder: Path) -> list[str]:
    """config.json's id2label as a list; the file itself (JSON, integer ids) was read by AutoConfig first."""
    raw = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("id2label")
    if not isinstance(raw, dict) or len(raw) < 2:  # AutoConfig would make up LABEL_0 and LABEL_1
        raise PipelineError(
            f"{folder / 'config.json'}: no id2label with two or more labels: not a fine-tuned "
            "classifier (fine-tune one with dvc repro, or pass another --model)"
        )
    by_id = {int(k): v for k, v in raw.items()}
    if sorted(by_id) != list(range(len(raw))):
        raise PipelineError(
            f"{folder / 'config.json'}: id2label ids {sorted(by_id)} must run 0..{len(raw) - 1}, "
            "each once (fix config.json or retrain)"
        )
    names = [by_id[i] for i in range(len(raw))]
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise PipelineError(f"{folder / 'config.json'}: id2label names {names} must be distinct non-empty strings")
    return names


def check_model_folder(
    folder: Path | str, label_names: list[str] | None = None, classifier: bool = True, trust_remote_code: bool = False
):
    """Whole or refused (one line): config.json, safetensors and a fitting tokenizer; a ``classifier`` also has an
    id2label 0..n-1 (``label_names``, when given) and its head's weights. Returns (config, tokenizer)."""
    from transformers import AutoModelForSequenceClassification

    folder = Path(folder)
    if not folder.is_dir():
        raise PipelineError(f"{folder}: model folder not found (train one with dvc repro, or pass another folder)")
    if not (folder / "config.json").is_file():
        raise PipelineError(f"{folder}: no config.json: not a model folder (train one with dvc repro)")
    config = _load("AutoConfig", str(folder), "config", trust_remote_code=trust_remote_code)
    tokenizer = load_tokenizer(str(folder), trust_remote_code)
    weights = _weight_names(folder)
    if not classifier:
        return config, tokenizer
    names = _labels_of(folder)
    if label_names is not None and names != list(label_names):
        raise PipelineError(
            f"{folder}: the model's labels {names} are not the data's {list(label_names)} "
            "(the model was trained on other data: run dvc repro)"
        )
    try:
        with torch.device("meta"):  # the architecture's tensor names, without memory or initialization
            model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise PipelineError(
            f"{folder}: config.json is not a sequence classifier transformers can build ({first_line(exc)})"
        ) from None
    missing = [k for k in model.state_dict() if not k.startswith(f"{model.base_model_prefix}.") and k not in weights]
    if missing:
        raise PipelineError(
            f"{folder}: no trained classification head ({', '.join(missing[:4])} not in its safetensors): "
            "an encoder, not a fine-tuned classifier (fine-tune it with dvc repro)"
        )
    return config, tokenizer


def max_positions(checkpoint: str, tokenizer) -> int:
    """The longest input of a checkpoint (10**6 when nothing limits it); a local folder is checked first."""
    source = resolve_checkpoint(checkpoint)
    local = Path(source).is_dir()
    config = check_model_folder(source, classifier=False)[0] if local else _load("AutoConfig", source, "config")
    return input_limit(config, tokenizer.model_max_length) or 10**6


def weights_sha256(model_dir: Path | str) -> str:
    """SHA-256 of ``model.safetensors`` (or its shards in name order), for the model card and run record."""
    files = sorted(Path(model_dir).glob("model*.safetensors"))
    if not files:
        raise PipelineError(f"{model_dir}: no model.safetensors (run the finetune stage first: dvc repro)")
    return sha256_files(files)
