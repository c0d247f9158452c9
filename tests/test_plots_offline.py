"""`dvc plots show` renders every declared plot with no network, using the shipped template
(.dvc/plots_template.html) that loads Vega from node_modules/ instead of a CDN.

Needs: node_modules (npm ci) and /usr/bin/chromium (apt-get install chromium), both installed by
.ci/install-extras.sh. Writes a screenshot to test-artifacts/plots.png.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from _dvc_fixture import DVC, dvc, make_repo

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / ".dvc" / "plots_template.html"
CHROMIUM = Path("/usr/bin/chromium")
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".gif", ".svg"}
VEGA_FILES = ["vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js"]
ARTIFACTS = ROOT / "test-artifacts"


def _require_tools():
    missing = [f for f in VEGA_FILES if not (ROOT / "node_modules" / f).is_file()]
    if missing:
        msg = f"node_modules lacks {', '.join(missing)}: run `npm ci` at the repository root"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: .ci/install-extras.sh should have installed it)")
        pytest.skip(msg)
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (see .ci/install-extras.sh)")


def _chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    """Headless Chromium with the network closed: a dead proxy and every host name unresolvable."""
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
           "--disable-extensions", f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9",
           "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost", "--allow-file-access-from-files",
           "--virtual-time-budget=10000", *extra, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _plots_repo(tmp_path: Path) -> Path:
    """The report fixture plus the real pipeline's plots section, its plot files and custom template."""
    repo = make_repo(tmp_path / "repo")
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())
    spec["plots"] += yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    for folder in ("plots", "dvclive"):
        shutil.copytree(ROOT / folder, repo / folder)
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots", dirs_exist_ok=True)
    (repo / "node_modules").symlink_to(ROOT / "node_modules", target_is_directory=True)
    return repo


def _expected_counts(repo: Path) -> tuple[int, int]:
    """(Vega plots, image plots) declared in the top-level plots of dvc.yaml."""
    vega = images = 0
    for entry in yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]:
        if isinstance(entry, str) and Path(entry).suffix.lower() in IMAGE_EXTS:
            images += 1
        else:
            vega += 1
    return vega, images


def test_configured_template_is_the_offline_one():
    value = subprocess.run([DVC, "config", "plots.html_template"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.strip()
    assert (ROOT / ".dvc" / value).resolve() == TEMPLATE.resolve()  # DVC resolves it against .dvc/
    html = TEMPLATE.read_text()
    assert "{plot_divs}" in html
    assert "{scripts}" not in html  # DVC fills that placeholder with CDN <script> tags
    assert not re.search(r"https?://", re.sub(r"<!--.*?-->", "", html, flags=re.S))
    for f in VEGA_FILES:
        assert f'src="../node_modules/{f}"' in html


@pytest.mark.slow
def test_plots_show_renders_offline(tmp_path):
    _require_tools()
    repo = _plots_repo(tmp_path)
    dvc(repo, "plots", "show", "--html-template", str(TEMPLATE))
    page = repo / "dvc_plots" / "index.html"
    html = page.read_text()
    assert "cdn.jsdelivr" not in html and "{plot_divs}" not in html

    res = _chromium(page, tmp_path / "profile", "--dump-dom")
    dom = res.stdout
    assert "</html>" in dom, f"chromium produced no DOM (rc={res.returncode}): {res.stderr[-2000:]}"
    assert "dvc-missing-vega\">" not in dom, "the page could not load Vega from node_modules"

    n_vega, n_images = _expected_counts(repo)
    assert (n_vega, n_images) == (10, 5)  # 3 fixture + 7 pipeline Vega plots; 1 + 4 image plots

    # vega-embed adds class "vega-embed" to each plot's container once it embedded the spec
    containers = re.findall(r'<div id="([^"]+)" class="vega-embed[^"]*">(.*?)<div class="vega-actions">', dom, re.S)
    assert len(containers) == n_vega, [c[0] for c in containers]
    for plot_id, body in containers:
        marks = re.search(r'<canvas width="(\d+)" height="(\d+)" class="marks"|<svg[^>]*class="marks"[^>]*>\s*<[^/]',
                          body)
        assert marks, f"plot {plot_id} has no rendered <canvas>/<svg>"
        if marks.group(1):
            assert int(marks.group(1)) > 0 and int(marks.group(2)) > 0, plot_id

    imgs = re.findall(r'<img src="([^"]+)"', dom)
    assert len(imgs) == n_images, imgs
    for src in imgs:
        assert (page.parent / src).is_file(), src

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "plots.png"
    shot.unlink(missing_ok=True)
    _chromium(page, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1400,5200",
              "--hide-scrollbars")
    from PIL import Image

    with Image.open(shot) as img:
        colours = img.convert("RGB").resize((350, 1300)).getcolors(maxcolors=1_000_000)
    assert colours and len(colours) > 50, "the screenshot looks blank"
