#!/usr/bin/env python3
"""Write one CI tier's pull-request comment from its report folder.

    python3 .ci/pr_comment.py --title "GPU tier" --report DIR --result success [--reason TEXT] \
        [--run-url URL] [--images] --out report/comment.md

DIR holds the tier's report.md (textclf report plus the tier's own sections) and its plots/. Out comes a
heading with the job result, the reason the tier ran (or why not), the report with its headings one level down,
and the link to the run. Image links are made relative to --out's folder; without --images (the variable
CML_PUBLISH_IMAGES is not `true`) they become text pointing at the run's artifacts, since
`cml comment update --publish=false` cannot show local files. Without a report, the comment says so.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
RERUN = (
    "After a failure use *Re-run all jobs*, not *Re-run failed jobs*: the GPU job's runner label belongs to "
    "the first attempt, whose machine is gone."
)


def comment(
    title: str, report: Path | None, result: str, out_dir: Path, images: bool, reason: str = "", run_url: str = ""
) -> str:
    """The comment's Markdown."""
    lines = [f"# textclf CI, {title}: {result or 'not run'}", ""]
    if reason:
        lines += [reason, ""]
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
        lines += [f"No report: the tier ended with `{result}` before writing one; see the run.", ""]
    if result in ("failure", "cancelled") and title.startswith("GPU"):
        lines += [RERUN, ""]
    if run_url:
        lines += [f"Run: {run_url} (reports and plots: its `ci-report-*` artifacts)."]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--title", required=True, help="the tier: CPU tier, GPU tier")
    parser.add_argument("--report", help="folder of the tier's report.md")
    parser.add_argument("--result", default="", help="the result of the tier's last job")
    parser.add_argument("--reason", default="", help="why the tier ran or not (the GPU plan's reason)")
    parser.add_argument("--run-url", default="", help="link to the workflow run")
    parser.add_argument("--images", action="store_true", help="keep image links (CML uploads them)")
    parser.add_argument("--out", required=True, help="the comment's Markdown file")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        comment(
            args.title,
            Path(args.report) if args.report else None,
            args.result,
            out.parent,
            args.images,
            args.reason,
            args.run_url,
        ),
        encoding="utf8",
    )
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
