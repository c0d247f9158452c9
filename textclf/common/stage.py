"""A stage's lifecycle: logging, clean stops on signals or when DVC goes away, one-line exits."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textclf.common.errors import PipelineError, print_error
from textclf.common.params import load_params

# dvc.lock's last good outputs: the cached ones from DVC, the git-tracked headline and plot data from git
RESTORE_COMMAND = "dvc checkout --force && git checkout -- metrics plots"


class Stopped(BaseException):
    """Raised on SIGTERM or SIGINT so that ``finally`` blocks remove temporary outputs."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# Python drops an exception raised while it runs some cleanup (a ``__del__``, a garbage collection): a stop
# raised then would be lost and the stage would run on. So a signal also arms a timer that ends the process
# this many seconds later with the same one line, if the exception has not ended it by then.
FORCED_EXIT_AFTER_S = 20.0
_stop_line = {"hint": "", "printed": False}


def _report_stop(signum: int) -> None:
    if not _stop_line["printed"] and os.environ.get("RANK", "0") == "0":
        _stop_line["printed"] = True
        print(f"stopped by {signal.Signals(signum).name}{_stop_line['hint']}", file=sys.stderr, flush=True)


def _forced_exit(signum: int) -> None:
    _report_stop(signum)
    os._exit(128 + signum)


def _on_signal(signum, frame):
    timer = threading.Timer(FORCED_EXIT_AFTER_S, _forced_exit, args=(signum,))
    timer.daemon = True
    timer.start()
    raise Stopped(signum)


def _ancestors_up_to_dvc(max_depth: int = 4) -> list[int]:
    """The parent process and its parents up to DVC (a shell may sit between): if one dies, nobody waits for us."""
    pids, pid = [], os.getppid()
    for _ in range(max_depth):
        if pid <= 1:
            break
        pids.append(pid)
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        head = argv[:3]  # runs DVC (dvc repro, python -m dvc), not only names it (--live dvclive)
        if b"dvc" in map(os.path.basename, head) or b"-m dvc" in b" ".join(head):
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return pids


def _stop_when_orphaned(pids: list[int], parent: int, interval: float = 1.0) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent or not all(Path(f"/proc/{pid}").exists() for pid in pids):
            os.kill(os.getpid(), signal.SIGTERM)
            return


class StageParser(argparse.ArgumentParser):
    """A stage's command line: its docstring's first line, ``--params`` (params.yaml), the rest added by the stage."""

    def __init__(self, doc: str):
        super().__init__(description=doc.splitlines()[0])
        self.add_argument("--params", type=Path, default=Path("params.yaml"))

    def parse(self, argv: list[str] | None, section: str = "") -> tuple[argparse.Namespace, Any]:
        """The arguments, and the params (only ``section`` of them, if named): every stage checks the whole file."""
        args = self.parse_args(argv)
        params = load_params(args.params)
        return args, getattr(params, section) if section else params


def run_stage(main: Callable[[], None], dvc_note: str | None = None) -> None:
    """Run a stage's ``main``: bad input exits 2 in one line, a signal 128 + signal, a bug with its traceback."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("transformers").setLevel(logging.WARNING)  # its INFO lines are internals
    under_dvc = "DVC_STAGE" in os.environ
    restore = f" (dvc repro removed this stage's earlier outputs: restore the last good ones with `{RESTORE_COMMAND}`)"
    hint = dvc_note or restore
    _stop_line["hint"] = hint if under_dvc else ""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        if under_dvc and sys.platform.startswith("linux"):
            if os.getppid() == 1:  # DVC died while this process was still importing its modules
                raise Stopped(signal.SIGTERM)
            watched = _ancestors_up_to_dvc()
            threading.Thread(target=_stop_when_orphaned, args=(watched, os.getppid()), daemon=True).start()
        main()
    except PipelineError as exc:
        # bad input is the same for every process of a run (textclf.models.launch): the first one says it
        if os.environ.get("RANK", "0") == "0":
            print_error(exc, hint if under_dvc else "")
        sys.exit(2)
    except RuntimeError as exc:
        # another process of the run went away (on another machine: torchrun cannot stop this one)?
        world = int(os.environ.get("WORLD_SIZE", "1"))
        signs = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")
        lost = type(exc).__name__ in ("DistBackendError", "DistNetworkError") or any(s in str(exc) for s in signs)
        if world < 2 or not lost:
            raise
        print(
            f"error: process {int(os.environ.get('RANK', 0)) + 1} of {world} lost its connection to another process "
            "of this run (that process or its machine stopped; its own message, if any, is on its machine); "
            "run the same command again: fine-tuning resumes from its last saved state",
            file=sys.stderr,
        )
        sys.exit(1)
    except (Stopped, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
        _report_stop(signum)  # one line for all the processes of a run
        sys.exit(128 + signum)
