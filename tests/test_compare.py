"""One headline to compare runs: the headline stage, the only DVC metrics file (in a repository with the
project's dvc.yaml); the other result files are outputs in the DVC cache (not DVC metrics). The documented
compare commands run as printed in tests/test_docs_commands.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from _plots_fixture import make_plots_repo
from conftest import ROOT, run_script

BESIDE = ("metrics/finetuned.json", "metrics/baselines.json", "metrics/error_analysis.json", "dvclive/metrics.json")


def test_the_headline_is_the_only_metrics_file(tmp_path):
    """`dvc metrics show` (and so `dvc exp show`, `dvc metrics diff`) lists the headline's numbers and nothing
    else; the per-label scores, intervals and diagnostics are in the files beside it."""
    repo = make_plots_repo(tmp_path / "repo")
    shown = subprocess.run(
        [str(Path(sys.executable).with_name("dvc")), "metrics", "show", "--json"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data = json.loads(shown)[""]["data"]
    assert list(data) == ["metrics/headline.json"], list(data)
    assert len(data["metrics/headline.json"]["data"]) <= 20


def test_the_results_beside_the_headline_are_cached_outputs_not_metrics():
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert spec.get("metrics", []) == ["metrics/headline.json"]  # listed for `dvc exp save`, the same file
    declared = {}
    for name, stage in spec["stages"].items():
        body = stage.get("do", stage)
        for kind in ("outs", "metrics"):
            for entry in body.get(kind, []):
                path, options = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
                declared[path] = (name, kind, options)
    assert declared["metrics/headline.json"] == ("headline", "metrics", {"cache": False})
    for path in BESIDE:
        # cached: DVC 3.67 keeps a stage out of the run-cache when an out that is no metric or plot has cache: false
        assert declared[path][1:] == ("outs", {}), (path, declared[path])
    assert not [p for p, (_, kind, _) in declared.items() if kind == "metrics" and p != "metrics/headline.json"]


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
