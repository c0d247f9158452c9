"""The CI's helper scripts (scripts/ci_*.py) on small DVC repositories and fabricated inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import ci_comment  # noqa: E402
import ci_dvc_plugin  # noqa: E402
import ci_lock_check  # noqa: E402
import ci_plan  # noqa: E402

DVC = str(Path(sys.executable).with_name("dvc"))


def run(*args, cwd, check=True):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "DVC_NO_ANALYTICS": "1"}
    res = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    if check:
        assert res.returncode == 0, f"{args}: {res.stdout}\n{res.stderr}"
    return res


# a toy pipeline: a -> b (GPU-pinned, param b.lr) -> c; d on its own
TOY = """\
stages:
  a:
    cmd: cat src_a.txt > a.txt
    deps: [src_a.txt]
    outs: [a.txt]
  b:
    cmd: cat a.txt src_b.txt > b.txt
    deps: [a.txt, src_b.txt]
    params: [b.lr]
    outs: [b.txt]
    meta:
      runner: gpu
  c:
    cmd: cat b.txt > c.txt
    deps: [b.txt]
    outs: [c.txt]
  d:
    cmd: cat src_d.txt > d.txt
    deps: [src_d.txt]
    outs: [d.txt]
"""


@pytest.fixture
def toy(tmp_path) -> Path:
    """The toy pipeline reproduced and committed, then cloned: a CI checkout with dvc.lock and no data."""
    origin = tmp_path / "origin"
    origin.mkdir()
    run("git", "init", "-q", cwd=origin)
    run(DVC, "init", "-q", cwd=origin)
    (origin / "dvc.yaml").write_text(TOY)
    (origin / "params.yaml").write_text("b:\n  lr: 0.1\n")
    for name in ("src_a", "src_b", "src_d"):
        (origin / f"{name}.txt").write_text(name + "\n")
    run(DVC, "repro", "-q", cwd=origin)
    run("git", "add", "-A", cwd=origin)
    run("git", "commit", "-qm", "toy", cwd=origin)
    clone = tmp_path / "clone"
    run("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path)
    assert not (clone / "b.txt").exists()
    return clone


def test_changed_gpu_stages_follow_dvc_status(toy):
    assert ci_plan.changed_gpu_stages(toy) == []  # missing data is not a change
    (toy / "src_d.txt").write_text("other\n")
    assert ci_plan.changed_gpu_stages(toy) == []  # an unrelated CPU stage
    (toy / "dvc.yaml").write_text(TOY.replace("cat b.txt > c.txt", "cat b.txt b.txt > c.txt"))
    assert ci_plan.changed_gpu_stages(toy) == []  # a CPU stage downstream
    (toy / "params.yaml").write_text("b:\n  lr: 0.2\n")
    assert ci_plan.changed_gpu_stages(toy) == ["b"]  # its own param
    run("git", "checkout", "--", "params.yaml", cwd=toy)
    (toy / "src_a.txt").write_text("changed\n")
    assert ci_plan.changed_gpu_stages(toy) == ["b"]  # a stage upstream of it


@pytest.mark.parametrize(("event", "labels", "fork", "dispatch", "changed", "gpu", "words"), [
    ("workflow_dispatch", [], False, True, None, True, "by hand"),
    ("workflow_dispatch", [], False, False, None, False, "gpu: false"),
    ("pull_request", ["gpu"], False, True, [], True, "`gpu` label"),
    ("pull_request", [], False, True, ["finetune"], True, "finetune"),
    ("pull_request", ["docs"], False, True, [], False, "add the `gpu` label"),
    ("pull_request", ["gpu"], True, True, ["finetune"], False, "from a fork"),
    ("pull_request", [], True, True, [], False, "fork"),
    ("push", [], False, True, ["evaluate"], True, "evaluate"),
    ("push", [], False, True, [], False, "no GPU-pinned stage changed"),
])
def test_plan_decision(event, labels, fork, dispatch, changed, gpu, words):
    decided, reason, level = ci_plan.decide(event, labels, fork, dispatch, changed)
    assert decided is gpu and words in reason
    assert level == ("warning" if fork and (labels or changed) else "notice")


def test_plan_runner_choice():
    assert ci_plan.runner("", "cml-gpu-7-1") == (True, '["self-hosted", "cml-gpu-7-1"]')
    assert ci_plan.runner('["self-hosted", "gpu"]', "x") == (False, '["self-hosted", "gpu"]')
    assert ci_plan.runner('"gpu-t4-4-core"', "x") == (False, '"gpu-t4-4-core"')
    for bad in ("gpu", "[]", "[1]", "{}"):
        with pytest.raises(SystemExit, match="GPU_RUNS_ON"):
            ci_plan.runner(bad, "x")


def test_plan_writes_github_outputs(toy, tmp_path, monkeypatch):
    outputs, summary = tmp_path / "out", tmp_path / "summary"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    (toy / "params.yaml").write_text("b:\n  lr: 0.3\n")
    assert ci_plan.main(["--event", "push", "--repo", str(toy), "--run-label", "cml-gpu-1-2"]) == 0
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert values["gpu"] == "true" and values["launch"] == "true" and values["changed"] == "b"
    assert json.loads(values["runs_on"]) == ["self-hosted", "cml-gpu-1-2"]
    assert "GPU tier: runs" in summary.read_text()


def _lock(**stages) -> dict:
    return {"schema": "2.0", "stages": stages}


def _stage(cmd="python -m stages.x", lr=0.1, src="aaa", data="bbb", out="ccc"):
    return {"cmd": cmd, "params": {"params.yaml": {"x.lr": lr}},
            "deps": [{"path": "stages/x.py", "md5": src}, {"path": "data/prepared", "md5": data + ".dir"}],
            "outs": [{"path": "data/x", "md5": out + ".dir"}]}


def test_lock_compare_kinds():
    producer = {"cmd": "p", "outs": [{"path": "data/prepared", "md5": "p.dir"}]}
    old = _lock(p=producer, x=_stage())["stages"]
    assert ci_lock_check.compare(old, old) == []
    rows = ci_lock_check.compare(old, _lock(p=producer, x=_stage(out="ddd"))["stages"])
    assert [(r["stage"], r["kind"]) for r in rows] == [("x", "outputs")]
    assert rows[0]["changes"] == ["out data/x: ccc.dir -> ddd.dir"]
    rows = ci_lock_check.compare(old, _lock(p=producer, x=_stage(data="eee"))["stages"])
    assert rows[0]["kind"] == "outputs"  # a dep that another stage produces follows that stage's outputs
    for change in (dict(cmd="python -m stages.y"), dict(lr=0.2), dict(src="fff")):
        rows = ci_lock_check.compare(old, _lock(p=producer, x=_stage(**change))["stages"])
        assert [(r["stage"], r["kind"]) for r in rows] == [("x", "definitions")], change
    rows = ci_lock_check.compare(old, _lock(p=producer, x=_stage(), y=_stage())["stages"])
    assert rows == [{"stage": "y", "kind": "definitions", "changes": ["not in the committed dvc.lock"]}]
    assert "param params.yaml:x.lr: 0.1 -> 0.2" in ci_lock_check.compare(
        old, _lock(p=producer, x=_stage(lr=0.2))["stages"])[0]["changes"]


def test_lock_check_exit_status(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    run("git", "init", "-q", cwd=repo)
    producer = {"cmd": "p", "outs": [{"path": "data/prepared", "md5": "p.dir"}]}
    (repo / "dvc.lock").write_text(yaml.safe_dump(_lock(p=producer, x=_stage())))
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-qm", "lock", cwd=repo)
    script = [sys.executable, str(ROOT / "scripts/ci_lock_check.py"), "--markdown", "lock.md"]

    assert run(*script, cwd=repo).returncode == 0
    assert "reproduced the committed `dvc.lock`" in (repo / "lock.md").read_text()

    (repo / "dvc.lock").write_text(yaml.safe_dump(_lock(p=producer, x=_stage(out="ddd"))))
    res = run(*script, cwd=repo)  # other output bytes: a warning by default
    assert "::warning::" in res.stdout and "| `x` | outputs | out data/x: ccc.dir -> ddd.dir |" in res.stdout
    res = run(*script, "--fail-on", "outputs", cwd=repo, check=False)
    assert res.returncode == 1 and "::error::" in res.stdout

    (repo / "dvc.lock").write_text(yaml.safe_dump(_lock(p=producer, x=_stage(lr=0.5))))
    res = run(*script, cwd=repo, check=False)  # a stale lock always fails
    assert res.returncode == 1 and "stale for x" in res.stdout
    assert "param params.yaml:x.lr: 0.1 -> 0.5" in (repo / "lock.md").read_text()


@pytest.mark.parametrize(("config", "expected"), [
    ("", []),
    ('[core]\n    remote = storage\n[\'remote "storage"\']\n    url = /mnt/dvc-storage\n', []),
    ('[core]\n    remote = storage\n[\'remote "storage"\']\n    url = s3://bucket/path\n', ["dvc[s3]==PIN"]),
    ('[\'remote "a"\']\n    url = gs://b/p\n[\'remote "b"\']\n    url = azure://c/p\n', ["dvc[azure,gs]==PIN"]),
    ('[\'remote "h"\']\n    url = https://example.com/dvc\n', []),
])
def test_dvc_plugin_for_remote(tmp_path, config, expected):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text(config)
    (tmp_path / "requirements.txt").write_text("torch==1\ndvc==3.67.1\n")
    assert ci_dvc_plugin.requirements(tmp_path) == [e.replace("PIN", "3.67.1") for e in expected]


def test_dvc_plugin_unknown_scheme_fails(tmp_path):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("['remote \"x\"']\n    url = foo://bar\n")
    (tmp_path / "requirements.txt").write_text("dvc==3.67.1\n")
    with pytest.raises(SystemExit, match="no known DVC plugin for foo://"):
        ci_dvc_plugin.requirements(tmp_path)


def test_dvc_plugin_reads_this_repository():
    assert ci_dvc_plugin.dvc_pin(ROOT) == next(
        line.split("==")[1] for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("dvc=="))


def test_comment_assembles_both_tiers(tmp_path):
    cpu = tmp_path / "report" / "ci-report-cpu"
    (cpu / "plots").mkdir(parents=True)
    (cpu / "report.md").write_text("# DVC report: main vs workspace\n\n## Metrics\n\n| a | b |\n\n![Loss](plots/00_loss.png)\n")
    out = tmp_path / "report" / "comment.md"
    args = ["--cpu", str(cpu), "--cpu-result", "success", "--gpu", str(tmp_path / "report" / "ci-report-gpu"),
            "--gpu-result", "skipped", "--gpu-reason", "no GPU-pinned stage changed", "--run-url", "https://x/runs/1",
            "--out", str(out)]
    ci_comment.main(args)
    text = out.read_text()
    assert text.startswith("# CI report\n") and "https://x/runs/1" in text
    assert "## CPU tier: success" in text and "### Metrics" in text and "## DVC report" in text
    assert "![" not in text and "*Loss* (image: in the run's artifacts)" in text  # no broken local images
    assert "## GPU tier: skipped" in text and "GPU tier did not run: no GPU-pinned stage changed" in text
    ci_comment.main([*args, "--images"])
    assert "![Loss](ci-report-cpu/plots/00_loss.png)" in out.read_text()  # relative to the comment, for CML
    ci_comment.main([*args[:-6], "--gpu-result", "failure", "--out", str(out)])
    assert "## GPU tier: failure" in out.read_text() and "before writing one" in out.read_text()


def test_cuda_preflight_fails_without_a_gpu():
    """On a machine without CUDA (this project's test machines) the GPU job's preflight must fail, loudly."""
    import torch

    res = subprocess.run([sys.executable, str(ROOT / "scripts/ci_cuda_preflight.py")], capture_output=True, text=True)
    if torch.cuda.is_available():
        assert res.returncode == 0 and "CUDA preflight: ok" in res.stdout, res.stdout + res.stderr
    else:
        assert res.returncode == 1, res.stdout + res.stderr
        assert "::error::CUDA preflight:" in res.stdout
