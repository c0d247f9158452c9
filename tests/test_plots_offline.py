"""`dvc plots show` / `dvc plots diff`: each intended plot drawn once and right, on a page that carries
its own Vega (.dvc/plots_template.html, written by textclf.commands.plots_page) and so renders offline in any
folder, with no text of the data able to run as script.

The repositories hold the project's own plot declarations (dvc.yaml, .dvc/plots) and plot files written
by the project's writers (tests/_plots_fixture.py). The browser tests need /usr/bin/chromium
(.ci/install-extras.sh); they write the screenshot test-artifacts/plots.png (docs/plots.png is a copy).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from _dvc_fixture import dvc, dvc_main
from _plots_fixture import make_plots_repo
from conftest import ROOT
from textclf.commands import plots_page

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
# every plot meant to be on the page, with the field on its x axis
INTENDED = {
    "plots/baselines/confusion.csv": "predicted",
    "plots/finetuned/confusion.csv": "predicted",
    "plots/umap/pretrained.csv": "x",
    "plots/umap/finetuned.csv": "x",
    "plots/errors/label_loss.csv": "mean_loss",
    "Training curves, loss (train rows and validation subset)": "step",
    "Training curves, accuracy and F1 (validation subset)": "step",
}
# the notebook's PNG figures are outputs for the card and the report, not plots: Vega already draws them
HOSTILE = '</script><script>document.title="pwned"</script><img src=x onerror="document.title=1">'
COMMANDS = {"show": ["plots", "show"], "diff": ["plots", "diff", "main"]}


def x_field(spec) -> str | None:
    """The field of the first x encoding in a Vega-Lite spec (layers and facets included)."""
    if isinstance(spec, dict):
        if isinstance(spec.get("x"), dict) and "field" in spec["x"]:
            return spec["x"]["field"]
        values = spec.values()
    elif isinstance(spec, list):
        values = spec
    else:
        return None
    return next((f for f in map(x_field, values) if f), None)


def _encodings(spec, channel: str) -> list[str]:
    """The fields of every ``channel`` encoding in a Vega-Lite spec, depth first (layers included)."""
    found = []
    if isinstance(spec, dict):
        if isinstance(spec.get(channel), dict) and "field" in spec[channel]:
            found.append(spec[channel]["field"])
        for value in spec.values():
            found += _encodings(value, channel)
    elif isinstance(spec, list):
        for value in spec:
            found += _encodings(value, channel)
    return found


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return make_plots_repo(tmp_path_factory.mktemp("plots") / "repo")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_intended_plot_once_and_curves_on_the_step_axis(repo, command):
    revs = ["workspace"] if command == "show" else ["workspace", "main"]
    data = json.loads(dvc_main(repo, *COMMANDS[command], "--json"))["data"]
    assert set(data) == set(INTENDED), f"unexpected: {set(data) - set(INTENDED)}, missing: {set(INTENDED) - set(data)}"
    for plot_id, entries in data.items():
        if INTENDED[plot_id] is None:  # an image: one entry per revision
            assert [e["type"] for e in entries] == ["image"] * len(revs), plot_id
            assert [e["revisions"] for e in entries] == [[rev] for rev in revs], plot_id
            continue
        assert len(entries) == 1 and entries[0]["type"] == "vega", (plot_id, entries)
        spec = entries[0]["content"]
        assert x_field(spec) == INTENDED[plot_id], plot_id
        assert [rev for rev in dict.fromkeys(v["rev"] for v in spec["data"]["values"])] == revs, plot_id
        if INTENDED[plot_id] == "step":  # the optimizer step of the file, not DVC's row index
            files = 2 if "loss" in plot_id else 3  # each file's points once: one chart of 2 or 3 curves
            steps = [int(v["step"]) for v in spec["data"]["values"] if v["rev"] == "workspace"]
            assert steps == list(range(10, 110, 10)) * files, plot_id
            assert _encodings(spec, "y")[0] in ("loss", "dvc_inferred_y_value"), plot_id  # not 'chosen'
            # the rule at the step whose weights were kept: one row a revision passes the template's filter
            rule = next(
                layer for layer in spec["layer"] if {"filter": "datum.chosen == 1"} in layer.get("transform", [])
            )
            assert rule["layer"][0]["mark"]["type"] == "rule", plot_id
            kept = {(v["rev"], int(v["step"])) for v in spec["data"]["values"] if int(v["chosen"]) == 1}
            assert kept == set([("workspace", 70), ("main", 60)][: len(revs)]), (plot_id, kept)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_page_draws_each_plot_once(repo, tmp_path, command):
    out = tmp_path / "page"
    dvc_main(repo, *COMMANDS[command], "-o", str(out))
    body = (out / "index.html").read_text().split("<body>")[-1]
    divs = re.findall(r'<div id = "([^"]+)">\s*<script', body)
    images = re.findall(r'<img src="static/([^"]+)"', body)
    n_revs = 1 if command == "show" else 2
    vega = [p for p, x in INTENDED.items() if x]
    assert sorted(divs) == sorted(re.sub(r"[^A-Za-z0-9]", "_", p) for p in vega), divs
    assert len(images) == len(set(images)) == n_revs * (len(INTENDED) - len(vega)), images


def test_the_template_is_built_from_the_pinned_vega_and_loads_nothing():
    value = dvc_main(ROOT, "config", "plots.html_template").strip()
    assert (ROOT / ".dvc" / value).resolve() == plots_page.TEMPLATE.resolve()  # DVC resolves it against .dvc/
    html = plots_page.TEMPLATE.read_text()
    assert "{plot_divs}" in html and "{scripts}" not in html  # DVC fills {scripts} with CDN <script> tags
    assert not re.search(r"<script[^>]*\bsrc=|<link\b", html), "the page must load no file"
    node_modules = ROOT / "node_modules"
    if not all((node_modules / p / f).is_file() for p, f in plots_page.BUILDS.items()):
        pytest.skip("node_modules is missing (npm ci): cannot compare with the pinned builds")
    lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    for package in plots_page.BUILDS:
        assert f"<!-- {package} {lock[f'node_modules/{package}']['version']} " in html
    assert html == plots_page.build(node_modules), "stale: run python -m textclf.commands.plots_page"


def test_hostile_label_names_and_texts_add_no_script(tmp_path):
    """17.3: DVC inlines plot data into <script> unescaped; the plot files carry label names inert."""
    labels = ["sadness", f"joy{HOSTILE}", "love & <3", "anger", "fear", "surprise"]
    repos = {
        "plain": make_plots_repo(tmp_path / "plain"),
        "hostile": make_plots_repo(tmp_path / "hostile", labels=labels, text=HOSTILE),
    }
    for command, args in COMMANDS.items():
        pages = {}
        for name, repo in repos.items():
            dvc_main(repo, *args, "-o", str(tmp_path / f"{name}-{command}"))
            pages[name] = (tmp_path / f"{name}-{command}" / "index.html").read_text()
        count = {name: len(re.findall(r"<\s*script", page, re.I)) for name, page in pages.items()}
        assert count["hostile"] == count["plain"], (command, count)
        for raw in ("</script><script>document.title", "<img src=x", "love & <3"):
            assert raw not in pages["hostile"], (command, raw)
        assert "joy\\u2039/script\\u203a" in pages["hostile"], command  # the look-alikes, JSON-escaped
        assert "love & \\u20393" in pages["hostile"], command


@pytest.fixture(scope="module")
def hostile_repo(tmp_path_factory) -> Path:
    """The plots repo with hostile label names and texts, figures included: built once for both commands."""
    labels = ["sadness", f"joy{HOSTILE}", "love & <3", "anger", "fear", "surprise"]
    return make_plots_repo(tmp_path_factory.mktemp("hostile") / "repo", labels=labels, text=HOSTILE)


def _chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    """Headless Chromium with the network closed: a dead proxy and every host name unresolvable."""
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-default-apps",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost",
        "--allow-file-access-from-files",
        "--virtual-time-budget=10000",
        *extra,
        page.as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_page_renders_offline_in_any_folder_and_runs_no_injected_script(tmp_path, repo, hostile_repo, command):
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing (CI=true: .ci/install-extras.sh installs it)")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    out = tmp_path / "elsewhere" / "page"  # outside the project: nothing of it beside the page
    out.parent.mkdir()  # DVC 3.67 writes index.html into -o's folder but creates only the last level
    dvc(hostile_repo, *COMMANDS[command], "-o", str(out))  # the dvc executable, as users run it
    page = out / "index.html"
    head_scripts = len(re.findall(r"<script", page.read_text().split("<body>")[0], re.I))  # the Vega builds

    dom = _chromium(page, tmp_path / "profile", "--dump-dom").stdout
    assert "</html>" in dom, "chromium produced no DOM"
    assert "<title>DVC Plots</title>" in dom, "a script changed the page title"
    # vega-embed replaces each plot's <div> (its inline <script> included) by the chart: what is left are the
    # Vega builds; an element injected through the data would have run and set the title
    assert len(re.findall(r"<script", dom, re.I)) == head_scripts == 3, "a script element was added"
    vega = [p for p, x in INTENDED.items() if x]
    containers = re.findall(r'<div id="([^"]+)" class="vega-embed[^"]*">(.*?)<div class="vega-actions">', dom, re.S)
    assert len(containers) == len(vega), [c[0] for c in containers]
    for plot_id, body in containers:
        marks = re.search(r'<canvas width="(\d+)" height="(\d+)" class="marks"|<svg[^>]*class="marks"', body)
        assert marks, f"plot {plot_id} has no rendered <canvas>/<svg>"
    images = re.findall(r'<img src="([^"]+)"', dom.split("<body")[-1])
    assert len(images) == (1 if command == "show" else 2) * (len(INTENDED) - len(vega)), images
    for src in images:
        assert (page.parent / src).is_file(), src

    if command == "diff":  # the screenshot linked by the README (docs/plots.png): plain label names
        dvc_main(repo, "plots", "diff", "main", "-o", str(tmp_path / "plain"))
        page = tmp_path / "plain" / "index.html"
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "plots.png"
        shot.unlink(missing_ok=True)
        _chromium(
            page, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=2000,4200", "--hide-scrollbars"
        )
        from PIL import Image

        with Image.open(shot) as img:
            colours = img.convert("RGB").resize((500, 1050)).getcolors(maxcolors=1_000_000)
        assert colours and len(colours) > 50, "the screenshot looks blank"
