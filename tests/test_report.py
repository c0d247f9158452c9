"""End to end: scripts/report.py on a tiny DVC repo (branch exp against main)."""

import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

from _dvc_fixture import git, make_repo

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "report.py"


def test_report_compares_branch_against_main(tmp_path):
    repo = make_repo(tmp_path / "repo")
    main_sha = git(repo, "rev-parse", "--short", "main").strip()
    head_sha = git(repo, "rev-parse", "--short", "HEAD").strip()

    subprocess.run([sys.executable, str(SCRIPT), "--base", "main", "--out", "report/"],
                   cwd=repo, check=True, capture_output=True, text=True)
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


SECRET = "a user's private sentence that must stay out of reports"
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
            f"label,mean_loss,rows,errors\nsadness,0.5,10,2\njoy,{loss_joy},12,{errors_joy}\n")
        (errors / "top_losses.csv").write_text(f"rank,row,text,label,predicted,loss\n1,3,{SECRET},joy,sadness,4.2\n"
                                               f"2,7,{SECRET} again,sadness,joy,3.1\n")

    git(repo, "checkout", "-q", "main")
    write(0.8, 4)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "errors on main")
    git(repo, "checkout", "-q", "exp")
    write(0.3, 1)  # the workspace: joy got better

    result = subprocess.run([sys.executable, str(SCRIPT), "--base", "main", "--out", "report/"],
                            cwd=repo, check=True, capture_output=True, text=True)
    text = (repo / "report" / "report.md").read_text()
    assert "## Per-label validation loss" in text
    assert re.search(r"\|\s*joy\s*\|\s*0\.8000\s*\|\s*0\.3000\s*\|\s*-0\.5000\s*\|\s*4\s*\|\s*1\s*\|", text), text
    assert re.search(r"\|\s*sadness\s*\|\s*0\.5000\s*\|\s*0\.5000\s*\|\s*\+0\.0000\s*\|", text)
    assert SECRET not in text and SECRET not in result.stdout + result.stderr


def test_side_by_side_panels_put_the_base_left_whatever_the_names():
    """`zbase` sorts after `workspace`: without order_revisions the base panel would be on the right."""
    import json

    import vl_convert

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from report import order_revisions

    template = (Path(__file__).resolve().parents[1] / ".dvc/plots/umap.json").read_text()
    rows = [{"x": i, "y": i, "label": "joy", "rev": rev} for rev in ("workspace", "zbase") for i in range(3)]
    text = template.replace('"<DVC_METRIC_DATA>"', json.dumps(rows)).replace("<DVC_METRIC_TITLE>", "umap")
    spec = json.loads(text.replace("<DVC_METRIC_X>", "x").replace("<DVC_METRIC_Y>", "y"))

    def panel_titles(svg: str) -> list[str]:
        return [t for t in re.findall(r"<text[^>]*>([^<]+)</text>", svg) if t in ("zbase", "workspace")]

    assert panel_titles(vl_convert.vegalite_to_svg(spec)) == ["workspace", "zbase"]  # DVC's order
    ordered = order_revisions(spec, ["zbase", "workspace"])
    assert panel_titles(vl_convert.vegalite_to_svg(ordered)) == ["zbase", "workspace"]
