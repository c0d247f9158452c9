#!/usr/bin/env python
"""Print the pip requirement giving DVC the plugin for each configured remote, e.g. `dvc[s3]==3.67.1`.

    python -m pip install $(python .ci/dvc_remote_plugin.py)

Reads the remotes as DVC does (.dvc/config, then config.local), maps each URL scheme to DVC's extra, pinned to
requirements.txt's dvc so pip keeps that version. Local folders and http(s) need none: prints nothing then.
A scheme DVC does not know is an error (exit 1, DVC's message), not a silent skip.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

EXTRAS = {"webdavs": "webdav"} | {
    s: s for s in ("s3", "gs", "azure", "ssh", "gdrive", "hdfs", "webhdfs", "oss", "webdav")
}
BUILTIN = {"", "file", "http", "https"}


def _config(root: Path):
    from dvc.config import Config, ConfigError

    try:
        return Config(dvc_dir=str(Path(root) / ".dvc"))
    except ConfigError as exc:  # DVC's own check: an unsupported URL scheme, a bad option
        raise SystemExit(f"error: {exc}") from None


def default_remote(root: Path = Path(".")) -> str:
    """The default remote's name (`core.remote`), or '' when there is none."""
    return str(_config(root)["core"].get("remote") or "").strip()


def requirements(root: Path) -> list[str]:
    extras = set()
    for name, remote in sorted(_config(root)["remote"].items()):
        url = remote["url"]
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in BUILTIN:
            if scheme not in EXTRAS:
                raise SystemExit(f"remote {name!r}: no known DVC plugin for {scheme}:// ({url})")
            extras.add(EXTRAS[scheme])
    pin = re.search(r"^\s*dvc\s*==\s*([^\s;#]+)", (Path(root) / "requirements.txt").read_text(), re.M)
    if extras and pin is None:
        raise SystemExit("requirements.txt pins no dvc==VERSION")
    return [f"dvc[{','.join(sorted(extras))}]=={pin.group(1)}"] if extras else []


if __name__ == "__main__":
    print("\n".join(requirements(Path(sys.argv[1] if len(sys.argv) > 1 else "."))))
