"""One headline to compare runs: the headline stage, and the README's compare commands run exactly as
printed, in a repository with the project's dvc.yaml (branch exp against main)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _plots_fixture import make_plots_repo
from conftest import ROOT, run_script

WIDTH = 100


def readme_compare_commands() -> list[str]:
    """The command lines of the first bash block under the README's "Compare branches and experiments"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Compare branches and experiments", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_readme_compare_commands_fit_100_columns_and_show_validation_accuracy(tmp_path):
    repo = make_plots_repo(tmp_path / "repo", figures=False)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    commands = readme_compare_commands()
    assert any(c.startswith("dvc exp show") for c in commands) and any("dvc metrics diff" in c for c in commands)
    shown = ""
    for command in commands:
        res = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command], cwd=repo, capture_output=True, text=True, env=env
        )
        assert res.returncode == 0, f"{command}: {res.stderr}"
        wide = [line for line in res.stdout.splitlines() if len(line) > WIDTH]
        assert not wide, f"{command}: {len(wide[0])} columns:\n{wide[0]}"
        shown += res.stdout
    headline = commands[0]
    assert "metrics/headline.json" in headline
    first = subprocess.run(["bash", "-c", headline], cwd=repo, capture_output=True, text=True, env=env).stdout
    # every headline number, the logistic regression's too although it ties between the two revisions
    for key in ("val_accuracy", "val_f1_macro", "val_f1_weighted", "test_accuracy", "logreg_val_accuracy"):
        assert re.search(rf"\b{key}\b", first), (key, first)
    exp_show = next(c for c in commands if c.startswith("dvc exp show"))
    table = subprocess.run(["bash", "-c", exp_show], cwd=repo, capture_output=True, text=True, env=env).stdout
    assert "val_accuracy" in table.splitlines()[0] and re.search(r"\|\s*main\s*\|\s*0\.5\s*\|", table), table


def test_headline_is_the_first_metrics_file(tmp_path):
    repo = make_plots_repo(tmp_path / "repo", figures=False)
    shown = subprocess.run(
        [str(Path(sys.executable).with_name("dvc")), "metrics", "show", "--json"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert next(iter(json.loads(shown)[""]["data"])) == "metrics/headline.json"


def write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


SCORES = {"accuracy": 0.9, "f1_macro": 0.85, "f1_weighted": 0.88, "f1_per_label": {"joy": 1.0}}
BASELINES = {"logistic_regression": {"validation": {"accuracy": 0.7}}, "dummy_uniform": {"validation": {}}}


def test_headline_stage_writes_the_few_numbers_without_torch(tmp_path):
    finetuned = write(tmp_path / "finetuned.json", {"validation": SCORES, "test": {**SCORES, "accuracy": 0.8}})
    baselines = write(tmp_path / "baselines.json", BASELINES)
    code = (
        "import runpy, sys; sys.argv = ['headline', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('stages.headline', run_name='__main__')\n"
        "finally:\n    assert 'torch' not in sys.modules and 'sklearn' not in sys.modules\n"
    )
    args = [
        "--finetuned",
        str(finetuned),
        "--baselines",
        str(baselines),
        "--out",
        str(tmp_path / "headline.json"),
        "--params",
        str(ROOT / "params.yaml"),
    ]
    res = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "headline.json").read_text()) == {
        "val_accuracy": 0.9,
        "val_f1_macro": 0.85,
        "val_f1_weighted": 0.88,
        "test_accuracy": 0.8,
        "test_f1_macro": 0.85,
        "test_f1_weighted": 0.88,
        "logreg_val_accuracy": 0.7,
    }


@pytest.mark.parametrize(
    "which, data",
    [
        ("finetuned", {"validation": SCORES}),  # no test split
        ("finetuned", {"validation": {"f1_macro": 0.5}, "test": SCORES}),  # no accuracy
        ("baselines", {"dummy_uniform": {}}),
        ("baselines", "not a mapping"),
    ],
)
def test_headline_stage_names_the_file_it_cannot_use(tmp_path, which, data):
    files = {
        "finetuned": write(tmp_path / "finetuned.json", {"validation": SCORES, "test": SCORES}),
        "baselines": write(tmp_path / "baselines.json", BASELINES),
    }
    write(files[which], data)
    out = tmp_path / "headline.json"
    res = run_script(
        "headline",
        "--finetuned",
        str(files["finetuned"]),
        "--baselines",
        str(files["baselines"]),
        "--out",
        str(out),
        "--params",
        str(ROOT / "params.yaml"),
        cwd=tmp_path,
    )
    assert res.returncode == 2 and not out.exists()
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {files[which]}: "), res.stderr
