#!/usr/bin/env python
"""Print the pip requirement that gives DVC the plugin for each configured remote, e.g. `dvc[s3]==3.67.1`.

    python -m pip install $(python .ci/dvc_remote_plugin.py)

Reads the remotes of .dvc/config (and config.local) and maps each URL's scheme to DVC's extra
(s3 -> dvc[s3] = dvc-s3, gs -> dvc[gs], azure -> dvc[azure], ssh, gdrive, hdfs, webhdfs, oss, webdav),
pinned to the dvc version of requirements.txt so pip keeps that version. Local folders and http(s)
need nothing: prints nothing then. An unknown scheme is an error (exit 1), not a silent skip.
Standard library only (DVC's config is INI), so it runs before DVC is installed.
"""

from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path

EXTRAS = {
    "s3": "s3",
    "gs": "gs",
    "gcs": "gs",
    "azure": "azure",
    "ssh": "ssh",
    "gdrive": "gdrive",
    "hdfs": "hdfs",
    "webhdfs": "webhdfs",
    "oss": "oss",
    "webdav": "webdav",
    "webdavs": "webdav",
}
BUILTIN = {"", "file", "http", "https"}


def _configs(root: Path) -> list[configparser.ConfigParser]:
    """The repository's .dvc/config and .dvc/config.local, parsed (the second overrides the first)."""
    parsers = []
    for name in ("config", "config.local"):
        path = Path(root) / ".dvc" / name
        if path.is_file():
            parser = configparser.ConfigParser()
            parser.read(path, encoding="utf8")
            parsers.append(parser)
    return parsers


def remote_urls(root: Path) -> dict[str, str]:
    """{remote name: url} of the repository's DVC config."""
    urls = {}
    for parser in _configs(root):
        for section in parser.sections():
            match = re.fullmatch(r"""['"]?remote\s+"?([^'"]+)"?['"]?""", section.strip())
            if match and parser.has_option(section, "url"):
                urls[match.group(1)] = parser.get(section, "url")
    return urls


def default_remote(root: Path = Path(".")) -> str:
    """The default remote's name (`core.remote` in .dvc/config or config.local), or '' when there is none."""
    name = ""
    for parser in _configs(root):
        name = parser.get("core", "remote", fallback=name)
    return name.strip()


def dvc_pin(root: Path) -> str:
    for line in (root / "requirements.txt").read_text().splitlines():
        match = re.match(r"^\s*dvc\s*==\s*([^\s;#]+)", line)
        if match:
            return match.group(1)
    raise SystemExit("requirements.txt pins no dvc==VERSION")


def requirements(root: Path) -> list[str]:
    extras = set()
    for name, url in sorted(remote_urls(root).items()):
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme in BUILTIN:
            continue
        if scheme not in EXTRAS:
            raise SystemExit(f"remote {name!r}: no known DVC plugin for {scheme}:// ({url})")
        extras.add(EXTRAS[scheme])
    if not extras:
        return []
    return [f"dvc[{','.join(sorted(extras))}]=={dvc_pin(root)}"]


def main(argv: list[str] | None = None) -> int:
    root = Path(argv[0]) if argv else Path(".")
    for requirement in requirements(root):
        print(requirement)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
