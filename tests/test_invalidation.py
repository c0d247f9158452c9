"""Editing one module marks changed exactly the stages whose outputs it can change, and no other.

A copy of the project's pipeline (dvc.yaml, params.yaml, stages/, textclf/, the demo sample) with
placeholder outputs is committed into a dvc.lock (``dvc commit -f``: nothing runs); then each module
gets a comment line appended, and ``dvc status`` must name exactly the stages of the table below.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from _dvc_fixture import DVC
from conftest import ROOT, dvc_stages

EVERY = dvc_stages()  # every stage of dvc.yaml, foreach items by name (hidden_states@pretrained, ...)
HIDDEN = {"hidden_states@pretrained", "hidden_states@finetuned"}
UMAP = {"umap@pretrained", "umap@finetuned"}
# The stages that load a model (and so resolve a checkpoint, maybe through the hub).
MODEL = {"encode", "finetune", *HIDDEN, "evaluate", "model_card"}

# module -> the stages `dvc status` reports changed after an edit to it (none: a command's module only)
EXPECTED = {
    "stages/__init__.py": EVERY,
    "textclf/__init__.py": EVERY,
    "textclf/errors.py": EVERY,
    "textclf/stage.py": EVERY,
    "textclf/params.py": EVERY,
    "textclf/files.py": EVERY - {"params"},
    "textclf/tables.py": EVERY - {"params"},
    "textclf/paths.py": {"params", "data", *MODEL},
    "textclf/hub.py": {"data", *MODEL},
    "textclf/modeling.py": MODEL,
    "textclf/data.py": {"data"},
    "textclf/training.py": {"finetune"},
    "textclf/launch.py": {"finetune", *HIDDEN},
    "textclf/distributed.py": {"finetune", *HIDDEN, "evaluate"},
    "textclf/batching.py": {*HIDDEN, "evaluate"},
    "textclf/metrics.py": {"finetune", "baselines", "evaluate"},
    "textclf/plots.py": {"baselines", *UMAP, "evaluate"},
    "textclf/pagetext.py": {"baselines", *UMAP, "evaluate", "error_analysis"},
    "textclf/sampling.py": {"baselines", *UMAP, *HIDDEN},
    "textclf/heads.py": {"evaluate"},
    "textclf/analysis.py": {"evaluate", "error_analysis"},
    "textclf/model_card.py": {"model_card"},
    "textclf/export.py": set(),
    "textclf/predict.py": set(),
    "textclf/report.py": set(),
    "textclf/sweep.py": set(),
    "textclf/plots_page.py": set(),
    "textclf/__main__.py": set(),
    "stages/params_check.py": {"params"},
    "stages/data.py": {"data"},
    "stages/encode.py": {"encode"},
    "stages/headline.py": {"headline"},
    "stages/finetune.py": {"finetune"},
    "stages/hidden_states.py": HIDDEN,
    "stages/baselines.py": {"baselines"},
    "stages/umap_embed.py": UMAP,
    "stages/evaluate.py": {"evaluate"},
    "stages/error_analysis.py": {"error_analysis"},
    "stages/model_card.py": {"model_card"},
}


def dvc(repo: Path, *args: str) -> str:
    return subprocess.run([DVC, *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def test_the_table_covers_every_module():
    modules = {str(p.relative_to(ROOT)) for folder in ("stages", "textclf") for p in (ROOT / folder).glob("*.py")}
    assert set(EXPECTED) == modules


@pytest.mark.slow
def test_an_edit_to_a_module_changes_exactly_the_stages_that_run_it(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, repo / name)
    for folder in ("stages", "textclf", "data/sample"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    dvc(repo, "init", "-q", "--no-scm")
    dvc(repo, "config", "core.analytics", "false")
    from dvc.repo import Repo

    with Repo(str(repo)) as project:  # placeholder outputs (a file, or a folder holding one), then files read in them
        stages = project.index.stages
        for path in [Path(out.fs_path) for stage in stages for out in stage.outs]:
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("placeholder\n")
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "placeholder").write_text("placeholder\n")
        for path in [Path(dep.fs_path) for stage in stages for dep in stage.deps]:
            if not path.exists():
                path.write_text("placeholder\n")
    dvc(repo, "commit", "-f", "-q")
    assert json.loads(dvc(repo, "status", "--json")) == {}

    found = {}
    for module in EXPECTED:
        original = (repo / module).read_bytes()
        (repo / module).write_bytes(original + b"# an edit\n")
        with Repo(str(repo)) as project:
            found[module] = {name.rpartition(":")[2] for name in project.status()}  # path/dvc.yaml:stage
        (repo / module).write_bytes(original)
    wrong = {m: sorted(found[m] ^ EXPECTED[m]) for m in EXPECTED if found[m] != EXPECTED[m]}
    assert not wrong, f"stages changed unlike the table (symmetric difference per module): {wrong}"
