#!/usr/bin/env python
"""Print the pipeline stages that run on a given CI runner kind, one per line.

    python scripts/stages_for_runner.py gpu   # stages whose dvc.yaml `meta: {runner: gpu}`
    python scripts/stages_for_runner.py cpu   # every other stage (no meta, or another runner)

Names are printed as `dvc repro` accepts them (`finetune`, `hidden_states@pretrained`).
foreach/matrix stages are expanded by DVC itself (`Repo.index.stages`), so the
interpolation of `${key}`/`${item}` in `meta` follows DVC's own rules.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_RUNNER = "cpu"


def stage_runners(repo_root: str | Path = ".") -> list[tuple[str, str]]:
    """(stage name, runner) for every pipeline stage of the repository at repo_root, in dvc.yaml order."""
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    result = []
    with Repo(str(repo_root)) as repo:
        for stage in repo.index.stages:
            if not isinstance(stage, PipelineStage):  # .dvc files (dvc add) are not pipeline stages
                continue
            meta = stage.meta if isinstance(stage.meta, dict) else {}
            runner = str(meta.get("runner") or DEFAULT_RUNNER)
            result.append((stage.addressing, runner))
    return result


def stages_for_runner(runner: str, repo_root: str | Path = ".") -> list[str]:
    """Stage names for `runner`: gpu = meta.runner is gpu; cpu = all the others."""
    runners = stage_runners(repo_root)
    if runner == "gpu":
        return [name for name, r in runners if r == "gpu"]
    return [name for name, r in runners if r != "gpu"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runner", choices=["gpu", "cpu"], help="runner kind")
    parser.add_argument("--repo", default=".", help="DVC repository root (default: .)")
    args = parser.parse_args(argv)
    for name in stages_for_runner(args.runner, args.repo):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
