"""Write a Markdown report comparing the workspace with a base git revision (textclf report).

    textclf report --base main --out report/      # or: python -m textclf report ..., make report BASE=main

Headline, params, DETAILS and per-label loss as tables, every DVC plot as a PNG, for CI's pull-request comment.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from textclf.common.errors import PipelineError, run_cli
from textclf.common.escape import inert, markdown_cell, terminal
from textclf.reporting.model_card import markdown_table

WORKSPACE = "workspace"
# the file that marks an --out folder as the report's own, so that a rerun may replace it
MARKER = ".textclf-report"
# the error_analysis stage's per-label table (label, mean_loss, rows, errors)
LABEL_LOSS = "plots/errors/label_loss.csv"
DVC = [sys.executable, "-m", "dvc"]  # this interpreter's dvc, as `textclf sweep` runs it
# results beside the headline that dvc.yaml does not declare as metrics: compared when the workspace has them
DETAILS = ("metrics/finetuned.json", "metrics/baselines.json", "metrics/error_analysis.json", "dvclive/metrics.json")


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def _failed(what: str, res: subprocess.CompletedProcess) -> list[str]:
    return [f"`{what}` failed:", "", "```", res.stderr.strip(), "```", ""]


def _git(cwd: Path, *args: str) -> str:
    res = _run(["git", *args], cwd)
    if res.returncode != 0:
        reason = (res.stderr.strip().splitlines() or ["failed"])[-1]
        raise PipelineError(f"{cwd}: git {' '.join(args)}: {reason}")
    return res.stdout.strip()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "plot"


def _section(title: str, args: list[str], cwd: Path, empty: str) -> list[str]:
    """A heading and the Markdown table a dvc command prints (inert: metric keys hold label names)."""
    res = _run([*DVC, *args], cwd)
    if res.returncode != 0:
        return [f"## {title}", "", *_failed(" ".join(args), res)]
    return [f"## {title}", "", inert(res.stdout.strip()) or empty, ""]


def label_loss_section(repo: Path, base: str) -> list[str]:
    """Per-label mean validation loss and errors, base vs workspace (from LABEL_LOSS; nothing else is read)."""
    res = _run(["git", "show", f"{base}:{LABEL_LOSS}"], repo)
    path = repo / LABEL_LOSS
    texts = (res.stdout if res.returncode == 0 else "", path.read_text(encoding="utf8") if path.is_file() else "")
    old, new = ({row["label"]: row for row in csv.DictReader(io.StringIO(t)) if row.get("label")} for t in texts)
    if not old and not new:
        return []

    def number(rows: dict, label: str, key: str) -> float | None:
        try:
            return float(rows[label][key])
        except (KeyError, TypeError, ValueError):  # no row, no value or not a number
            return None

    table = []
    for label in dict.fromkeys([*new, *old]):
        before, after = number(old, label, "mean_loss"), number(new, label, "mean_loss")
        change = None if before is None or after is None else f"{after - before:+.4f}"
        errors = (number(rows, label, "errors") for rows in (old, new))
        table.append([label, before, after, change, *(None if e is None else f"{e:.0f}" for e in errors)])
    header = ["label", base, WORKSPACE, "change", f"errors ({base})", f"errors ({WORKSPACE})"]
    intro = f"Mean cross-entropy per gold label (`{LABEL_LOSS}`); lower is better."
    return ["## Per-label validation loss (error analysis)", "", intro, "", *markdown_table(header, table), ""]


def collect_plots(repo: Path, base: str, out: Path) -> list[str]:
    """Render (vl-convert: no browser, no network) or copy every plot into out/plots/; the lines linking them."""
    import vl_convert as vlc

    plots_dir = out / "plots"
    shutil.rmtree(plots_dir, ignore_errors=True)
    plots_dir.mkdir(parents=True)
    lines = ["## Plots", ""]
    with tempfile.TemporaryDirectory(prefix="dvc-plots-") as tmp:
        res = _run([*DVC, "plots", "diff", base, "--json", "-o", tmp], repo)
        if res.returncode != 0:
            return lines + _failed("dvc plots diff", res)
        data = json.loads(res.stdout or "{}").get("data", {})
        if not data:
            return lines + ["No plots declared.", ""]
        for n, (plot_id, entries) in enumerate(data.items()):
            lines += [f"### {markdown_cell(plot_id)}", ""]
            images = []
            for entry in entries:
                revs = entry.get("revisions") or []
                if entry.get("type") == "vega":
                    name, spec = f"{n:02d}_{_slug(plot_id)}.png", entry["content"]
                    to_png = vlc.vega_to_png if "/schema/vega/" in str(spec.get("$schema")) else vlc.vegalite_to_png
                    try:
                        (plots_dir / name).write_bytes(to_png(spec, scale=1))
                    except Exception as exc:  # a broken spec should not lose the rest of the report
                        lines += [f"Could not render: {type(exc).__name__}: {exc}", ""]
                        continue
                    lines += [f"![{plot_id} ({' vs '.join(revs)})](plots/{name})", ""]
                elif entry.get("type") == "image":
                    rev = revs[0] if revs else "?"
                    name = f"{n:02d}_{_slug(rev)}_{_slug(Path(plot_id).name)}"
                    shutil.copyfile(entry["url"], plots_dir / name)
                    images.append((rev, name))
            if images:  # DVC's order, as in the Vega plots: the workspace, then the base
                lines += [
                    "| " + " | ".join(markdown_cell(rev) for rev, _ in images) + " |",
                    "|" + "---|" * len(images),
                    "| " + " | ".join(f"![{rev}](plots/{name})" for rev, name in images) + " |",
                    "",
                ]
    return lines


def claim_folder(out: Path) -> None:
    """Make ``out`` the report's folder: new, empty or marked by an earlier report; else refuse."""
    if out.exists() and not out.is_dir():
        raise PipelineError(f"{out}: not a folder: give --out a folder for the report")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise PipelineError(f"{out}: a folder the report did not write: give --out a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by textclf report: a rerun replaces this folder's report.md and plots/\n")


