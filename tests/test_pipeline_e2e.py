"""End to end, the way users run it: `dvc repro` and `dvc exp run` in real git clones or copies of a small
copy of the project.

The session's one reproduced repository (conftest's ``e2e_origin``: tiny model, 60 rows, pushed to a
local-folder DVC remote) is never changed; each test works in its own `git clone` of it (as a teammate or CI
would) or, where getting a checkout is not the subject, a ``workspace`` copy of it.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import (
    LABELS,
    dvc_status,
    few_rows,
    git_clone,
    outputs,
    ran_stages,
    sh,
    user_env,
    wait_for,
    wait_for_queue,
    workspace,
    write_jsonl,
)
from textclf.common.stage import RESTORE_COMMAND

pytestmark = pytest.mark.slow

STAGES = {
    "params",
    "data",
    "encode",
    "finetune",
    "hidden_states@pretrained",
    "hidden_states@finetuned",
    "baselines",
    "umap@pretrained",
    "umap@finetuned",
    "evaluate",
    "headline",
    "error_analysis",
    "model_card",
}


@pytest.fixture
def origin(e2e_origin) -> Path:
    return e2e_origin


def test_repro_writes_every_output_and_then_has_nothing_to_do(origin):
    assert set(sh("dvc", "stage", "list", "--name-only", cwd=origin).stdout.split()) == STAGES
    for split, rows in (("train", 36), ("validation", 12), ("test", 12)):
        assert len(pd.read_parquet(origin / f"data/prepared/{split}.parquet")) == rows
        assert len(pd.read_parquet(origin / f"data/encoded/{split}.parquet")) == rows
        for encoder in ("pretrained", "finetuned"):
            assert np.load(origin / f"data/hidden/{encoder}/{split}.npy").shape == (rows, 32)
    baselines = json.loads((origin / "metrics/baselines.json").read_text())
    finetuned = json.loads((origin / "metrics/finetuned.json").read_text())
    assert set(baselines["logistic_regression"]) == {"train", "validation", "test"}
    assert set(finetuned) >= {"validation", "test"}
    assert (origin / "models/finetuned/model.safetensors").is_file()
    for png in ("baselines/confusion", "finetuned/confusion", "umap/pretrained", "umap/finetuned"):
        with Image.open(origin / f"plots/{png}.png") as image:
            assert image.size[0] > 100
    assert set(pd.read_csv(origin / "plots/umap/finetuned.csv")["label"]) == set(LABELS)
    assert pd.read_csv(origin / "plots/errors/label_loss.csv")["label"].tolist() == LABELS
    assert len(pd.read_csv(origin / "plots/errors/top_losses.csv")) == 12  # top_n 50 > 12 validation rows
    assert f"value: {finetuned['test']['f1_weighted']}" in (origin / "models/MODEL_CARD.md").read_text()
    assert not ran_stages(sh("dvc", "repro", cwd=origin))
    assert sh("git", "status", "--porcelain", cwd=origin).stdout == ""


def test_every_stage_is_in_the_run_cache(origin):
    """DVC keeps a stage out of the run-cache if a cache: false output is declared under outs:."""
    runs = [p for p in (origin / ".dvc/cache/runs").glob("*/*") if p.is_dir()]
    assert len(runs) == len(STAGES), f"{len(runs)} run-cache entries for {len(STAGES)} stages"


def test_exp_run_on_two_processes_then_back_from_the_remote_run_cache(origin, tmp_path):
    """`dvc exp run -S processes=2 finetune hidden_states@pretrained`: stages launched through
    textclf.models.launch rerun on 2 processes (torchrun, gloo on CPU); the states agree with the 1-process
    run to fp32 rounding (hidden_states@finetuned on 2 processes: test_distributed). Then params.yaml back as
    committed (A, run in origin -> B, run here -> A): `dvc repro --pull` restores every output from the
    remote's run-cache and runs nothing."""
    repo = git_clone(origin, tmp_path / "repo")
    launched = {"finetune", "hidden_states@pretrained"}
    result = sh("dvc", "exp", "run", "-S", "processes=2", "-n", "two-processes", *sorted(launched), cwd=repo)
    assert launched <= ran_stages(result) and "data" not in ran_stages(result), ran_stages(result)
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    for stage in launched:
        name, _, key = stage.partition("@")
        entry = lock[name] if not key else lock[stage]
        assert entry["params"]["params.yaml"]["processes"] == 2 and "${" not in entry["cmd"]
    for split in ("train", "validation", "test"):  # the pretrained encoder: the same rows, split between 2
        one = np.load(origin / f"data/hidden/pretrained/{split}.npy")
        np.testing.assert_allclose(np.load(repo / f"data/hidden/pretrained/{split}.npy"), one, rtol=1e-5, atol=1e-5)
    live = json.loads((repo / "dvclive/metrics.json").read_text())
    assert live["step"] == json.loads((origin / "dvclive/metrics.json").read_text())["step"] == 10
    record = json.loads((repo / "checkpoints/finetune-run.json").read_text())
    assert record["processes"] == 2
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    names = [e.get("name") for rev in shown for e in (rev.get("experiments") or [])]
    assert "two-processes" in names

    sh("git", "checkout", "--", "params.yaml", cwd=repo)
    back = sh("dvc", "repro", "--pull", cwd=repo)
    assert not ran_stages(back), back.stdout
    assert "Stage 'finetune' is cached - skipping run" in back.stdout
    assert outputs(repo) == outputs(origin)
    assert sh("git", "status", "--porcelain", cwd=repo).stdout == ""


