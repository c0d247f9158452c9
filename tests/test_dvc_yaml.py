"""dvc.yaml tracks every project file a stage executes, and runs each stage as dvc.yaml says."""

from __future__ import annotations

import ast
import functools
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LAUNCHER, ROOT, dvc_yaml, launched, stage_command

PACKAGES = ("textclf", "stages")


def _module_file(name: str) -> Path:
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"


@functools.cache
def executed_files(module: str) -> frozenset[str]:
    """Project files that running ``python -m <module>`` executes: the module, the packages' ``__init__``
    files and every project module imported anywhere in them (lazy imports too), transitively."""
    seen: set[Path] = set()
    todo = [_module_file(module), _module_file(module.split(".")[0])]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] not in PACKAGES:
                    continue
                parts = name.split(".")
                for i in range(1, len(parts) + 1):  # importing a.b.c executes a, a.b and a.b.c
                    candidate = _module_file(".".join(parts[:i]))
                    if candidate.is_file():
                        todo.append(candidate)
    return frozenset(str(p.relative_to(ROOT)) for p in seen)


def _stages() -> dict[str, dict]:
    """Every stage of dvc.yaml, foreach expanded: name -> (module, deps)."""
    stages = {}
    for name, spec in dvc_yaml()["stages"].items():
        if "foreach" in spec:
            keys = spec["foreach"] if isinstance(spec["foreach"], list) else list(spec["foreach"])
            for key in keys:
                stages[f"{name}@{key}"] = spec["do"]
        else:
            stages[name] = spec
    return stages


def _covered(path: str, deps: set[str]) -> bool:
    return path in deps or any(path.startswith(f"{dep}/") for dep in deps)


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_every_executed_project_file_is_a_dep(stage):
    """Each file the stage executes is a dep, or inside a folder dep (a whole textclf/ subpackage); no code
    dep is one the stage does not execute."""
    module, _ = stage_command(stage)
    executed = executed_files(module) | (executed_files(LAUNCHER) if launched(stage) else set())
    deps = {d for d in _stages()[stage]["deps"] if isinstance(d, str)}
    missing = {path for path in executed if not _covered(path, deps)}
    assert not missing, f"{stage}: add to its deps in dvc.yaml: {sorted(missing)}"
    code = {d for d in deps if d.startswith(PACKAGES)}
    stale = {d for d in code if not any(_covered(path, {d}) for path in executed)}
    assert not stale, f"{stage}: deps it does not execute: {sorted(stale)}"


def test_code_deps_are_whole_subpackages():
    """No stage pins a module of textclf/: moving a function between modules of one subpackage changes
    neither dvc.yaml nor dvc.lock."""
    for stage, spec in _stages().items():
        pinned = [d for d in spec["deps"] if d.startswith("textclf/") and d != "textclf/__init__.py"]
        assert all((ROOT / d).is_dir() for d in pinned), (stage, pinned)


def test_the_import_walk_finds_every_module_python_loads():
    """What importing a stage loads from the project (transitively) is inside the walk of its imports;
    the walk also sees the imports inside functions, which loading alone does not run."""
    project = "('textclf', 'stages')"
    code = f"import sys, stages.evaluate; print(' '.join(m for m in sys.modules if m.split('.')[0] in {project}))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    loaded = {str(_module_file(name).relative_to(ROOT)) for name in result.stdout.split()}
    walked = executed_files("stages.evaluate")
    assert loaded <= walked, sorted(loaded - walked)
    # textclf/commands/predict.py imports it inside functions only
    assert "textclf/models/inference.py" in executed_files("textclf.commands.predict")


def test_commands_run_modules_with_every_path_given():
    """No stage relies on an argparse default for a path: dvc.yaml is the one place paths live."""
    for stage, spec in _stages().items():
        module, args = stage_command(stage)
        assert module.startswith("stages."), stage
        source = _module_file(module).read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
                flag = node.args[0].value
                keywords = {k.arg: k for k in node.keywords}
                if flag == "--params":
                    continue
                assert "default" not in keywords, f"{module}: {flag} has a default; pass it in dvc.yaml"
                assert flag in args, f"{stage}: dvc.yaml does not pass {flag}"
        assert shlex.split(spec["cmd"].replace("${", "x").replace("}", ""))[:2] == ["python", "-m"]


CHECK_STAGE = "params"
# what the params check must not import: it runs first in every `dvc repro` and has to answer in about a second
HEAVY = ("torch", "transformers", "numpy", "pandas", "pyarrow", "sklearn", "datasets", "dvc", "umap", "matplotlib")


def test_every_stage_runs_after_the_params_check():
    """DVC removes a stage's outputs only when it runs that stage: with the check's stamp among every stage's
    deps, a bad params.yaml stops `dvc repro` before any output is removed. The check reads all of params.yaml."""
    stages = _stages()
    check = stages.pop(CHECK_STAGE)
    (stamp,) = check["outs"]
    assert "params.yaml" in check["deps"] and not check.get("params")
    for name, spec in stages.items():
        assert stamp in spec["deps"], f"{name}: add {stamp} to its deps"


def test_the_params_check_imports_no_heavy_module(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    module, args = stage_command(CHECK_STAGE)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", module, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert "pydantic" in imported and "ruamel" in imported  # the walk sees third-party imports
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    assert (tmp_path / args[args.index("--out") + 1]).is_file()
