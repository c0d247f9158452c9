"""End to end: `textclf report` on a tiny DVC repo (branch exp against main)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

from _dvc_fixture import git, make_repo
from conftest import ROOT


def report(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m textclf report ...`` in ``repo``, with this checkout's package."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "textclf", "report", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )


def test_report_compares_branch_against_main(tmp_path):
    repo = make_repo(tmp_path / "repo")
    main_sha = git(repo, "rev-parse", "--short", "main").strip()
    head_sha = git(repo, "rev-parse", "--short", "HEAD").strip()

    report(repo, "--base", "main", "--out", "report/")
    out = repo / "report"
    text = (out / "report.md").read_text()
    heading = text.splitlines()[0]

    # the heading names both sides
    assert heading.startswith("# ")
    assert "`main`" in heading and main_sha in heading
    assert "workspace" in heading and head_sha in heading and "exp" in heading

    # params and metrics tables, with old and new values of what changed
    assert re.search(r"\|\s*params\.yaml\s*\|\s*train\.lr\s*\|\s*0\.1\s*\|\s*0\.01\s*\|", text)
    assert re.search(r"\|\s*metrics\.json\s*\|\s*accuracy\s*\|\s*0\.5\s*\|\s*0\.75\s*\|", text)

    # every plot is there: 3 Vega-Lite renderings + the image plot from both revisions
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 5, links
    for title in ("Confusion matrix", "Scatter", "Loss", "image.png"):
        assert f"### {title}" in text
    for link in links:
        assert not Path(link).is_absolute()
        with Image.open(out / link) as img:
            img.load()
            assert img.width > 10 and img.height > 10

    # the copied image plot is each revision's own file (main red, exp blue)
    colours = {}
    for link in links:
        if "image" in link:
            with Image.open(out / link) as img:
                colours["main" if "_main_" in link else "workspace"] = img.convert("RGB").getpixel((1, 1))
    assert colours == {"main": (200, 30, 30), "workspace": (30, 30, 200)}
    # side by side in DVC's order, as on its page: the workspace, then the base
    assert "| workspace | main |" in text


SECRET = "a user's private sentence that must stay out of reports"
HOSTILE = "a|<b>"
TOP_LOSSES_PLOT = """\
  - plots/errors/top_losses.csv:
      x: rank
      y: loss
