#!/usr/bin/env python
"""Assemble the pull-request comment of a CI run from the tiers' reports.

    python scripts/ci_comment.py --cpu DIR --cpu-result success --gpu DIR --gpu-result skipped \
        --gpu-reason "..." --run-url URL [--images] --out report/comment.md

DIR holds a tier's report.md (scripts/report.py, plus the tier's own sections) and its plots/.
One Markdown file comes out: a heading, the CPU tier's section, the GPU tier's section (or why it did
not run), a link to the run. Image links are rewritten relative to --out's folder; without --images
(the repository variable CML_PUBLISH_IMAGES is not `true`) they become text pointing at the run's
`ci-report-*` artifacts, because `cml comment update --publish=false` cannot show local files.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def section(title: str, folder: str | None, result: str, out_dir: Path, images: bool, why: str = "") -> list[str]:
    lines = [f"## {title}: {result or 'not run'}", ""]
    report = Path(folder) / "report.md" if folder else None
    if report is None or not report.is_file():
        lines += [why or f"No report: the job ended with `{result or 'no result'}` before writing one; see the run.", ""]
        return lines
    text = report.read_text(encoding="utf8")
    rel = os.path.relpath(report.parent, out_dir)

    def link(match: re.Match) -> str:
        alt, target = match.groups()
        if re.match(r"^[a-z]+://", target):
            return match.group(0)
        if images:
            return f"![{alt}]({rel}/{target})"
        return f"*{alt or target}* (image: in the run's artifacts)"

    body = IMAGE.sub(link, text)
    # the tier report's own headings go one level down
    body = re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", body, flags=re.M)
    return lines + [body.rstrip(), ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", help="folder of the CPU tier's report")
    parser.add_argument("--cpu-result", default="", help="needs.cpu.result")
    parser.add_argument("--gpu", help="folder of the GPU tier's report")
    parser.add_argument("--gpu-result", default="", help="needs.after-gpu.result")
    parser.add_argument("--gpu-reason", default="", help="why the GPU tier ran or not (the plan job's reason)")
    parser.add_argument("--run-url", default="", help="link to the workflow run")
    parser.add_argument("--images", action="store_true", help="keep image links (CML uploads them)")
    parser.add_argument("--out", required=True, help="the comment's Markdown file")
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# CI report", ""]
    if args.run_url:
        lines += [f"Run: {args.run_url} (reports and plots: its `ci-report-*` artifacts).", ""]
    lines += section("CPU tier", args.cpu, args.cpu_result, out.parent, args.images)
    gpu_why = f"GPU tier did not run: {args.gpu_reason}" if args.gpu_result in ("", "skipped") else ""
    lines += section("GPU tier", args.gpu, args.gpu_result or "skipped", out.parent, args.images, gpu_why)
    if args.gpu_reason and args.gpu_result not in ("", "skipped"):
        lines += [f"GPU tier ran because: {args.gpu_reason}", ""]
    out.write_text("\n".join(lines).rstrip() + "\n", encoding="utf8")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