def test_a_teammate_reproduces_from_the_remote_run_cache_without_running_a_stage(origin, tmp_path):
    repo = git_clone(origin, tmp_path / "teammate", pull=False)
    result = sh("dvc", "repro", "--pull", cwd=repo)
    assert not ran_stages(result), result.stdout
    assert outputs(repo) == outputs(origin)
    assert dvc_status(repo) == {}


def test_a_second_run_without_the_offline_variables_gives_the_same_bytes(origin, tmp_path):
    """A fresh run of every stage without HF_*_OFFLINE (the origin ran with them) gives the same bytes and
    dvc.lock: every output (states, weights, metrics, plot data, curves) is deterministic and does not
    depend on the offline variables."""
    repo = git_clone(origin, tmp_path / "online", pull=False)
    result = sh("dvc", "repro", "--force", cwd=repo, offline=False)
    assert ran_stages(result) == STAGES
    assert sh("git", "status", "--porcelain", cwd=repo).stdout == "", "dvc.lock or a git-tracked output changed"
    assert outputs(repo) == outputs(origin)


def test_two_clones_sharing_one_venv_run_their_own_code(origin, tmp_path):
    first, second = workspace(origin, tmp_path / "first"), workspace(origin, tmp_path / "second")
    data_py = second / "textclf/io/sources.py"
    data_py.write_text(
        data_py.read_text().replace(
            "    return Dataset(splits=splits",
            '    log.warning("code of the second clone")\n    return Dataset(splits=splits',
        )
    )
    assert "code of the second clone" in sh("dvc", "repro", "--force", "data", cwd=second).stderr
    assert "code of the second clone" not in sh("dvc", "repro", "--force", "data", cwd=first).stderr


def restore(repo: Path) -> None:
    """The documented way back to the last good outputs."""
    subprocess.run(RESTORE_COMMAND, shell=True, cwd=repo, check=True, capture_output=True, env=user_env())


def test_bad_data_under_dvc_repro_then_restore(origin, tmp_path):
    repo = workspace(origin, tmp_path / "repo")
    before = outputs(repo)
    train = repo / "data/sample/train.jsonl"
    lines = train.read_text().splitlines()
    train.write_text("\n".join(lines[:2] + ['{"text": "fine", "label": 9}'] + lines[2:]) + "\n")
    result = sh("dvc", "repro", cwd=repo, ok=False)
    assert result.returncode != 0
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "train.jsonl: line 3:" in error[0] and "9" in error[0], error
    assert RESTORE_COMMAND in error[0]
    assert not (repo / "data/prepared").exists()  # DVC removed it before running the stage

    sh("git", "checkout", "--", "data/sample", cwd=repo)  # the fix
    restore(repo)
    assert outputs(repo) == before
    assert dvc_status(repo) == {}
    assert sh("git", "status", "--porcelain", cwd=repo).stdout == ""


