#!/usr/bin/env python
"""Reproduce the pipeline in CI: one side of the GPU -> CPU hand-off through the DVC remote (docs/ci.md).

    python .ci/repro.py gpu [--set device=cuda]   # `dvc repro --pull <GPU-pinned stages>` (and their upstream)
    python .ci/repro.py cpu [--set device=cuda]   # `dvc repro --pull --allow-missing`: the rest; a GPU-pinned
                                                  # stage must come from the remote, or the job stops (exit 3)

--set KEY=VALUE edits params.yaml first (comments kept, dotted keys); use the same in both jobs, since params are
part of the run-cache key. DVC runs in this process; a wrapper around dvc.stage.run.cmd_run, the one place DVC
executes a stage's command, refuses GPU-pinned stages in cpu mode. Exit 2 without a default DVC remote.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dvc_remote_plugin import default_remote  # noqa: E402
from plan import stages_for_runner  # noqa: E402

EXIT_NO_REMOTE, EXIT_GPU_STAGE_ON_CPU = 2, 3


def set_params(assignments: list[str], path: str = "params.yaml") -> None:
    from dvc.utils.serialize import modify_yaml

    if not assignments:
        return
    with modify_yaml(path) as data:
        for assignment in assignments:
            key, sep, raw = assignment.partition("=")
            if not sep or not key:
                raise SystemExit(f"--set {assignment!r}: expected KEY=VALUE")
            *parents, leaf = key.split(".")
            node = data
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise SystemExit(f"--set {assignment!r}: {path} has no section {part!r}")
                node = node[part]
            node[leaf] = yaml.safe_load(raw)
            print(f"repro: {path}: {key} = {node[leaf]!r}")


def guard(gpu_stages: set[str], forbid: bool, executed: list[str], blocked: list[str]) -> None:
    """Record each stage whose command DVC executes; refuse GPU-pinned ones when `forbid` is set."""
    import dvc.stage.run as stage_run
    from dvc.exceptions import DvcException

    original = getattr(stage_run, "cmd_run", None)
    if not callable(original):
        raise SystemExit("repro: dvc.stage.run.cmd_run not found: a DVC version other than requirements.txt's")

    def cmd_run(stage, *args, dry=False, **kwargs):
        if not dry and forbid and stage.addressing in gpu_stages:
            blocked.append(stage.addressing)
            raise DvcException(
                f"GPU-pinned stage '{stage.addressing}' would run on this CPU runner: the DVC remote holds no "
                "run-cache entry with its outputs for these deps and params. Refusing to train here."
            )
        executed.extend([] if dry else [stage.addressing])
        return original(stage, *args, dry=dry, **kwargs)

    stage_run.cmd_run = cmd_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["gpu", "cpu"], help="gpu: the GPU job's stages; cpu: the rest")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--summary", metavar="FILE", help="also write {mode, executed, blocked, rc} as JSON")
    args = parser.parse_args(argv)
    remote = default_remote()
    if not remote:
        print("repro: error: no default DVC remote (`dvc remote add -d NAME URL`): see docs/ci.md", file=sys.stderr)
        return EXIT_NO_REMOTE
    set_params(args.assignments)
    gpu = stages_for_runner("gpu")
    print(f"repro: mode {args.mode}; default remote {remote!r}; GPU-pinned stages: {', '.join(gpu) or '(none)'}")
    if args.mode == "gpu" and not gpu:
        print("repro: dvc.yaml pins no stage to the GPU runner (meta: {runner: gpu}): nothing to do")
        return 0
    command = ["repro", "--pull", *gpu] if args.mode == "gpu" else ["repro", "--pull", "--allow-missing"]
    executed, blocked = [], []
    guard(set(gpu), args.mode == "cpu", executed, blocked)
    from dvc.cli import main as dvc_main

    print(f"repro: dvc {' '.join(command)}", flush=True)
    rc = dvc_main(command)
    sys.stdout.flush()
    print(f"repro: stages executed on this runner: {', '.join(executed) or '(none)'}")
    if blocked:
        print(
            f"repro: error: GPU-pinned stage(s) would have run on this CPU runner: {', '.join(blocked)}. The GPU job "
            f"must reproduce them and push the run-cache first, with the same --set ({' '.join(args.assignments)}).",
            file=sys.stderr,
        )
        rc = EXIT_GPU_STAGE_ON_CPU
    if args.summary:
        summary = {"mode": args.mode, "executed": executed, "blocked": blocked, "rc": rc}
        Path(args.summary).write_text(json.dumps(summary, indent=1))
    return rc


if __name__ == "__main__":
    sys.exit(main())
