"""The CI hand-off, played for real: the GPU job and the CPU job in two clones sharing a folder as DVC remote.

Clone 1 runs the GPU job's commands (`.ci/repro.py gpu`, then `.ci/push_run_cache.py`: `dvc push
--run-cache` and the run-cache's `cache: false` outputs); clone 2, a fresh clone, runs the CPU job's
(`.ci/repro.py cpu`: `dvc repro --pull --allow-missing`) and must execute no GPU-pinned stage.
Fresh clones whose remote lacks the GPU stages' results (an empty remote; a remote that got only DVC's
own `dvc push --run-cache`) must stop with a clear message instead of training. Both jobs use the same
`--set device=...` override as the workflow does (`device=cuda` there).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, copy_project, write_params

COPY = ["stages", "textclf", ".ci", "data/sample", "dvc.yaml", ".dvcignore", ".dvc/plots"]
OVERRIDE = "device=cpu"  # the workflow passes device=cuda in both jobs; a CPU-only test machine plays it with cpu


def sh(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
    }
    env.pop("DVC_EXP_BASELINE_REV", None)
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    if check:
        assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def gpu_stages(repo: Path) -> set[str]:
    return set(sh(sys.executable, ".ci/plan.py", "--list", "gpu", cwd=repo).stdout.split())


def ran(result: subprocess.CompletedProcess) -> set[str]:
    """Stages whose command DVC executed (its own log line), from a dvc repro's output."""
    return set(re.findall(r"Running stage '([^']+)'", result.stdout + result.stderr))


def summary(repo: Path) -> dict:
    return json.loads((repo / "ci-summary.json").read_text())


@pytest.fixture
def upstream(tmp_path, small_folder, tiny_model) -> Path:
    """The project as a git repository whose default DVC remote is a folder, params small and fast."""
    repo = tmp_path / "upstream"
    repo.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=repo)
    sh("dvc", "init", "-q", cwd=repo)
    copy_project(repo, COPY)
    # params.yaml as committed says device: auto; both jobs override it the same way
    write_params(
        repo / "params.yaml", device="auto", data={"source": str(small_folder)}, model={"checkpoint": str(tiny_model)}
    )
    sh("dvc", "remote", "add", "-d", "storage", str(tmp_path / "remote"), cwd=repo)
    # remotes for the variants: one the GPU job never pushed to, one that got only `dvc push --run-cache`
    sh("dvc", "remote", "add", "empty", str(tmp_path / "remote-empty"), cwd=repo)
    sh("dvc", "remote", "add", "dvc-push-only", str(tmp_path / "remote-dvc-push-only"), cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "pipeline", cwd=repo)
    return repo


def clone(upstream: Path, name: str) -> Path:
    target = upstream.parent / name
    sh("git", "clone", "-q", str(upstream), str(target), cwd=upstream.parent)
    return target