def stage_processes(repo: Path, module: str) -> list[int]:
    """PIDs of `python -m <module>` processes running in ``repo``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if module.encode() in cmdline and os.path.realpath(proc / "cwd") == str(repo.resolve()):
                pids.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return pids


@pytest.mark.parametrize(
    "how",
    ["SIGINT to the process group (Ctrl-C)", "SIGTERM to dvc", "SIGKILL to the stage", "SIGTERM to dvc, 2 processes"],
)
def test_a_stopped_repro_leaves_no_orphan_and_restores(origin, tmp_path, how):
    repo = workspace(origin, tmp_path / "repo")
    before = outputs(repo)
    stage, module = (
        ("hidden_states@pretrained", "stages.hidden_states") if "SIGKILL" in how else ("finetune", "stages.finetune")
    )
    if module == "stages.finetune":  # a run that cannot end before the signal, however fast the machine
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["finetune"]["min_steps"] = 100_000
        params["processes"] = 2 if "2 processes" in how else 1  # torchrun's workers: two levels below dvc
        (repo / "params.yaml").write_text(yaml.safe_dump(params))
    log = tmp_path / "repro.log"  # a file, not a pipe: nobody reads a pipe while the stage writes to it
    with open(log, "w") as sink:
        dvc = subprocess.Popen(
            [shutil.which("dvc", path=user_env()["PATH"]), "repro", "--force", "--single-item", stage],
            cwd=repo,
            env=user_env(),
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
    try:
        pid = wait_for(lambda: stage_processes(repo, module), 60, f"{module} to start")[0]
        if module == "stages.finetune":  # mid-training: after the first saved state
            wait_for(lambda: list(repo.glob("checkpoints/finetune/*/checkpoint-*")), 120, "a saved training state")
        else:
            time.sleep(1.0)
        if "SIGINT" in how:
            os.killpg(dvc.pid, signal.SIGINT)
        elif "SIGTERM" in how:
            dvc.send_signal(signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGKILL)
        dvc.wait(timeout=60)
        wait_for(lambda: not stage_processes(repo, module), 15, "the stage process to stop")
    finally:
        try:  # whatever a failed assertion leaves running in dvc's process group: no orphan outlives the test
            os.killpg(dvc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert dvc.returncode != 0
    stderr = log.read_text()
    if "SIGKILL" not in how:
        assert RESTORE_COMMAND in stderr, stderr[-2000:]
        assert stderr.count("stopped by") == 1, "one line for all the processes"
    if "SIGTERM" not in how:  # dvc itself was not killed: it reports the stage's failure
        assert "failed to reproduce" in stderr.lower() or "ERROR" in stderr, stderr[-2000:]

    sh("git", "checkout", "--", "params.yaml", cwd=repo)  # the user's edit, undone
    restore(repo)
    assert outputs(repo) == before
    assert dvc_status(repo) == {}
    assert sh("git", "status", "--porcelain", cwd=repo).stdout == "", "a temporary folder or output is left"


def test_queued_experiment_with_a_relative_data_source_and_label_names_no_yes(origin, tmp_path):
    """`dvc exp run --queue` runs in a copy under .dvc/tmp/exps: ../binary there must mean the same folder.
    `-S 'data.label_names=[no,yes]'` writes `- no` / `- yes` (YAML 1.2 strings): every stage reads two
    strings, as DVC does, end to end into the model's labels (seen after `dvc exp apply`)."""
    repo = workspace(origin, tmp_path / "repo")
    for split, per_label in (("train", 6), ("validation", 2), ("test", 2)):
        rows = [
            {"text": row["text"], "label": int(row["label"] == "joy")}
            for row in few_rows(split, per_label)
            if row["label"] in ("sadness", "joy")
        ]
        write_jsonl(tmp_path / "binary" / f"{split}.jsonl", rows)
    settings = ["-S", "data.label_names=[no,yes]", "-S", "data.source=../binary", "-S", "finetune.epochs=1"]
    sh("dvc", "exp", "run", "--queue", "-n", "no-yes", *settings, cwd=repo)
    sh("dvc", "queue", "start", "-j", "1", cwd=repo)
    try:
        status = wait_for_queue(repo, 1, 600)
    finally:
        sh("dvc", "queue", "stop", "--kill", cwd=repo, ok=False)
    logs = sh("dvc", "queue", "logs", "no-yes", cwd=repo, ok=False).stdout
    assert "Success" in status, f"{status}\n{logs[-3000:]}"
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    experiments = [e for rev in shown for e in (rev.get("experiments") or [])]
    assert any(e.get("name") == "no-yes" for e in experiments), shown

    sh("dvc", "exp", "apply", "no-yes", cwd=repo)
    assert yaml.safe_load((repo / "params.yaml").read_text())["data"]["label_names"] == [False, True]  # YAML 1.1
    assert json.loads((repo / "data/prepared/labels.json").read_text()) == ["no", "yes"]
    config = json.loads((repo / "models/finetuned/config.json").read_text())
    assert config["id2label"] == {"0": "no", "1": "yes"}
    assert set(pd.read_csv(repo / "plots/umap/finetuned.csv")["label"]) == {"no", "yes"}