"""


def test_report_has_the_per_label_loss_table_and_never_the_row_texts(tmp_path):
    repo = make_repo(tmp_path / "repo", extra_dvc_yaml=TOP_LOSSES_PLOT)
    errors = repo / "plots" / "errors"

    def write(loss_joy: float, errors_joy: int) -> None:
        errors.mkdir(parents=True, exist_ok=True)
        (errors / "label_loss.csv").write_text(
            f"label,mean_loss,rows,errors\nsadness,0.5,10,2\njoy,{loss_joy},12,{errors_joy}\n{HOSTILE},1,1,1\n"
        )
        (repo / "metrics.json").write_text(json.dumps({"accuracy": 0.5 + loss_joy / 10, HOSTILE: loss_joy}))
        (errors / "top_losses.csv").write_text(
            f"rank,row,text,label,predicted,loss\n1,3,{SECRET},joy,sadness,4.2\n2,7,{SECRET} again,sadness,joy,3.1\n"
        )

    git(repo, "checkout", "-q", "main")
    write(0.8, 4)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "errors on main")
    git(repo, "checkout", "-q", "exp")
    write(0.3, 1)  # the workspace: joy got better

    result = report(repo, "--base", "main", "--out", "report/")
    text = (repo / "report" / "report.md").read_text()
    assert "## Per-label validation loss" in text
    assert re.search(r"\|\s*joy\s*\|\s*0\.8000\s*\|\s*0\.3000\s*\|\s*-0\.5000\s*\|\s*4\s*\|\s*1\s*\|", text), text
    assert re.search(r"\|\s*sadness\s*\|\s*0\.5000\s*\|\s*0\.5000\s*\|\s*\+0\.0000\s*\|", text)
    assert SECRET not in text and SECRET not in result.stdout + result.stderr
    # a label name with markup and a table separator: escaped in the per-label table and in DVC's metrics table
    assert "<b>" not in text and "a\\|\\<b\\>" in text
    assert re.search(r"\|\s*metrics\.json\s*\|\s*a\|\u2039b\u203a\s*\|", text), text


def test_side_by_side_panels_follow_the_data_order_in_both_templates():
    """DVC lists the workspace first, then the revisions as given (and so orders its image plots); the
    confusion and UMAP templates keep that order, where Vega-Lite would sort `abase` before `workspace`."""
    import vl_convert

    rows = [
        {
            "x": i,
            "y": i,
            "actual": "joy",
            "predicted": "joy",
            "actual_id": 0,
            "predicted_id": 0,
            "weight": 1,
            "label": "joy",
            "rev": rev,
        }
        for rev in ("workspace", "abase")
        for i in range(3)
    ]
    for name, x, y in (("umap", "x", "y"), ("confusion", "predicted", "actual")):
        text = (ROOT / f".dvc/plots/{name}.json").read_text()
        text = text.replace('"<DVC_METRIC_DATA>"', json.dumps(rows)).replace("<DVC_METRIC_TITLE>", name)
        svg = vl_convert.vegalite_to_svg(json.loads(text.replace("<DVC_METRIC_X>", x).replace("<DVC_METRIC_Y>", y)))
        titles = [t for t in re.findall(r"<text[^>]*>([^<]+)</text>", svg) if t in ("abase", "workspace")]
        assert titles == ["workspace", "abase"], (name, titles)


def test_a_folder_of_the_users_or_a_bad_revision_is_refused_in_one_line(tmp_path):
    repo = make_repo(tmp_path / "repo")
    mine = repo / "notes"
    (mine / "plots").mkdir(parents=True)
    (mine / "report.md").write_text("my own notes")
    (mine / "plots" / "figure.png").write_text("mine")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bad = (["--base", "main", "--out", "notes"], "notes"), (["--base", "no-such-rev"], "no-such-rev")
    option = (["--base=--output=written.txt"], "--output=written.txt")  # a value never becomes an option of git
    for args, names in (*bad, option):
        res = subprocess.run(
            [sys.executable, "-m", "textclf", "report", *args], cwd=repo, capture_output=True, text=True, env=env
        )
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and res.stderr.startswith("error: "), res.stderr
        assert names in res.stderr
    assert (mine / "report.md").read_text() == "my own notes" and (mine / "plots" / "figure.png").read_text() == "mine"
    assert not (repo / "report").exists() and not list(repo.glob("written.txt*"))
    report(repo, "--base", "main", "--out", "report/")
    report(repo, "--base", "main", "--out", "report/")  # its own folder: replaced
    assert (repo / "report" / "report.md").is_file()


def test_the_report_leads_with_the_headline_then_the_details_beside_it(tmp_path):
    """Every DVC metric first, unchanged ones too (the headline); then params; then what changed in the result
    files that are not DVC metrics (per-label scores, intervals), which `dvc metrics diff` alone leaves out."""
    repo = make_repo(tmp_path / "repo")
    (repo / "metrics").mkdir()
    (repo / "metrics/finetuned.json").write_text(json.dumps({"validation": {"f1_per_label": {"joy": 0.5}}}))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "details")
    (repo / "metrics.json").write_text(json.dumps({"accuracy": 0.75, "loss": 0.25, "unchanged": 1}))
    git(repo, "commit", "-qam", "unchanged metric")
    (repo / "metrics/finetuned.json").write_text(json.dumps({"validation": {"f1_per_label": {"joy": 0.8}}}))
    (repo / "metrics.json").write_text(json.dumps({"accuracy": 0.8, "loss": 0.25, "unchanged": 1}))
    report(repo, "--base", "HEAD", "--out", "report/")
    text = (repo / "report/report.md").read_text()
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections[:3] == ["## Headline", "## Parameters", "## Details (results beside the headline)"], sections
    headline = text.split("## Headline", 1)[1].split("## Parameters", 1)[0]
    assert re.search(r"\|\s*metrics\.json\s*\|\s*unchanged\s*\|\s*1\s*\|\s*1\s*\|", headline), headline
    details = text.split("## Details (results beside the headline)", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"validation\.f1_per_label\.joy\s*\|\s*0\.5\s*\|\s*0\.8\s*\|", details), details
