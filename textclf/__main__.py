"""The package's commands: ``python -m textclf <command>`` or, once installed, ``textclf <command>``.

    python -m textclf predict "i feel great today"     # from the project root: this checkout's code
    textclf predict --input tweets.csv --output out.jsonl
    textclf report --base main                         # report/report.md: the workspace against main

Commands: predict (label texts with a fine-tuned model), export (the model folder with its card as README.md),
sweep (mean ± spread over seeds of a `dvc exp run --queue` grid), report (the workspace against a git revision,
as Markdown with PNGs). ``textclf <command> --help`` tells more.
"""

from __future__ import annotations

import importlib
import sys

from textclf.common.errors import print_error

# command -> module with a ``cli(argv) -> int``; imported only when its command runs
COMMANDS = {name: f"textclf.commands.{name}" for name in ("predict", "export", "sweep", "report")}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    usage = f"usage: textclf {{{','.join(COMMANDS)}}} [args...]   (textclf <command> --help)"
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip() if argv else usage, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print_error(f"unknown command '{command}'", note=f"; {usage}")
        return 2
    return importlib.import_module(COMMANDS[command]).cli(rest)


if __name__ == "__main__":
    sys.exit(main())