# --- params.yaml: checked first, read as DVC reads it ---------------------------------------------


def timed(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a command: its result, wall seconds and CPU seconds (user + system, all its processes)."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    result = sh(*args, cwd=cwd, ok=False)
    wall, after = time.monotonic() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    return result, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def test_a_params_mistake_stops_repro_in_seconds_and_removes_nothing(origin, tmp_path):
    """A typo once cost the model: DVC removed models/finetuned, then the stage failed after importing torch."""
    repo = workspace(origin, tmp_path / "repo")
    before = outputs(repo)
    good = (repo / "params.yaml").read_text()

    def edited(change) -> str:
        params = yaml.safe_load(good)
        change(params)
        return yaml.safe_dump(params)

    mistakes = [
        (
            edited(lambda p: p["finetune"].update(learning_rte=p["finetune"].pop("learning_rate"))),
            "error: params.yaml: unknown parameter 'finetune.learning_rte' (line ",
            "did you mean 'learning_rate'?",
        ),
        (
            edited(lambda p: p["finetune"].update(batch_size="eight")),
            "error: params.yaml: finetune.batch_size: Input should be a valid integer",
            "(got 'eight', line ",
        ),
        (
            edited(lambda p: p["finetune"].update(warmup_ratio=1.5)),
            "error: params.yaml: finetune.warmup_ratio: Input should be less than 1",
            "(got 1.5, line ",
        ),
        (
            edited(lambda p: p["data"].update(source="../no-such-data")),
            "error: data.source '../no-such-data': no such folder",
            "fix the path",
        ),
        (good.replace("\numap:\n", "\numap:\n  seed: 1\n"), "ERROR: unable to read: 'params.yaml'", "duplicate key"),
    ]
    for text, start, detail in mistakes:
        (repo / "params.yaml").write_text(text)
        result, wall, cpu = timed("dvc", "repro", cwd=repo)
        print(f"{start[:60]}: dvc repro failed after {wall:.2f} s wall, {cpu:.2f} s CPU, load {os.getloadavg()[0]:.1f}")
        output = result.stdout + result.stderr
        assert result.returncode != 0 and "Traceback" not in output, output[-2000:]
        assert ran_stages(result) <= {"params"}, output[-2000:]
        if start.startswith("error:"):  # the check's one line; DVC's own refusal of a key written twice is DVC's
            (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
            assert line.startswith(start) and detail in line, line
            assert "no other stage ran and no output was removed" in line
        else:
            assert start in output and detail in output, output[-2000:]
        assert cpu < 3.0, f"{cpu:.2f} s of CPU before the mistake was reported"
        assert outputs(repo) == before  # models/finetuned and every other output untouched
    (repo / "params.yaml").write_text(good)  # the fix: the stamp comes back from the cache, nothing runs
    assert not ran_stages(sh("dvc", "repro", cwd=repo))
    assert outputs(repo) == before and dvc_status(repo) == {}
    assert sh("git", "status", "--porcelain", cwd=repo).stdout == ""


def test_a_valid_param_edit_reruns_only_the_check_and_its_stages(origin, tmp_path):
    repo = workspace(origin, tmp_path / "repo")
    stamp = (repo / "data/params-checked.txt").read_bytes()
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["error_analysis"]["top_n"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    expected = {"params", "error_analysis"}
    assert set(dvc_status(repo)) == expected
    assert ran_stages(sh("dvc", "repro", cwd=repo)) == expected
    assert (repo / "data/params-checked.txt").read_bytes() == stamp
