#!/usr/bin/env python
"""Decide whether the CI's GPU tier runs, and on which runner.

    python scripts/ci_plan.py --event pull_request --labels '["gpu"]' --fork false \
        --run-label cml-gpu-123-1 [--runs-on "$GPU_RUNS_ON"] [--dispatch-gpu true]

The GPU tier runs
  - on workflow_dispatch when its `gpu` input is true (the default);
  - on a pull request labelled `gpu`;
  - on a pull request or a push when a GPU-pinned stage (dvc.yaml `meta: {runner: gpu}`) is out of date:
    `dvc status` finds its command, params or code deps changed against dvc.lock, or those of a stage
    upstream of it (missing data does not count: CI checkouts have none);
  - never on a pull request from a fork (GitHub gives fork pull requests no secrets): a warning says so.

The runner: when --runs-on (the repository variable GPU_RUNS_ON) is set, the JSON given there
(a label or a list of labels: a self-hosted GPU runner, a GitHub-hosted GPU larger runner); otherwise
a cloud machine started by `cml runner launch` and registered with --run-label, unique to the run.

Prints the decision; with $GITHUB_OUTPUT set, writes gpu, reason, changed, launch, runs_on, label there,
and appends the decision to $GITHUB_STEP_SUMMARY.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

GPU_LABEL = "gpu"


def changed_gpu_stages(repo_root: str | Path = ".") -> list[str]:
    """GPU-pinned stages whose command, params or non-generated deps differ from dvc.lock, or with such an
    upstream stage. Outputs and generated deps that are merely missing are ignored (`allow_missing`)."""
    import networkx as nx
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    cwd = os.getcwd()
    os.chdir(repo_root)  # stage names as `dvc repro` takes them from the repository root
    try:
        with Repo(".") as repo, repo.lock:
            graph = repo.index.graph  # edges go from a stage to the stages whose outputs it depends on
            stages = [s for s in repo.index.stages if isinstance(s, PipelineStage)]
            changed = {s for s in stages if s.changed(allow_missing=True)}
            result = []
            for stage in stages:
                meta = stage.meta if isinstance(stage.meta, dict) else {}
                if meta.get("runner") != "gpu":
                    continue
                if stage in changed or changed & nx.descendants(graph, stage):
                    result.append(stage.addressing)
            return result
    finally:
        os.chdir(cwd)


def decide(event: str, labels: list[str], fork: bool, dispatch_gpu: bool,
           changed: list[str] | None) -> tuple[bool, str, str]:
    """(run the GPU tier?, why, GitHub annotation level). `changed` is None when it was not computed."""
    if event == "workflow_dispatch":
        if dispatch_gpu:
            return True, "started by hand (workflow_dispatch, input gpu: true)", "notice"
        return False, "started by hand with input gpu: false", "notice"
    wanted = []
    if event == "pull_request" and GPU_LABEL in labels:
        wanted.append(f"the pull request has the `{GPU_LABEL}` label")
    if changed:
        wanted.append(f"GPU-pinned stage(s) out of date against dvc.lock: {', '.join(changed)}")
    if event == "pull_request" and fork:
        if wanted:
            return False, ("GPU tier skipped: this pull request comes from a fork, and GitHub gives fork pull requests "
                           "no secrets (cloud credentials, DVC remote). It would have run because "
                           + "; ".join(wanted) + ". A maintainer can run it on a branch of this repository "
                           "(push the branch, or Actions > CI > Run workflow)."), "warning"
        return False, "GPU tier not needed (pull request from a fork; no GPU-pinned stage changed)", "notice"
    if wanted:
        return True, "; ".join(wanted), "notice"
    return False, ("GPU tier not needed: no GPU-pinned stage changed against dvc.lock"
                   + (f" (add the `{GPU_LABEL}` label to run it anyway)" if event == "pull_request" else "")), "notice"


def runner(runs_on: str, run_label: str) -> tuple[bool, str]:
    """(launch a CML machine?, runs-on as JSON)."""
    if runs_on.strip():
        try:
            value = json.loads(runs_on)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"GPU_RUNS_ON: not JSON ({exc}): give a label in quotes, e.g. '\"gpu-t4\"', "
                             "or a list, e.g. '[\"self-hosted\", \"gpu\"]'") from exc
        ok = isinstance(value, str) and value or (
            isinstance(value, list) and value and all(isinstance(v, str) and v for v in value))
        if not ok:
            raise SystemExit(f"GPU_RUNS_ON: {runs_on!r} is neither a label nor a list of labels")
        return False, json.dumps(value)
    if not run_label:
        raise SystemExit("--run-label is needed when GPU_RUNS_ON is not set (the label of the CML machine)")
    return True, json.dumps(["self-hosted", run_label])


def _bool(text: str) -> bool:
    return str(text).strip().lower() in ("1", "true", "yes", "on")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--event", required=True, help="github.event_name")
    parser.add_argument("--labels", default="[]", help="JSON list of the pull request's label names")
    parser.add_argument("--fork", default="false", help="true when the pull request's head is another repository")
    parser.add_argument("--dispatch-gpu", default="true", help="workflow_dispatch input gpu")
    parser.add_argument("--runs-on", default="", help="repository variable GPU_RUNS_ON (JSON), empty: CML")
    parser.add_argument("--run-label", default="", help="label of the CML machine, unique to the run")
    parser.add_argument("--repo", default=".", help="DVC repository root")
    args = parser.parse_args(argv)

    labels = json.loads(args.labels or "[]") or []
    changed = None
    if args.event != "workflow_dispatch":
        changed = changed_gpu_stages(args.repo)
        print(f"ci_plan: GPU-pinned stages out of date: {', '.join(changed) or '(none)'}")
    gpu, reason, level = decide(args.event, labels, _bool(args.fork), _bool(args.dispatch_gpu), changed)
    launch, runs_on = runner(args.runs_on, args.run_label)
    print(f"::{level}::{reason}")
    print(f"ci_plan: gpu={str(gpu).lower()} launch={str(launch).lower()} runs_on={runs_on}")
    outputs = {"gpu": str(gpu).lower(), "reason": reason, "changed": ",".join(changed or []),
               "launch": str(gpu and launch).lower(), "runs_on": runs_on, "label": args.run_label}
    if os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf8") as fh:
            fh.writelines(f"{key}={value}\n" for key, value in outputs.items())
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf8") as fh:
            fh.write(f"### GPU tier: {'runs' if gpu else 'skipped'}\n\n{reason}\n\nRunner: `{runs_on}`"
                     f"{' (started by cml runner launch)' if gpu and launch else ''}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
