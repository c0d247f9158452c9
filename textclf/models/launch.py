"""Run a stage on N processes: ``python -m textclf.models.launch [--processes N] stages.<name> [args...]``.

N (default: the ``processes`` param) > 1 runs under torchrun, failures in one line; docs/several-machines.md."""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import shlex
import signal
import sys

from textclf.common.errors import PipelineError, first_line, print_error
from textclf.common.params import load_params


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m textclf.models.launch", description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, help="processes a machine (default: the `processes` param)")
    parser.add_argument("--dvc-stage", help="run this dvc.yaml stage's command (e.g. hidden_states@finetuned)")
    parser.add_argument("module", nargs="?", help="the stage to run, e.g. stages.finetune")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the stage's own arguments")
    args = parser.parse_args(argv)
    if args.dvc_stage:
        if args.processes is not None or args.module:
            parser.error("--dvc-stage takes the processes, module and arguments from dvc.yaml: give nothing else")
        return parse_args(dvc_stage_command(args.dvc_stage))
    if not args.module:
        parser.error("a module to run is required (e.g. stages.finetune)")
    if args.processes is None:  # the `processes` param of the params file the stage reads (--params, else params.yaml)
        given = [a.split("=", 1)[1] for a in args.args if a.startswith("--params=")]
        given += [args.args[i + 1] for i, a in enumerate(args.args[:-1]) if a == "--params"]
        try:
            args.processes = load_params(given[-1] if given else "params.yaml").processes
        except PipelineError as exc:
            print_error(exc)
            sys.exit(2)
    if args.processes < 1:
        parser.error(f"--processes: {args.processes} is not a positive count")
    return args


def dvc_stage_command(stage: str) -> list[str]:
    """The arguments after ``python -m textclf.models.launch`` in ``stage``'s command, as DVC resolves it."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo() as repo:
            commands = [s.cmd for s in repo.stage.collect(stage)]
    except DvcException as exc:
        sys.exit(f"error: --dvc-stage {stage}: {first_line(exc)}")
    words = shlex.split(commands[0]) if len(commands) == 1 else []
    if words[:3] != ["python", "-m", "textclf.models.launch"]:
        sys.exit(f"error: --dvc-stage {stage}: not one stage run through textclf.models.launch (see dvc.yaml)")
    return words[3:]


def nodes() -> int:
    """Machines taking part, from torchrun's ``PET_NNODES`` (1 when unset)."""
    value = os.environ.get("PET_NNODES", "1")
    if not value.isdigit() or int(value) < 1:
        sys.exit(
            f"error: PET_NNODES: {value!r} is not a positive count of machines (a range such as 1:2 is not "
            "supported: the outputs must not depend on how many machines joined)"
        )
    if int(value) > 1 and not os.environ.get("PET_RDZV_ENDPOINT"):
        sys.exit(
            "error: PET_NNODES is above 1 but PET_RDZV_ENDPOINT is unset: set it to host:port of the first "
            "machine (the same on every machine)"
        )
    return int(value)


def torchrun(processes: int, module: str, args: list[str], machines: int = 1) -> int:
    """Run ``module`` on ``processes`` processes a machine under torchrun; its exit status."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.run import get_args_parser, run

    # torchrun would set 1 thread a process and warn; on a CPU the processes share the cores instead
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its failure report: one line below
    where = ["--standalone"] if machines == 1 else [f"--nnodes={machines}", "--rdzv-backend=c10d"]
    config = get_args_parser().parse_args([*where, f"--nproc-per-node={processes}", "--module", module, *args])
    try:
        run(config)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()  # the others were stopped by torchrun because of it
        code = failure.exitcode
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        process = f"process {rank + 1} of {processes * machines} ({how})"
        print(f"error: {module} failed in {process}; its own message, if any, is above", file=sys.stderr)
        return 128 - code if code < 0 else code or 1
    except SignalException as exc:
        return 128 + int(exc.sigval)
    except RendezvousError as exc:  # another machine (the one hosting the rendezvous) went away
        endpoint = os.environ.get("PET_RDZV_ENDPOINT")
        print(
            f"error: {module}: lost the rendezvous at {endpoint} ({type(exc).__name__}: the machine hosting it "
            "stopped?); its processes were stopped: run the same command again on every machine to resume",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machines = nodes()
    if args.processes == 1 and machines == 1:
        sys.argv = [args.module, *args.args]
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
        return 0
    return torchrun(args.processes, args.module, args.args, machines)


if __name__ == "__main__":
    sys.exit(main())
