"""Editing a file of the project marks changed exactly the stages that execute it, and no other.

A copy of the pipeline (dvc.yaml, params.yaml, stages/, textclf/, the demo sample) with placeholder outputs
is committed into a dvc.lock (``dvc commit -f``: nothing runs); then one file of each subpackage, and each
stage script, gets a comment line appended, and ``dvc status`` must name exactly the stages whose import
walk (tests/test_dvc_yaml.py) reaches that file or its subpackage. No table of modules: moving code
between modules of one subpackage changes nothing here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from _dvc_fixture import DVC
from conftest import LAUNCHER, ROOT, dvc_stages, launched, stage_command
from test_dvc_yaml import executed_files

# what no edit to the card, plots, report or other commands may rerun: the expensive stages
EXPENSIVE = {"finetune", "hidden_states@pretrained", "hidden_states@finetuned"}


def edited_files() -> list[str]:
    """One module of each textclf/ subpackage (its first by name), the package roots and every stage script."""
    subpackages = sorted(p for p in (ROOT / "textclf").iterdir() if (p / "__init__.py").is_file())
    files = [min(p.glob("[!_]*.py")) for p in subpackages] + [ROOT / "textclf" / "__main__.py"]
    files += sorted((ROOT / "stages").glob("*.py")) + [ROOT / "textclf" / "__init__.py"]
    return [str(p.relative_to(ROOT)) for p in files]


def stages_executing(path: str) -> set[str]:
    """The stages that execute ``path`` or, for a module of a textclf/ subpackage, any module of it (a stage
    depends on whole subpackages)."""
    parts = Path(path).parts
    unit = f"{parts[0]}/{parts[1]}/" if parts[0] == "textclf" and len(parts) > 2 else path
    found = set()
    for stage in dvc_stages():
        module, _ = stage_command(stage)
        executed = executed_files(module) | (executed_files(LAUNCHER) if launched(stage) else set())
        if any(file == unit or file.startswith(unit) for file in executed):
            found.add(stage)
    return found


def dvc(repo: Path, *args: str) -> str:
    return subprocess.run([DVC, *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def test_reporting_and_commands_are_outside_the_expensive_stages():
    for path in edited_files():
        if path.startswith(("textclf/reporting/", "textclf/commands/")) or path == "textclf/__main__.py":
            assert not stages_executing(path) & EXPENSIVE, path


@pytest.mark.slow
def test_an_edit_changes_exactly_the_stages_that_execute_it(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
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
    (repo / "textclf" / "common" / "__pycache__").mkdir()  # bytecode is never a dependency (.dvcignore)
    (repo / "textclf" / "common" / "__pycache__" / "errors.cpython-311.pyc").write_bytes(b"\0")
    with Repo(str(repo)) as project:
        assert project.status() == {}

    wrong = {}
    with Repo(str(repo)) as project:  # one Repo for every edit: a status that kept an earlier edit would fail
        for path in edited_files():
            original = (repo / path).read_bytes()
            (repo / path).write_bytes(original + b"# an edit\n")
            found = {name.rpartition(":")[2] for name in project.status()}  # path/dvc.yaml:stage
            (repo / path).write_bytes(original)
            expected = stages_executing(path)
            if found != expected:
                wrong[path] = sorted(found ^ expected)
            if path.startswith(("textclf/reporting/", "textclf/commands/")):
                assert not found & EXPENSIVE, path
        assert project.status() == {}, "every edit undone: nothing changed"
    assert not wrong, f"stages changed unlike the import walk (symmetric difference per file): {wrong}"