@pytest.mark.slow
def test_gpu_job_then_cpu_job_through_the_run_cache(upstream):
    gpu = gpu_stages(upstream)
    assert {"finetune", "hidden_states@pretrained", "hidden_states@finetuned"} <= gpu  # read from dvc.yaml
    stages = set(sh("dvc", "stage", "list", "--name-only", cwd=upstream).stdout.split())
    cpu = stages - gpu
    assert cpu >= {"data", "encode", "baselines", "umap@pretrained", "umap@finetuned"}

    # --- the GPU job: GPU-pinned stages and their upstream, then push with the run-cache
    gpu_job = clone(upstream, "gpu-job")
    run = sh(sys.executable, ".ci/repro.py", "gpu", "--set", OVERRIDE, "--summary", "ci-summary.json", cwd=gpu_job)
    upstream_of_gpu = {"params", "data", "encode"}  # params: the check that runs before every stage
    assert ran(run) == gpu | upstream_of_gpu == set(summary(gpu_job)["executed"])
    push = sh(sys.executable, ".ci/push_run_cache.py", cwd=gpu_job)
    assert "run-cache entries and their" in push.stdout
    sh("dvc", "push", "--run-cache", "-r", "dvc-push-only", cwd=gpu_job)

    # --- the CPU job, in a fresh clone: the rest of the pipeline, GPU stages from the remote
    cpu_job = clone(upstream, "cpu-job")
    assert not (cpu_job / "models").exists() or not any((cpu_job / "models").iterdir())
    run = sh(sys.executable, ".ci/repro.py", "cpu", "--set", OVERRIDE, "--summary", "ci-summary.json", cwd=cpu_job)
    executed = ran(run)
    assert executed == set(summary(cpu_job)["executed"])
    assert not executed & gpu, f"GPU-pinned stages executed on the CPU job: {executed & gpu}"
    assert executed == cpu - upstream_of_gpu, run.stdout  # every CPU stage downstream or beside the GPU ones
    for stage in gpu:
        assert f"Stage '{stage}' is cached - skipping run" in run.stdout, stage
    # the GPU job's results arrived: model, hidden states and training curves (via the run-cache)
    assert (cpu_job / "models/finetuned/model.safetensors").is_file()
    assert (cpu_job / "data/hidden/finetuned/validation.npy").is_file()
    headline = json.loads((cpu_job / "metrics/headline.json").read_text())
    assert (cpu_job / "dvclive/metrics.json").read_text() == (gpu_job / "dvclive/metrics.json").read_text()
    assert yaml.safe_load((cpu_job / "params.yaml").read_text())["device"] == "cpu"
    status = sh("dvc", "status", "--json", cwd=cpu_job)
    assert json.loads(status.stdout) == {}, status.stdout

    # --- the record: the workflow's `dvc exp save` + `dvc exp push origin` on a detached checkout
    sh("python", ".ci/push_run_cache.py", cwd=cpu_job)
    sh("git", "checkout", "-q", "--detach", cwd=cpu_job)
    sh("git", "config", "user.name", "ci", cwd=cpu_job)
    sh("git", "config", "user.email", "ci@example.com", cwd=cpu_job)
    sh("dvc", "exp", "save", "--name", "ci-1-1", cwd=cpu_job)
    sh("dvc", "exp", "push", "origin", "ci-1-1", cwd=cpu_job)
    refs = sh("git", "for-each-ref", "--format=%(refname)", "refs/exps", cwd=upstream).stdout
    assert refs.strip().endswith("/ci-1-1"), refs
    recorded = sh("git", "show", f"{refs.strip()}:metrics/headline.json", cwd=upstream).stdout
    assert json.loads(recorded) == headline  # the git-tracked metric; the rest is in the DVC cache
    assert "device: cpu" in sh("git", "show", f"{refs.strip()}:params.yaml", cwd=upstream).stdout

    # --- a remote that got only `dvc push --run-cache`: every output of the GPU stages is DVC-cached (none
    # cache: false), so the run-cache push carries them and the CPU job runs no GPU stage
    only = clone(upstream, "cpu-job-dvc-push-only")
    sh("dvc", "remote", "default", "--local", "dvc-push-only", cwd=only)
    run = sh(sys.executable, ".ci/repro.py", "cpu", "--set", OVERRIDE, "--summary", "ci-summary.json", cwd=only)
    assert not ran(run) & gpu and not summary(only)["blocked"], run.stdout

    # --- a CPU job whose remote lacks the GPU stages' results: it stops before training and says why
    for remote in ("empty",):
        bare = clone(upstream, f"cpu-job-{remote}")
        sh("dvc", "remote", "default", "--local", remote, cwd=bare)
        run = sh(
            sys.executable,
            ".ci/repro.py",
            "cpu",
            "--set",
            OVERRIDE,
            "--summary",
            "ci-summary.json",
            cwd=bare,
            check=False,
        )
        assert run.returncode == 3, remote + "\n" + run.stdout + run.stderr
        blocked = summary(bare)["blocked"]
        assert len(blocked) == 1 and blocked[0] in gpu, (remote, blocked)
        assert not ran(run) & gpu, remote
        assert f"GPU-pinned stage '{blocked[0]}' would run on this CPU runner" in run.stderr, remote
        assert "GPU-pinned stage(s) would have run on this CPU runner" in run.stderr, remote
        assert not (bare / "models/finetuned").exists() and not (bare / "metrics/finetuned.json").exists(), remote


def test_no_default_remote_fails_before_anything_runs(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    sh("git", "init", "-q", cwd=repo)
    sh("dvc", "init", "-q", cwd=repo)
    (repo / "dvc.yaml").write_text("stages:\n  a:\n    cmd: echo hi > a.txt\n    outs: [a.txt]\n")
    for mode in ("gpu", "cpu"):
        run = sh(sys.executable, str(ROOT / ".ci/repro.py"), mode, cwd=repo, check=False)
        assert run.returncode == 2, run.stdout + run.stderr
        assert "no default DVC remote" in run.stderr
    assert not (repo / "a.txt").exists()
