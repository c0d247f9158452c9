"""A small copy of the project (tiny model, 36 train rows) reproduced and committed on main, then the
README's sweep run as printed: a 2 x 2 grid queued by `dvc exp run --queue`, run by `dvc queue start`.
The documentation's commands run in it (tests/test_docs_commands.py)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path


def shim(folder: Path) -> Path:
    """A ``textclf`` on PATH that runs ``python -m textclf`` with this venv's Python: the checkout's own code
    (the project copy's, from its root), where the installed command would run the code of its install."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "textclf"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m textclf "$@"\n')
    script.chmod(0o755)
    return folder


def bash(command: str, cwd: Path, ok: bool = True, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """``command`` as a user types it, in bash with pipefail; the venv's dvc and the ``textclf`` shim first
    on PATH; the hub's offline variables set."""
    from conftest import user_env

    env = {**user_env(True), **(env or {})}
    env["PATH"] = f"{shim(cwd.parent / '.bin')}:{env['PATH']}"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], cwd=cwd, text=True, env=env, capture_output=True, **kwargs
    )
    if ok:
        assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def queue_finished(repo: Path) -> bool:
    return not re.search(r"\b(Queued|Running)\b", bash("dvc queue status", repo).stdout)


def wait_for_queue(repo: Path, seconds: float = 1800) -> str:
    """`dvc queue status` once nothing is queued or running."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if queue_finished(repo):
            return bash("dvc queue status", repo).stdout
        time.sleep(3)
    raise AssertionError(f"the queue did not finish in {seconds} s:\n{bash('dvc queue status', repo).stdout}")


def make_swept_repo(root: Path, origin: Path, run, sweep: list[str]) -> dict:
    """A copy of the session's reproduced project (conftest's ``e2e_origin``: its first `dvc repro`'s output is
    the README's first run), `run` once more in it, then the ``sweep`` commands as printed, `dvc queue start`
    with its output in a file as in a terminal (not a pipe: see docs/experiments.md), and a wait for the queue.
    Returns the outputs of the runs and of the sweep."""
    from conftest import workspace

    repo = workspace(origin, root)
    outputs = {"first run": (origin.parent / "first-repro.log").read_text(), "second run": bash(run, repo).stdout}
    for command in sweep:
        if command == "dvc queue start":
            with open(root.parent / "queue-start.log", "w") as log:
                started = time.monotonic()
                subprocess.run(
                    ["bash", "-c", command], cwd=repo, stdout=log, stderr=log, check=True, env=bash_env(repo)
                )
                outputs["queue start seconds"] = time.monotonic() - started
            outputs["queue status"] = wait_for_queue(repo)
        else:
            outputs[command] = bash(command, repo).stdout
    return {"repo": repo, **outputs}


def bash_env(repo: Path) -> dict:
    from conftest import user_env

    env = user_env(True)
    env["PATH"] = f"{shim(repo.parent / '.bin')}:{env['PATH']}"
    return env
