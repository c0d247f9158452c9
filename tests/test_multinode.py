"""Several machines through torchrun's c10d rendezvous, tested on one: two launchers, each a "machine"
(``PET_NNODES=2``, one process each, gloo, a localhost rendezvous), in one project folder (the shared
filesystem a cluster gives every machine)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from safetensors.torch import load_file

from conftest import KILLER, LAUNCHER, ROOT, copy_encoded, stage_command

pytestmark = pytest.mark.slow  # torchrun, two launchers, four Python processes with torch


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _machines(
    cwd: Path,
    module: tuple[str, ...] = ("stages.finetune",),
    extra_env: dict | None = None,
    python_path: str = str(ROOT),
    timeout: int = 600,
) -> list[subprocess.CompletedProcess]:
    """Start one launcher a machine, both joining one rendezvous; wait for both."""
    env = {
        **os.environ,
        "PET_NNODES": "2",
        "PET_RDZV_ENDPOINT": f"localhost:{_free_port()}",
        "PET_RDZV_ID": uuid.uuid4().hex,
        "PYTHONPATH": python_path,
        **(extra_env or {}),
    }
    args = stage_command("finetune")[1]
    launchers = [
        subprocess.Popen(
            [sys.executable, "-m", LAUNCHER, "--processes", "1", *module, *args],
            cwd=cwd,
            env={**env, "PET_NODE_RANK": str(machine)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for machine in (0, 1)
    ]
    results = []
    for launcher in launchers:
        out, err = launcher.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(launcher.args, launcher.returncode, out, err))
    return results


def test_two_machines_train_the_weights_of_two_processes_on_one(tmp_path, encoded_small, ddp_reference):
    one_machine, _ = ddp_reference
    two_machines = copy_encoded(encoded_small, tmp_path / "two")
    results = _machines(two_machines)
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    assert sum(r.stderr.count("trained 27 steps") for r in results) == 1, "global rank 0 alone reports"
    expected = load_file(one_machine / "models/finetuned/model.safetensors")
    actual = load_file(two_machines / "models/finetuned/model.safetensors")
    for name, tensor in expected.items():
        # the same world size and the same all-reduce: equal up to the order of floating-point reductions
        assert (tensor - actual[name]).abs().max() <= 1e-5, name
    assert (two_machines / "dvclive/plots/metrics").exists()


def test_a_killed_machine_gives_one_line_and_a_resumable_state(tmp_path, encoded_small, ddp_reference):
    # 27 steps, saves at 4, 8, 12: the second machine's process is SIGKILLed at step 14
    reference, _ = ddp_reference
    work = copy_encoded(encoded_small, tmp_path / "work")
    (tmp_path / "killer.py").write_text(KILLER)
    results = _machines(
        work,
        module=("killer", "stages.finetune"),
        python_path=f"{ROOT}{os.pathsep}{tmp_path}",
        extra_env={"KILL_AT_STEP": "14", "KILL_RANK": "1"},
    )
    assert all(r.returncode != 0 for r in results), [r.returncode for r in results]
    last_lines = []
    for result in results:
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        last_lines.append([line for line in result.stderr.splitlines() if line.strip()][-1])
    # the killed machine's launcher names the failed process; the other one says why it stopped
    assert any(line.startswith("error: killer failed in process") for line in last_lines), last_lines
    assert all(line.startswith("error: killer") for line in last_lines), last_lines
    assert not (work / "models/finetuned").exists(), "no half-written model after a kill"
    saved = sorted(p.name for p in (work / "checkpoints/finetune").glob("*/checkpoint-*"))
    assert saved == ["checkpoint-12"]

    results = _machines(work)  # the same two machines again: resume from checkpoint-12
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    assert any("checkpoint-12" in r.stderr and "resuming from" in r.stderr for r in results)
    expected = load_file(reference / "models/finetuned/model.safetensors")
    actual = load_file(work / "models/finetuned/model.safetensors")
    for name, tensor in expected.items():
        assert (tensor - actual[name]).abs().max() <= 1e-5, f"{name} differs after resume"
