#!/usr/bin/env python
"""Reproduce the pipeline in CI: one side of the GPU -> CPU hand-off through the DVC remote.

    python .ci/repro.py gpu [--set device=cuda]
        The GPU job: the GPU-pinned stages (dvc.yaml `meta: {runner: gpu}`) and their upstream, as
        `dvc repro --pull <gpu stages>`: what the remote (outputs or run-cache) holds is restored,
        the rest runs here. The workflow then runs `dvc push --run-cache`.

    python .ci/repro.py cpu [--set device=cuda]
        A CPU job downstream of the GPU job: `dvc repro --pull --allow-missing` of the whole pipeline.
        A GPU-pinned stage must come from the remote (a run-cache entry for its exact deps and params,
        and its outputs): if one would execute here, the job stops before its command starts
        (exit 3), naming the stage. Nothing GPU-pinned ever trains on a CPU runner.

--set KEY=VALUE edits params.yaml first (comments kept; dotted keys for nested values). Use the same
--set in both jobs: a stage's params are part of its run-cache key, so the CPU job finds the GPU job's
results only with the GPU job's values.

`dvc repro` runs in this process through DVC's own command line, so the options, log lines and errors
are DVC's; this script adds a check at the one place where DVC executes a stage's command
(dvc.stage.run.cmd_run) and prints which stages executed on this runner. Both modes fail (exit 2)
when no default DVC remote is configured: the hand-off needs one.
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

EXIT_NO_REMOTE = 2
EXIT_GPU_STAGE_ON_CPU = 3


def set_params(assignments: list[str], path: str = "params.yaml") -> None:
    """Apply KEY=VALUE (VALUE parsed as YAML, KEY dotted for nesting) to params.yaml, keeping comments."""
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


class Guard:
    """Records each stage whose command DVC executes; refuses GPU-pinned ones when `forbid` is set."""

    def __init__(self, gpu_stages: list[str], forbid: bool):
        self.gpu_stages = set(gpu_stages)
        self.forbid = forbid
        self.executed: list[str] = []
        self.blocked: list[str] = []

    def install(self) -> None:
        import dvc.stage.run as stage_run
        from dvc.exceptions import DvcException

        if not callable(getattr(stage_run, "cmd_run", None)):
            raise SystemExit(
                "repro: dvc.stage.run.cmd_run not found: this DVC version is not supported "
                "(requirements.txt pins the one this script was written for)"
            )
        original = stage_run.cmd_run
        guard = self

        def cmd_run(stage, *args, dry=False, **kwargs):
            if not dry:
                if guard.forbid and stage.addressing in guard.gpu_stages:
                    guard.blocked.append(stage.addressing)
                    raise DvcException(
                        f"GPU-pinned stage '{stage.addressing}' would run on this CPU runner: the DVC remote "
                        "holds no run-cache entry with its outputs for these deps and params. Refusing to "
                        "train here."
                    )
                guard.executed.append(stage.addressing)
            return original(stage, *args, dry=dry, **kwargs)

        stage_run.cmd_run = cmd_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["gpu", "cpu"], help="gpu: the GPU job's stages; cpu: the rest")
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="params.yaml override applied first (repeatable); use the same in both jobs",
    )
    parser.add_argument("--summary", metavar="FILE", help="also write {mode, executed, blocked, rc} as JSON")
    args = parser.parse_args(argv)

    remote = default_remote()
    if not remote:
        print(
            "repro: error: no default DVC remote (`dvc remote add -d NAME URL`, committed in .dvc/config): "
            "the GPU and CPU jobs exchange results through it. See docs/ci.md.",
            file=sys.stderr,
        )
        return EXIT_NO_REMOTE
    set_params(args.assignments)

    gpu = stages_for_runner("gpu")
    print(f"repro: mode {args.mode}; default remote {remote!r}; GPU-pinned stages: {', '.join(gpu) or '(none)'}")
    if args.mode == "gpu":
        if not gpu:
            print("repro: dvc.yaml pins no stage to the GPU runner (meta: {runner: gpu}): nothing to do")
            return 0
        command = ["repro", "--pull", *gpu]
    else:
        command = ["repro", "--pull", "--allow-missing"]

    guard = Guard(gpu, forbid=args.mode == "cpu")
    guard.install()
    from dvc.cli import main as dvc_main

    print(f"repro: dvc {' '.join(command)}", flush=True)
    rc = dvc_main(command)
    sys.stdout.flush()
    print(f"repro: stages executed on this runner: {', '.join(guard.executed) or '(none)'}")
    if guard.blocked:
        print(
            f"repro: error: GPU-pinned stage(s) would have run on this CPU runner: {', '.join(guard.blocked)}. "
            "The GPU job must reproduce them and `dvc push --run-cache` first, with the same --set values "
            f"({' '.join(args.assignments) or 'none'}); run the GPU tier (label `gpu` or workflow_dispatch).",
            file=sys.stderr,
        )
        rc = EXIT_GPU_STAGE_ON_CPU
    if args.summary:
        Path(args.summary).write_text(
            json.dumps({"mode": args.mode, "executed": guard.executed, "blocked": guard.blocked, "rc": rc}, indent=1)
        )
    return rc


if __name__ == "__main__":
    sys.exit(main())
