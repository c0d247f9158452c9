#!/usr/bin/env python
"""Decide whether the CI's GPU tier runs, and on which runner; list the stages pinned to each runner.

    python .ci/plan.py --list gpu          # stages with dvc.yaml `meta: {runner: gpu}`, as `dvc repro` names them
    python .ci/plan.py --list cpu          # every other stage
    python .ci/plan.py --event pull_request --base REV --labels '["gpu"]' --fork false \
        --gpu-runs-on "$GPU_RUNS_ON" --cml-cloud "$CML_CLOUD" --run-label cml-gpu-123-1 [--dispatch-gpu true]

The GPU tier runs
  - on workflow_dispatch when its `gpu` input is true;
  - on a pull request labelled `gpu`;
  - on a pull request or a push when a GPU-pinned stage would compute something else than at --base (the
    merge base of a pull request, the previous commit of a push): its command, params or code/data deps,
    or those of a stage upstream of it, differ from --base's dvc.lock. A pull request that commits its
    reproduced dvc.lock (as the CPU tier requires) still differs from its base's lock;
  - never for a pull request from a fork (GitHub gives those no secrets): a warning says what would have run it.
It needs a GPU set-up: the variable GPU_RUNS_ON (a GPU runner) or CML_CLOUD (a CML cloud machine), and a
default DVC remote. Without one, an automatic trigger gives a notice and skips the tier (exit 0); a label or
a manual run asking for it fails (exit 1) naming what to set up.

Writes gpu, reason, runs_on, launch, label to $GITHUB_OUTPUT when set, and the decision to the job summary.
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
SETUP_RUNNER = "the variable GPU_RUNS_ON (a GPU runner's label) or CML_CLOUD (aws, gcp or azure: a CML cloud machine)"
SETUP_REMOTE = "a default DVC remote committed in .dvc/config (`dvc remote add -d NAME URL`)"


@contextmanager
def pipeline(repo_root: str | Path):
    """(repo, its pipeline stages), with the repository root as working directory: stage names as `dvc repro`
    takes them there."""
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
    """The runner a stage is pinned to: dvc.yaml `meta: {runner: ...}`, `cpu` when it says nothing."""
    return str((stage.meta if isinstance(stage.meta, dict) else {}).get("runner") or "cpu")


def stage_runners(repo_root: str | Path = ".") -> list[tuple[str, str]]:
    """(stage name, runner) of every pipeline stage in dvc.yaml order; foreach stages expanded by DVC itself."""
    with pipeline(repo_root) as (_, stages):
        return [(s.addressing, runner_of(s)) for s in stages]


def stages_for_runner(runner: str, repo_root: str | Path = ".") -> list[str]:
    """Stage names for `runner`: gpu = `meta.runner: gpu`; cpu = all the others."""
    return [name for name, r in stage_runners(repo_root) if (r == "gpu") == (runner == "gpu")]


@contextmanager
def lock_of(repo_root: Path, base: str | None):
    """dvc.lock replaced by `git show BASE:dvc.lock` (absent when BASE has none) inside the block, then restored."""
    lock = repo_root / "dvc.lock"
    saved = lock.read_bytes() if lock.exists() else None
    if base:
        shown = subprocess.run(["git", "show", f"{base}:dvc.lock"], cwd=repo_root, capture_output=True)
        if shown.returncode == 0:
            lock.write_bytes(shown.stdout)
        else:
            lock.unlink(missing_ok=True)
    try:
        yield
    finally:
        if saved is None:
            lock.unlink(missing_ok=True)
        else:
            lock.write_bytes(saved)


def changed_gpu_stages(repo_root: str | Path = ".", base: str | None = None) -> list[str]:
    """GPU-pinned stages whose command, params or non-generated deps differ from the dvc.lock of `base` (default:
    the checkout's own), or with such a stage upstream. Missing outputs do not count (a CI checkout has none)."""
    import networkx as nx

    root = Path(repo_root).resolve()
    with lock_of(root, base), pipeline(root) as (repo, stages), repo.lock:
        graph = repo.index.graph  # edges go from a stage to the stages whose outputs it depends on
        changed = {s for s in stages if s.changed(allow_missing=True)}
        return [
            s.addressing
            for s in stages
            if runner_of(s) == "gpu" and (s in changed or changed & nx.descendants(graph, s))
        ]


def decide(
    event: str, labels: list[str], fork: bool, dispatch_gpu: bool, changed: list[str] | None, missing_setup: list[str]
) -> tuple[bool, str, str]:
    """(run the GPU tier?, why, annotation level: notice, warning or error). `changed` None: not computed."""
    asked = []
    if event == "workflow_dispatch":
        if not dispatch_gpu:
            return False, "started by hand with input gpu: false", "notice"
        asked.append("started by hand (workflow_dispatch, input gpu: true)")
    if event == "pull_request" and GPU_LABEL in labels:
        asked.append(f"the pull request has the `{GPU_LABEL}` label")
    automatic = [f"GPU-pinned stage(s) changed against the base's dvc.lock: {', '.join(changed)}"] if changed else []
    wanted = asked + automatic
    if not wanted:
        hint = f" (add the `{GPU_LABEL}` label to run it anyway)" if event == "pull_request" else ""
        return False, f"GPU tier not needed: no GPU-pinned stage changed against the base's dvc.lock{hint}", "notice"
    why = "; ".join(wanted)
    if event == "pull_request" and fork:
        return (
            False,
            (
                f"GPU tier skipped: this pull request comes from a fork, which GitHub gives no secrets. It "
                f"would have run because {why}. A maintainer can push the branch here or start the workflow "
                "by hand."
            ),
            "warning",
        )
    if missing_setup:
        setup = f"This repository has no GPU set-up: it needs {' and '.join(missing_setup)} (docs/ci.md, First set-up)."
        if asked:
            return False, f"GPU tier asked for ({why}), but cannot run. {setup}", "error"
        return False, f"GPU tier not run although {why}. {setup}", "notice"
    return True, why, "notice"


def runner(runs_on: str, run_label: str) -> tuple[bool, str]:
    """(launch a CML machine?, runs-on as JSON): GPU_RUNS_ON when set, else the run-unique CML label."""
    if runs_on.strip():
        try:
            value = json.loads(runs_on)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"GPU_RUNS_ON: not JSON ({exc}): give a label in quotes, e.g. '\"gpu-t4\"', "
                'or a list, e.g. \'["self-hosted", "gpu"]\''
            ) from exc
        if not (
            isinstance(value, str)
            and value
            or isinstance(value, list)
            and value
            and all(isinstance(v, str) and v for v in value)
        ):
            raise ValueError(f"GPU_RUNS_ON: {runs_on!r} is neither a label nor a list of labels")
        return False, json.dumps(value)
    return True, json.dumps(["self-hosted", run_label or "cml-gpu"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", choices=["gpu", "cpu"], help="print the stages pinned to that runner and stop")
    parser.add_argument("--event", default="", help="github.event_name")
    parser.add_argument("--base", default="", help="git revision whose dvc.lock the checkout is compared with")
    parser.add_argument("--labels", default="[]", help="JSON list of the pull request's label names")
    parser.add_argument("--fork", default="false", help="true when the pull request's head is another repository")
    parser.add_argument("--dispatch-gpu", default="false", help="workflow_dispatch input gpu")
    parser.add_argument("--gpu-runs-on", default="", help="repository variable GPU_RUNS_ON (JSON)")
    parser.add_argument("--cml-cloud", default="", help="repository variable CML_CLOUD")
    parser.add_argument("--run-label", default="", help="label of the CML machine, unique to the run")
    parser.add_argument("--repo", default=".", help="DVC repository root")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(stages_for_runner(args.list, args.repo)))
        return 0

    try:
        launch, runs_on = runner(args.gpu_runs_on, args.run_label)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    changed = None if args.event == "workflow_dispatch" else changed_gpu_stages(args.repo, args.base or None)
    missing = [] if (args.gpu_runs_on.strip() or args.cml_cloud.strip()) else [SETUP_RUNNER]
    if not default_remote(Path(args.repo)):
        missing.append(SETUP_REMOTE)
    truthy = ("1", "true", "yes", "on")
    gpu, reason, level = decide(
        args.event,
        json.loads(args.labels or "[]") or [],
        args.fork.lower() in truthy,
        args.dispatch_gpu.lower() in truthy,
        changed,
        missing,
    )
    print(
        f"plan: GPU-pinned stages changed against {args.base or 'the checkout'}'s dvc.lock: "
        f"{', '.join(changed or []) or '(none)'}"
    )
    print(f"::{level}::{reason}")
    print(f"plan: gpu={str(gpu).lower()} runs_on={runs_on} launch={str(gpu and launch).lower()}")
    outputs = {
        "gpu": str(gpu).lower(),
        "reason": reason,
        "runs_on": runs_on,
        "launch": str(gpu and launch).lower(),
        "label": args.run_label,
    }
    if os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf8") as fh:
            fh.writelines(f"{key}={value}\n" for key, value in outputs.items())
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf8") as fh:
            fh.write(f"### GPU tier: {'runs' if gpu else 'not run'}\n\n{reason}\n\nRunner: `{runs_on}`\n")
    return 1 if level == "error" else 0


if __name__ == "__main__":
    sys.exit(main())
