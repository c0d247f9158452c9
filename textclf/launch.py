"""Run a stage on N processes: ``python -m textclf.launch --processes N stages.<name> [args...]``.

dvc.yaml runs finetune, hidden_states and evaluate this way, with N from the ``processes`` param.
N = 1 runs the stage in this very process, exactly as ``python -m stages.<name>`` would. N > 1 hands it
to torchrun (``torch.distributed.run``, one machine, a free port), which starts N copies with
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set and stops them all when one fails; the HF Trainer then
trains with DDP and the inference stages split their rows (``textclf.distributed``). A failure ends
as the stage's own one-line error followed by one line from here, not torchrun's traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import signal
import sys


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m textclf.launch", description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, required=True, help="how many processes (the `processes` param)")
    parser.add_argument("module", help="the stage to run, e.g. stages.finetune")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the stage's own arguments")
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error(f"--processes: {args.processes} is not a positive count")
    return args


def torchrun(processes: int, module: str, args: list[str]) -> int:
    """Run ``module`` on ``processes`` local processes under torchrun; its exit status."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    # torchrun would set 1 thread a process and warn; on a CPU the processes share the cores instead
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its failure report: one line below
    config = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={processes}", "--module", module, *args]
    )
    try:
        run(config)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()  # the others were stopped by torchrun because of it
        code = failure.exitcode
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        print(f"error: {module} failed in process {rank + 1} of {processes} ({how}); its own message, if any, "
              "is above", file=sys.stderr)
        return 128 - code if code < 0 else code or 1
    except SignalException as exc:
        return 128 + int(exc.sigval)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.processes == 1:
        sys.argv = [args.module, *args.args]
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
        return 0
    return torchrun(args.processes, args.module, args.args)


if __name__ == "__main__":
    sys.exit(main())
