"""The page template of `dvc plots show` / `dvc plots diff` with Vega inlined, so the page works offline anywhere.

    python -m textclf.commands.plots_page     # rewrite .dvc/plots_template.html from node_modules (npm ci)

No ``{scripts}`` placeholder: DVC would fill it with CDN script tags.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from textclf.common.errors import print_error
from textclf.common.escape import terminal

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / ".dvc" / "plots_template.html"
# package -> its minified browser build, in load order (vega-embed needs vega and vega-lite)
BUILDS = {"vega": "build/vega.min.js", "vega-lite": "build/vega-lite.min.js", "vega-embed": "build/vega-embed.min.js"}
HEAD = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plots</title>
    <!-- written by `python -m textclf.commands.plots_page`: Vega, Vega-Lite and vega-embed are inlined below
         (from node_modules, `npm ci`), so this page needs no network and no files beside it -->
    <style>
        body { font-family: sans-serif; }
        table { border-spacing: 15px; }
    </style>
"""
TAIL = """</head>
<body>
    {plot_divs}
</body>
</html>
"""


def build(node_modules: Path) -> str:
    """The template text with each package's build inlined in a <script> element."""
    parts = [HEAD]
    for package, build_file in BUILDS.items():
        meta = json.loads((node_modules / package / "package.json").read_text(encoding="utf-8"))
        code = (node_modules / package / build_file).read_text(encoding="utf-8")
        if "</script" in code.lower() or "{plot_divs}" in code or "{refresh_tag}" in code:
            raise ValueError(f"{package}/{build_file}: cannot be inlined into the page")
        parts.append(
            f"    <!-- {package} {meta['version']} ({meta.get('license', '?')}) -->\n"
            f"    <script>{code.strip()}</script>\n"
        )
    return "".join(parts) + TAIL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node-modules", type=Path, default=ROOT / "node_modules")
    parser.add_argument("--out", type=Path, default=TEMPLATE)
    args = parser.parse_args(argv)
    missing = [p for p, f in BUILDS.items() if not (args.node_modules / p / f).is_file()]
    if missing:
        print_error(f"{args.node_modules}: no {', '.join(missing)}: run `npm ci` first")
        return 2
    args.out.write_text(build(args.node_modules), encoding="utf-8")
    print(terminal(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
