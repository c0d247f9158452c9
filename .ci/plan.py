#!/usr/bin/env python
"""Decide whether the CI's GPU tier runs (docs/ci.md); `--list gpu|cpu` lists the stages pinned to each runner.

    python .ci/plan.py --event EVENT --base REV --labels JSON --fork BOOL --gpu-runs-on JSON --reviewers N

Exit 0 with a notice when the tier is not needed or an automatic trigger finds no GPU set-up; exit 1 when a label
or a manual run asks for a tier that cannot run. Writes gpu, reason, runs_on to $GITHUB_OUTPUT.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dvc_remote_plugin import default_remote  # noqa: E402

GPU_LABEL = "gpu"
SETUP_RUNNER = "the variable GPU_RUNS_ON (a GPU runner's label, as JSON)"
SETUP_REMOTE = "a default DVC remote committed in .dvc/config (`dvc remote add -d NAME URL`)"
SETUP_REVIEWERS = "required reviewers on the environment `gpu` (private repositories: GitHub Enterprise only)"


@contextmanager
def pipeline(repo_root: str | Path):
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    cwd = os.getcwd()
    os.chdir(repo_root)
    try:
        with Repo(".") as repo:
            yield repo, [s for s in repo.index.stages if isinstance(s, PipelineStage)]
    finally:
        os.chdir(cwd)


def runner_of(stage) -> str:
    return str((stage.meta if isinstance(stage.meta, dict) else {}).get("runner") or "cpu")


def stages_for_runner(runner: str, repo_root: str | Path = ".") -> list[str]:
    """Stage names as `dvc repro` takes them: gpu = `meta.runner: gpu`; cpu = all the others."""
    with pipeline(repo_root) as (_, stages):
        return [s.addressing for s in stages if (runner_of(s) == "gpu") == (runner == "gpu")]


def changed_gpu_stages(repo_root: str | Path = ".", base: str | None = None) -> list[str]:
    """GPU-pinned stages that differ (themselves or upstream) from the dvc.lock of `base` (default: the
    checkout's own); missing outputs do not count. The checkout's dvc.lock is restored afterwards."""
    import networkx as nx

    root = Path(repo_root).resolve()
    lock = root / "dvc.lock"
    saved = lock.read_bytes() if lock.exists() else None
    if base:
        shown = subprocess.run(["git", "show", f"{base}:dvc.lock"], cwd=root, capture_output=True)
        if shown.returncode == 0:
            lock.write_bytes(shown.stdout)
        else:
            lock.unlink(missing_ok=True)
    try:
        with pipeline(root) as (repo, stages), repo.lock:
            changed = {s for s in stages if s.changed(allow_missing=True)}
            graph = repo.index.graph  # edges: a stage -> the stages whose outputs it reads
            return [
                s.addressing
                for s in stages
                if runner_of(s) == "gpu" and (s in changed or changed & nx.descendants(graph, s))
            ]
    finally:
        if saved is None:
            lock.unlink(missing_ok=True)
        else:
            lock.write_bytes(saved)


def decide(event, labels, fork, dispatch_gpu, changed, missing_setup) -> tuple[bool, str, str]:
    """(run the GPU tier?, why, annotation level: notice, warning or error)."""
    if event == "workflow_dispatch" and not dispatch_gpu:
        return False, "started by hand with input gpu: false", "notice"
    asked = ["started by hand (workflow_dispatch, input gpu: true)"] if event == "workflow_dispatch" else []
    if event == "pull_request" and GPU_LABEL in labels:
        asked.append(f"the pull request has the `{GPU_LABEL}` label")
    automatic = [f"GPU-pinned stage(s) changed against the base's dvc.lock: {', '.join(changed)}"] if changed else []
    why = "; ".join(asked + automatic)
    if not why:
        hint = f" (add the `{GPU_LABEL}` label to run it anyway)" if event == "pull_request" else ""
        return False, f"GPU tier not needed: no GPU-pinned stage changed against the base's dvc.lock{hint}", "notice"
    if event == "pull_request" and fork:
        reason = f"GPU tier skipped: a pull request from a fork gets no secrets; it would have run because {why}."
        return False, reason, "warning"
    if missing_setup:
        setup = f"This repository lacks {' and '.join(missing_setup)} (docs/ci.md, First set-up)."
        if asked:
            return False, f"GPU tier asked for ({why}), but cannot run. {setup}", "error"
        return False, f"GPU tier not run although {why}. {setup}", "notice"
    return True, why, "notice"


def runs_on(value: str) -> str:
    """GPU_RUNS_ON checked: a JSON label or list of labels, for `runs-on: fromJSON(...)`."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"GPU_RUNS_ON: not JSON ({exc}): write '\"gpu-t4\"' (with the quotes) or a list") from exc
    labels = [parsed] if isinstance(parsed, str) else parsed
    if not (isinstance(labels, list) and labels and all(isinstance(v, str) and v for v in labels)):
        raise ValueError(f"GPU_RUNS_ON: {value!r} is neither a label nor a list of labels")
    return json.dumps(parsed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", choices=["gpu", "cpu"], help="print the stages pinned to that runner and stop")
    for flag in ("event", "base", "gpu-runs-on", "reviewers", "dispatch-gpu"):
        parser.add_argument(f"--{flag}", default="")
    parser.add_argument("--labels", default="[]", help="JSON list of the pull request's label names")
    parser.add_argument("--fork", default="false")
    parser.add_argument("--repo", default=".", help="DVC repository root")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(stages_for_runner(args.list, args.repo)))
        return 0
    try:
        target = runs_on(args.gpu_runs_on) if args.gpu_runs_on.strip() else ""
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    missing = [] if target else [SETUP_RUNNER]
    if not default_remote(Path(args.repo)):
        missing.append(SETUP_REMOTE)
    if not args.reviewers.isdigit() or int(args.reviewers) < 1:
        missing.append(SETUP_REVIEWERS)
    changed = None if args.event == "workflow_dispatch" else changed_gpu_stages(args.repo, args.base or None)
    labels, fork, dispatch = json.loads(args.labels or "[]") or [], args.fork == "true", args.dispatch_gpu == "true"
    gpu, reason, level = decide(args.event, labels, fork, dispatch, changed, missing)
    print(f"plan: GPU-pinned stages changed against {args.base or 'the checkout'}: {', '.join(changed or []) or '-'}")
    print(f"::{level}::{reason}")
    if os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf8") as fh:
            fh.write(f"gpu={str(gpu).lower()}\nreason={reason}\nruns_on={target}\n")
    return 1 if level == "error" else 0


if __name__ == "__main__":
    sys.exit(main())