def build_report(repo: Path, base: str, out: Path, note: str = "") -> Path:
    """Write out/report.md (and out/plots/) comparing the workspace of ``repo`` with ``base``."""
    repo, out = repo.resolve(), out.resolve()
    if base.startswith("-"):  # a value is one argument: it never becomes an option of git or dvc
        raise PipelineError(f"--base {base!r}: not a revision (a revision never starts with '-')")
    base_sha = _git(repo, "rev-parse", "--short", "--verify", "--end-of-options", f"{base}^{{commit}}")
    head_sha = _git(repo, "rev-parse", "--short", "HEAD")
    branch = _git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    head_desc = f"HEAD `{head_sha}`" + (f" on `{branch}`" if branch != "HEAD" else "")
    head_desc += ", with uncommitted changes" if _git(repo, "status", "--porcelain", "--untracked-files=no") else ""
    claim_folder(out)

    lines = [f"# DVC report: `{base}` ({base_sha}) vs workspace ({head_desc})", ""]
    lines += _section("Headline", ["metrics", "diff", base, "--all", "--md"], repo, "No metrics.")
    lines += _section("Parameters", ["params", "diff", base, "--md"], repo, "No parameter changed.")
    if details := [name for name in DETAILS if (repo / name).is_file()]:
        args = ["metrics", "diff", base, "--md", "--targets", *details]
        lines += _section("Details (results beside the headline)", args, repo, "Nothing changed.")
    lines += label_loss_section(repo, base)
    lines += collect_plots(repo, base, out)
    if note:
        lines += ["---", "", note, ""]
    report = out / "report.md"
    report.write_text("\n".join(lines).rstrip() + "\n", encoding="utf8")
    return report


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="textclf report", description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git revision to compare against (default: main)")
    parser.add_argument("--out", default="report", help="output folder (default: report/)")
    parser.add_argument("--repo", default=".", help="repository root (default: .)")
    parser.add_argument("--note", default="", help="Markdown paragraph appended at the end (CI links its artifact)")
    args = parser.parse_args(argv)
    body = lambda: print(terminal(build_report(Path(args.repo), args.base, Path(args.out), note=args.note)))  # noqa: E731
    return run_cli(body, args.out)


if __name__ == "__main__":
    sys.exit(cli())
