#!/usr/bin/env python3
"""Write one CI tier's pull-request comment from its report folder (DIR/report.md and DIR/plots/).

    python3 .ci/pr_comment.py --title "GPU tier" --report DIR --result success [--reason TEXT] \
        [--run-url URL] [--images] --out report/comment.md

The comment: a heading with the job result, the reason, the report with its headings one level down, the run's
link. Image links are made relative to --out's folder with --images; without it (`cml comment update
--publish=false` cannot show local files) they become text pointing at the run's artifacts. Without a report
the comment says so.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def comment(title, report: Path | None, result, out_dir: Path, images: bool, reason="", run_url="") -> str:
    lines = [f"# textclf CI, {title}: {result or 'not run'}", ""] + ([reason, ""] if reason else [])
    if report is not None and (report / "report.md").is_file():
        rel = os.path.relpath(report, out_dir)

        def link(match: re.Match) -> str:
            alt, target = match.groups()
            if re.match(r"^[a-z]+://", target):
                return match.group(0)
            return f"![{alt}]({rel}/{target})" if images else f"*{alt or target}* (image: in the run's artifacts)"

        body = IMAGE.sub(link, (report / "report.md").read_text(encoding="utf8"))
        lines += [re.sub(r"^(#+) ", r"#\1 ", body, flags=re.M).rstrip(), ""]
    elif result not in ("", "skipped"):
        lines += [f"No report: the tier ended with `{result}` without one; see the run.", ""]
    if run_url:
        lines += [f"Run: {run_url} (reports and plots: its `ci-report-*` artifacts)."]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("title", "out"):
        parser.add_argument(f"--{flag}", required=True)
    for flag in ("report", "result", "reason", "run-url"):
        parser.add_argument(f"--{flag}", default="")
    parser.add_argument("--images", action="store_true", help="keep image links (CML uploads them)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = Path(args.report) if args.report else None
    text = comment(args.title, report, args.result, out.parent, args.images, args.reason, args.run_url)
    out.write_text(text, encoding="utf8")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
