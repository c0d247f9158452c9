"""A fine-tune killed by SIGKILL resumes to the same model (two whole runs giving the same bytes: test_pipeline_e2e)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from conftest import (
    KILLER,
    LABELS,
    ROOT,
    copy_encoded,
    read_jsonl,
    run_main,
    run_script,
    stage_command,
    write_jsonl,
    write_params,
)
from textclf.common.errors import PipelineError


def _prepare(work: Path, small_folder: Path, tiny_model: Path, **finetune) -> None:
    """conftest's ``encoded_small`` with other data or settings: the data and encode stages run in this
    process (the fine-tune, the subject, runs as dvc.yaml runs it)."""
    work.mkdir()
    write_params(
        work / "params.yaml",
        data={"source": str(small_folder)},
        model={"checkpoint": str(tiny_model)},
        finetune={"epochs": 3, "batch_size": 4, "save_steps": 4, **finetune},
    )
    with contextlib.chdir(work):
        run_main("data")
        run_main("encode")


def _weights(work: Path) -> dict:
    return load_file(work / "models/finetuned/model.safetensors")


def _kill_at(step: int, work: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run the finetune stage in ``work``, SIGKILLed once the Trainer reaches ``step``."""
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    env = {**os.environ, "KILL_AT_STEP": str(step), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(killer), "stages.finetune", *stage_command("finetune")[1]],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_the_same_model(tmp_path, encoded_small):
    # 36 train rows / batch 4 = 9 steps an epoch; saves at 4, 8, 12; killed at step 14 (epoch 2)
    reference = copy_encoded(encoded_small, tmp_path / "reference")
    interrupted = copy_encoded(encoded_small, tmp_path / "interrupted")
    run_script("finetune", cwd=reference, check=True)

    killed = _kill_at(14, interrupted, tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (interrupted / "models/finetuned").exists(), "no half-written model after a kill"
    saved = list((interrupted / "checkpoints/finetune").glob("*/checkpoint-*"))
    assert [p.name for p in saved] == ["checkpoint-12"]

    resumed = run_script("finetune", cwd=interrupted, check=True)
    assert "resuming from" in resumed.stderr and "checkpoint-12" in resumed.stderr

    expected, actual = _weights(reference), _weights(interrupted)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert (expected[name] == actual[name]).all(), f"{name} differs after resume"
    ref_live = json.loads((reference / "dvclive/metrics.json").read_text())
    res_live = json.loads((interrupted / "dvclive/metrics.json").read_text())
    assert res_live["curve_subset"] == ref_live["curve_subset"] and res_live["step"] == ref_live["step"] == 27
    for name in ("curve_subset/accuracy", "train/loss"):  # the resumed run's curves are whole: steps 1..27
        ref_curve = (reference / f"dvclive/plots/metrics/{name}.tsv").read_text()
        assert (interrupted / f"dvclive/plots/metrics/{name}.tsv").read_text() == ref_curve
        assert len(ref_curve.splitlines()) == 1 + 27
    assert not list((interrupted / "checkpoints/finetune").glob("*")), "state removed after success"


@pytest.mark.slow
def test_sigkill_after_the_best_point_then_resume_keeps_the_same_best_model(tmp_path, small_folder, tiny_model):
    """best_metric loss: killed 3 steps after the best point (saves at every curve point, every 2 steps),
    whose weights then live only in its checkpoint; the resumed run writes the same weights and marks the same step.
    Validation rows are the train texts with each label moved to the next: the loss dips early, then rises."""
    rows = read_jsonl(small_folder / "train.jsonl")
    write_jsonl(
        small_folder / "validation.jsonl",
        [{"text": r["text"], "label": LABELS[(LABELS.index(r["label"]) + 1) % len(LABELS)]} for r in rows],
    )
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    for work in (reference, interrupted):
        # 36 rows, batch 8: 30 steps, a curve point (and a save) every 2 (the settings of the early-stopping
        # test in test_training_choices.py, where the loss dips then rises)
        _prepare(
            work,
            small_folder,
            tiny_model,
            best_metric="loss",
            learning_rate=0.01,
            batch_size=8,
            epochs=6,
            eval_steps=2,
            precision="fp32",
        )
    run_script("finetune", cwd=reference, check=True)
    best_step = json.loads((reference / "dvclive/metrics.json").read_text())["best_step"]
    curve = (reference / "dvclive/plots/metrics/curve_subset/loss.tsv").read_text()
    assert best_step + 3 < 30, f"the test needs a best point before the last save:\n{curve}"

    assert _kill_at(best_step + 3, interrupted, tmp_path).returncode == -signal.SIGKILL
    saved = sorted(p.name for p in (interrupted / "checkpoints/finetune").glob("*/checkpoint-*"))
    assert saved == sorted([f"checkpoint-{best_step}", f"checkpoint-{best_step + 2}"]), "the best weights are kept"
    assert "resuming from" in run_script("finetune", cwd=interrupted, check=True).stderr

    expected, actual = _weights(reference), _weights(interrupted)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert (expected[name] == actual[name]).all(), f"{name} differs after resume"
    assert (reference / "dvclive/metrics.json").read_bytes() == (interrupted / "dvclive/metrics.json").read_bytes()


def test_a_partial_checkpoint_is_not_resumed(tmp_path):
    """A kill while saving leaves the newest checkpoint without (or with half) its trainer_state.json, which
    the Trainer writes last: the resume is from the newest complete one, which get_last_checkpoint is not."""
    from transformers.trainer_utils import get_last_checkpoint

    from textclf.training.trainer import resumable_state

    state = tmp_path / "0123456789abcdef"
    for step, text in ((8, "{}"), (12, '{"global_step": 12}'), (16, None), (20, '{"global_st')):
        (state / f"checkpoint-{step}").mkdir(parents=True)
        (state / f"checkpoint-{step}/model.safetensors").write_bytes(b"0")
        if text is not None:
            (state / f"checkpoint-{step}/trainer_state.json").write_text(text)
    assert resumable_state(tmp_path, state.name) == (state, str(state / "checkpoint-12"))
    assert get_last_checkpoint(state) == str(state / "checkpoint-20"), "the library's choice: a partial folder"


@pytest.mark.slow
def test_state_of_other_settings_is_not_resumed(tmp_path, encoded_small):
    work = copy_encoded(encoded_small, tmp_path / "work")
    stale = work / "checkpoints/finetune/0123456789abcdef/checkpoint-4"
    stale.mkdir(parents=True)
    (stale / "trainer_state.json").write_text("{}")
    result = run_script("finetune", cwd=work, check=True)
    assert "resuming" not in result.stderr
    assert not stale.parent.exists()


@pytest.mark.parametrize("stage", ["baselines", "umap@pretrained"])
def test_missing_upstream_output_is_one_line(tmp_path, monkeypatch, stage):
    """Asked for in-process (the message); the baselines stage also as dvc.yaml runs it (the exit code and
    the one line on stderr). Two runs of all stages giving the same bytes: test_pipeline_e2e's second run."""
    write_params(tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineError, match=re.escape("not found (run the stage that writes it first: dvc repro)")):
        run_main(stage)
    if stage == "baselines":
        result = run_script(stage, cwd=tmp_path)
        assert result.returncode == 2
        assert "not found (run the stage that writes it first: dvc repro)" in result.stderr.splitlines()[-1]


def test_a_stop_that_python_drops_still_ends_the_stage_with_its_one_line(tmp_path):
    """A signal's exception raised inside cleanup that Python ignores (here: a __del__) would let a stage
    run on; the timer armed by the signal ends it with the same one line and exit code."""
    script = tmp_path / "stage_that_swallows.py"
    script.write_text(
        "import gc, os, signal, time\n"
        "import textclf.common.stage as stage\n"
        "stage.FORCED_EXIT_AFTER_S = 1.0\n"
        "class Slow:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGTERM)  # the handler's exception is raised here and ignored\n"
        "        time.sleep(0.2)\n"
        "def main():\n"
        "    Slow(); gc.collect()\n"
        "    time.sleep(30)  # the stage would run on\n"
        "stage.run_stage(main)\n"
    )
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert time.monotonic() - start < 20, "the forced exit did not fire"
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert result.stderr.count("stopped by SIGTERM") == 1, result.stderr
