"""Several processes (``textclf.models.launch --processes 2``, torchrun, gloo on CPU) give one result:
the same hidden states (and so predictions) as one process, and a DDP fine-tune that resumes after a kill."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from safetensors.torch import load_file

from conftest import KILLER, LAUNCHER, ROOT, copy_encoded, run_main, run_script, stage_command, workspace

pytestmark = pytest.mark.slow  # each run starts torchrun and two Python processes with torch

SPLITS = ("train", "validation", "test")


def test_two_processes_give_the_hidden_states_and_metrics_of_one(tmp_path, e2e_origin, monkeypatch):
    """hidden_states@finetuned on 2 processes in a copy of the reproduced project (1 process there): the same
    states, every row written, and the evaluate stage's metrics from them are the committed ones."""
    work = workspace(e2e_origin, tmp_path / "work")
    result = run_script("hidden_states@finetuned", cwd=work, check=True, processes=2)
    assert "process 2 of 2" in result.stderr
    for split in SPLITS:
        one, two = (np.load(repo / f"data/hidden/finetuned/{split}.npy") for repo in (e2e_origin, work))
        assert two.shape == one.shape == (len(one), 32)
        assert (np.abs(two).sum(axis=1) > 0).all(), "a row nobody wrote (still zeros)"
        np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-5)
    assert not list((work / "data/hidden").glob(".*.tmp")), "no temporary folder left"
    monkeypatch.chdir(work)
    run_main("evaluate")  # from the states the 2 processes wrote
    metrics = json.loads((work / "metrics/finetuned.json").read_text())
    assert metrics == json.loads((e2e_origin / "metrics/finetuned.json").read_text())


def test_ddp_finetune_on_two_processes_resumes_after_sigkill(tmp_path, encoded_small, ddp_reference):
    # 36 train rows, 4 a step (2 a process): 9 steps an epoch, 27 in all; saves at 4, 8, 12; killed at 14
    reference, result = ddp_reference
    interrupted = copy_encoded(encoded_small, tmp_path / "interrupted")
    assert result.stderr.count("trained 27 steps") == 1, "only the first process reports"
    live = json.loads((reference / "dvclive/metrics.json").read_text())
    assert live["step"] == 27
    curve = (reference / "dvclive/plots/metrics/curve_subset/accuracy.tsv").read_text().splitlines()
    assert len(curve) == 1 + 27, "each curve point logged once, by one process"
    record = json.loads((reference / "checkpoints/finetune-run.json").read_text())
    assert record["processes"] == 2 and record["steps"] == 27

    (tmp_path / "killer.py").write_text(KILLER)
    env = {**os.environ, "KILL_AT_STEP": "14", "KILL_RANK": "1", "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    killed = subprocess.run(
        [
            sys.executable,
            "-m",
            LAUNCHER,
            "--processes",
            "2",
            "killer",
            "stages.finetune",
            *stage_command("finetune")[1],
        ],
        cwd=interrupted,
        env=env,
        capture_output=True,
        text=True,
    )
    assert killed.returncode != 0, killed.stderr[-2000:]
    last = [line for line in killed.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("error: killer failed in process 2 of 2 (killed by SIGKILL)"), last
    assert not (interrupted / "models/finetuned").exists(), "no half-written model after a kill"
    saved = sorted(p.name for p in (interrupted / "checkpoints/finetune").glob("*/checkpoint-*"))
    assert saved == ["checkpoint-12"]
    assert sorted(p.name for p in (interrupted / "checkpoints/finetune").glob("*/checkpoint-12/rng_state_*")) == [
        "rng_state_0.pth",
        "rng_state_1.pth",
    ]

    resumed = run_script("finetune", cwd=interrupted, check=True, processes=2)
    assert "resuming from" in resumed.stderr and "checkpoint-12" in resumed.stderr
    expected = load_file(reference / "models/finetuned/model.safetensors")
    actual = load_file(interrupted / "models/finetuned/model.safetensors")
    for name in expected:
        assert (expected[name] == actual[name]).all(), f"{name} differs after resume"
    for name in ("curve_subset/accuracy", "train/loss"):
        assert (interrupted / f"dvclive/plots/metrics/{name}.tsv").read_text() == (
            reference / f"dvclive/plots/metrics/{name}.tsv"
        ).read_text()


def test_batch_that_does_not_split_evenly_is_one_line(tmp_path, encoded_small):
    work = copy_encoded(encoded_small, tmp_path / "work", batch_size=5)
    result = run_script("finetune", cwd=work, processes=2)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, errors  # said once (by the first process), then the launcher's line
    assert errors[0] == "error: finetune.batch_size: 5 rows a step cannot be split evenly between 2 processes"
    assert re.fullmatch(r"error: stages\.finetune failed in process [12] of 2 \(exit code 2\).*", errors[1]), errors
