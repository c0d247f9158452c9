"""The CI helpers in .ci/ on small DVC repositories, fake tools on PATH and fabricated inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / ".ci"
sys.path.insert(0, str(CI))

import check_lock  # noqa: E402
import dvc_remote_plugin  # noqa: E402
import plan  # noqa: E402
import pr_comment  # noqa: E402

DVC = str(Path(sys.executable).with_name("dvc"))
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "DVC_NO_ANALYTICS": "1",
}


def run(*args, cwd, check=True, env=None):
    res = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env or ENV, timeout=300)
    if check:
        assert res.returncode == 0, f"{args}: {res.stdout}\n{res.stderr}"
    return res


def fake_tool(folder: Path, name: str, script: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return path


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
    """The toy pipeline reproduced and committed on main (with a default DVC remote), then cloned: a CI
    checkout with dvc.lock and no data."""
    origin = tmp_path / "origin"
    origin.mkdir()
    run("git", "init", "-q", "-b", "main", cwd=origin)
    run(DVC, "init", "-q", cwd=origin)
    run(DVC, "remote", "add", "-d", "storage", str(tmp_path / "remote"), cwd=origin)
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


def commit_reproduced(repo: Path, message: str) -> None:
    """What the CPU tier asks of a pull request: reproduce, commit the new dvc.lock with the change."""
    run(DVC, "repro", "-q", cwd=repo)
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-qm", message, cwd=repo)


def test_list_gpu_and_cpu_stages(toy):
    assert plan.stages_for_runner("gpu", toy) == ["b"]
    assert plan.stages_for_runner("cpu", toy) == ["a", "c", "d"]


def test_changed_gpu_stages_against_the_checkouts_lock(toy):
    assert plan.changed_gpu_stages(toy) == []  # missing data is not a change
    (toy / "src_d.txt").write_text("other\n")
    assert plan.changed_gpu_stages(toy) == []  # an unrelated CPU stage
    (toy / "dvc.yaml").write_text(TOY.replace("cat b.txt > c.txt", "cat b.txt b.txt > c.txt"))
    assert plan.changed_gpu_stages(toy) == []  # a CPU stage downstream
    (toy / "params.yaml").write_text("b:\n  lr: 0.2\n")
    assert plan.changed_gpu_stages(toy) == ["b"]  # its own param
    run("git", "checkout", "--", "params.yaml", cwd=toy)
    (toy / "src_a.txt").write_text("changed\n")
    assert plan.changed_gpu_stages(toy) == ["b"]  # a stage upstream of it


def test_a_pull_request_that_commits_its_lock_triggers_the_gpu_tier(toy):
    """The PR changes the GPU stage's param and commits the reproduced dvc.lock: against its own lock nothing
    changed (the old trigger never fired), against the base branch's lock `b` did."""
    run("git", "checkout", "-qb", "pr", cwd=toy)
    (toy / "params.yaml").write_text("b:\n  lr: 0.2\n")
    commit_reproduced(toy, "lr 0.2")
    base = run("git", "merge-base", "origin/main", "HEAD", cwd=toy).stdout.strip()
    lock = (toy / "dvc.lock").read_bytes()
    assert plan.changed_gpu_stages(toy) == []
    assert plan.changed_gpu_stages(toy, base) == ["b"]
    assert (toy / "dvc.lock").read_bytes() == lock  # the checkout's lock is back


def test_a_pull_request_of_cpu_stages_only_does_not(toy):
    run("git", "checkout", "-qb", "pr", cwd=toy)
    (toy / "src_d.txt").write_text("other\n")
    (toy / "dvc.yaml").write_text(TOY.replace("cat b.txt > c.txt", "cat b.txt b.txt > c.txt"))
    commit_reproduced(toy, "cpu stages")
    base = run("git", "merge-base", "origin/main", "HEAD", cwd=toy).stdout.strip()
    assert plan.changed_gpu_stages(toy, base) == []


def test_a_base_without_dvc_lock_changes_every_gpu_stage(toy):
    first = run("git", "rev-list", "--max-parents=0", "HEAD", cwd=toy).stdout.strip()
    run("git", "checkout", "-q", "--orphan", "empty", cwd=toy)
    run("git", "rm", "-rq", "--cached", "dvc.lock", cwd=toy)
    run("git", "commit", "-qm", "no lock", cwd=toy)
    empty = run("git", "rev-parse", "HEAD", cwd=toy).stdout.strip()
    run("git", "checkout", "-qf", first, cwd=toy)
    assert plan.changed_gpu_stages(toy, empty) == ["b"]
    assert (toy / "dvc.lock").is_file()


SET_UP: list[str] = []
NO_RUNNER = [plan.SETUP_RUNNER]
NO_REVIEWERS = [plan.SETUP_REVIEWERS]


@pytest.mark.parametrize(
    ("event", "labels", "fork", "dispatch", "changed", "missing", "gpu", "level", "words"),
    [
        ("workflow_dispatch", [], False, True, None, SET_UP, True, "notice", "by hand"),
        ("workflow_dispatch", [], False, False, None, SET_UP, False, "notice", "gpu: false"),
        ("pull_request", ["gpu"], False, False, [], SET_UP, True, "notice", "`gpu` label"),
        ("pull_request", [], False, False, ["finetune"], SET_UP, True, "notice", "finetune"),
        ("pull_request", ["docs"], False, False, [], SET_UP, False, "notice", "add the `gpu` label"),
        # a `labeled` event for another label decides like any other event (its run replaces the previous one)
        ("pull_request", ["docs"], False, False, ["finetune"], SET_UP, True, "notice", "finetune"),
        ("pull_request", ["gpu"], True, False, ["finetune"], SET_UP, False, "warning", "from a fork"),
        ("pull_request", [], True, False, [], SET_UP, False, "notice", "no GPU-pinned stage changed"),
        ("push", [], False, False, ["finetune"], SET_UP, True, "notice", "finetune"),
        ("push", [], False, False, [], SET_UP, False, "notice", "no GPU-pinned stage changed"),
        # no GPU set-up: an automatic trigger is a notice, a person asking for the tier gets an error
        ("push", [], False, False, ["finetune"], NO_RUNNER, False, "notice", "GPU_RUNS_ON"),
        ("pull_request", [], False, False, ["finetune"], NO_RUNNER, False, "notice", "GPU tier not run although"),
        ("pull_request", ["gpu"], False, False, [], NO_RUNNER, False, "error", "GPU_RUNS_ON"),
        ("workflow_dispatch", [], False, True, None, NO_RUNNER, False, "error", "GPU_RUNS_ON"),
        # no required reviewers on the environment `gpu` (a private repository below Enterprise): never runs
        ("pull_request", ["gpu"], False, False, ["finetune"], NO_REVIEWERS, False, "error", "required reviewers"),
        ("push", [], False, False, ["finetune"], NO_REVIEWERS, False, "notice", "required reviewers"),
    ],
)
def test_plan_decision(event, labels, fork, dispatch, changed, missing, gpu, level, words):
    decided, reason, got_level = plan.decide(event, labels, fork, dispatch, changed, missing)
    assert (decided, got_level) == (gpu, level) and words in reason, reason


def test_gpu_runs_on_must_be_json_labels():
    assert plan.runs_on('["self-hosted", "gpu"]') == '["self-hosted", "gpu"]'
    assert plan.runs_on('"gpu-t4-4-core"') == '"gpu-t4-4-core"'
    for bad in ("gpu", "[]", "[1]", "{}"):
        with pytest.raises(ValueError, match="GPU_RUNS_ON"):
            plan.runs_on(bad)


def _plan(toy, tmp_path, *args):
    outputs = tmp_path / "out"
    outputs.unlink(missing_ok=True)
    env = {**ENV, "GITHUB_OUTPUT": str(outputs), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary")}
    res = run(sys.executable, str(CI / "plan.py"), "--repo", str(toy), *args, cwd=toy, check=False, env=env)
    return res, dict(line.split("=", 1) for line in outputs.read_text().splitlines())


def test_plan_command_outputs(toy, tmp_path):
    run("git", "checkout", "-qb", "pr", cwd=toy)
    (toy / "params.yaml").write_text("b:\n  lr: 0.3\n")
    commit_reproduced(toy, "lr 0.3")
    base = run("git", "merge-base", "origin/main", "HEAD", cwd=toy).stdout.strip()
    # automatic, no GPU set-up: a notice, the tier skipped, the run stays green
    res, out = _plan(toy, tmp_path, "--event", "pull_request", "--base", base)
    assert res.returncode == 0 and out["gpu"] == "false" and "::notice::" in res.stdout, res.stdout + res.stderr
    # a GPU runner of one's own, and an environment `gpu` with required reviewers
    ready = ("--gpu-runs-on", '["self-hosted", "gpu"]', "--reviewers", "1")
    res, out = _plan(toy, tmp_path, "--event", "pull_request", "--base", base, *ready)
    assert res.returncode == 0 and out["gpu"] == "true", res.stdout + res.stderr
    assert json.loads(out["runs_on"]) == ["self-hosted", "gpu"]
    # the same without reviewers (what GitHub reports for a private repository below Enterprise): not run
    res, out = _plan(toy, tmp_path, "--event", "pull_request", "--base", base, *ready[:2], "--reviewers", "0")
    assert res.returncode == 0 and out["gpu"] == "false" and "required reviewers" in res.stdout
    res, out = _plan(toy, tmp_path, "--event", "pull_request", "--labels", '["gpu"]', *ready[:2], "--reviewers", "0")
    assert res.returncode == 1 and out["gpu"] == "false" and "::error::" in res.stdout
    # the label asks for the tier, the repository cannot run it: red, with what to set up
    res, out = _plan(toy, tmp_path, "--event", "pull_request", "--labels", '["gpu"]')
    assert res.returncode == 1 and "::error::" in res.stdout and "GPU_RUNS_ON" in res.stdout
    # the same checkout compared with its own lock: nothing changed, nothing runs
    res, out = _plan(toy, tmp_path, "--event", "push", "--gpu-runs-on", '"gpu"', "--reviewers", "1")
    assert out["gpu"] == "false"
    # a GPU_RUNS_ON that is not JSON: one error line, exit 2, nothing decided
    res = run(
        sys.executable,
        str(CI / "plan.py"),
        "--repo",
        str(toy),
        "--event",
        "push",
        "--gpu-runs-on",
        "gpu",
        cwd=toy,
        check=False,
    )
    assert res.returncode == 2 and res.stderr.startswith("error: GPU_RUNS_ON: not JSON") and res.stdout == ""


def test_plan_lists_stages(toy):
    res = run(sys.executable, str(CI / "plan.py"), "--list", "gpu", cwd=toy)
    assert res.stdout.split() == ["b"]


def test_base_rev(tmp_path):
    origin = tmp_path / "origin"
    origin.mkdir()
    run("git", "init", "-q", "-b", "main", cwd=origin)
    for n in range(2):
        (origin / "f").write_text(str(n))
        run("git", "add", "f", cwd=origin)
        run("git", "commit", "-qm", str(n), cwd=origin)
    first, second = run("git", "rev-list", "HEAD", cwd=origin).stdout.split()[::-1]
    run("git", "checkout", "-qb", "pr", first, cwd=origin)
    (origin / "g").write_text("x")
    run("git", "add", "g", cwd=origin)
    run("git", "commit", "-qm", "pr", cwd=origin)
    clone = tmp_path / "clone"
    run("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path)
    script = ["bash", str(CI / "base_rev.sh")]
    run("git", "checkout", "-q", "origin/pr", cwd=clone)
    assert run(*script, "pull_request", "main", "", "main", cwd=clone).stdout.strip() == first  # not main's tip
    run("git", "checkout", "-q", "main", cwd=clone)
    assert run(*script, "push", "", first, "main", cwd=clone).stdout.strip() == first
    assert run(*script, "push", "", "0" * 40, "main", cwd=clone).stdout.strip() == second  # a new branch


def _lock(**stages) -> dict:
    return {"schema": "2.0", "stages": stages}


def _stage(cmd="python -m stages.x", lr=0.1, src="aaa", data="bbb", out="ccc"):
    return {
        "cmd": cmd,
        "params": {"params.yaml": {"x.lr": lr}},
        "deps": [{"path": "stages/x.py", "md5": src}, {"path": "data/prepared", "md5": data + ".dir"}],
        "outs": [{"path": "data/x", "md5": out + ".dir"}],
    }


def test_lock_compare_kinds():
    producer = {"cmd": "p", "outs": [{"path": "data/prepared", "md5": "p.dir"}]}
    old = _lock(p=producer, x=_stage())["stages"]
    assert check_lock.compare(old, old) == []
    rows = check_lock.compare(old, _lock(p=producer, x=_stage(out="ddd"))["stages"])
    assert [(r["stage"], r["kind"]) for r in rows] == [("x", "outputs")]
    assert rows[0]["changes"] == ["out data/x: ccc.dir -> ddd.dir"]
    rows = check_lock.compare(old, _lock(p=producer, x=_stage(data="eee"))["stages"])
    assert rows[0]["kind"] == "outputs"  # a dep that another stage produces follows that stage's outputs
    for change in (dict(cmd="python -m stages.y"), dict(lr=0.2), dict(src="fff")):
        rows = check_lock.compare(old, _lock(p=producer, x=_stage(**change))["stages"])
        assert [(r["stage"], r["kind"]) for r in rows] == [("x", "definitions")], change
    rows = check_lock.compare(old, _lock(p=producer, x=_stage(), y=_stage())["stages"])
    assert rows == [{"stage": "y", "kind": "definitions", "changes": ["new stage"]}]
    assert (
        "param params.yaml:x.lr: 0.1 -> 0.2"
        in check_lock.compare(old, _lock(p=producer, x=_stage(lr=0.2))["stages"])[0]["changes"]
    )


def test_lock_check_exit_status(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    run("git", "init", "-q", cwd=repo)
    producer = {"cmd": "p", "outs": [{"path": "data/prepared", "md5": "p.dir"}]}
    (repo / "dvc.lock").write_text(yaml.safe_dump(_lock(p=producer, x=_stage())))
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-qm", "lock", cwd=repo)
    script = [sys.executable, str(CI / "check_lock.py"), "--markdown", "lock.md"]

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


@pytest.mark.parametrize(
    ("config", "expected", "default"),
    [
        ("", [], ""),
        ("[core]\n    remote = storage\n['remote \"storage\"']\n    url = /mnt/dvc-storage\n", [], "storage"),
        (
            "[core]\n    remote = storage\n['remote \"storage\"']\n    url = s3://bucket/path\n",
            ["dvc[s3]==PIN"],
            "storage",
        ),
        ("['remote \"a\"']\n    url = gs://b/p\n['remote \"b\"']\n    url = azure://c/p\n", ["dvc[azure,gs]==PIN"], ""),
        ("['remote \"h\"']\n    url = https://example.com/dvc\n", [], ""),
    ],
)
def test_dvc_remote_plugin_and_default(tmp_path, config, expected, default):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text(config)
    (tmp_path / "requirements.txt").write_text("torch==1\ndvc==3.67.1\n")
    assert dvc_remote_plugin.requirements(tmp_path) == [e.replace("PIN", "3.67.1") for e in expected]
    assert dvc_remote_plugin.default_remote(tmp_path) == default
    (tmp_path / ".dvc" / "config.local").write_text("[core]\n    remote = other\n")
    assert dvc_remote_plugin.default_remote(tmp_path) == "other"  # `dvc remote default --local` wins


def test_dvc_plugin_unknown_scheme_fails(tmp_path):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("['remote \"x\"']\n    url = foo://bar\n")
    (tmp_path / "requirements.txt").write_text("dvc==3.67.1\n")
    res = run(sys.executable, str(CI / "dvc_remote_plugin.py"), str(tmp_path), cwd=tmp_path, check=False)
    assert res.returncode == 1 and res.stdout == "" and res.stderr.count("\n") == 1 and "foo://" in res.stderr


@pytest.mark.parametrize(
    ("smi", "torch_cuda", "rc", "words"),
    [
        ('echo "Tesla T4, 580.65.06, 15360 MiB"', "", 0, "driver >= 580: ok"),
        ('echo "Tesla T4, 590.10, 15360 MiB"; echo "Tesla T4, 590.10, 15360 MiB"', "", 0, "2 GPU(s)"),
        ('echo "Tesla T4, 570.133.20, 15360 MiB"', "", 1, "driver 570.133.20 is older than 580"),
        ('echo "Tesla T4, 570.133.20, 15360 MiB"', "cu126", 0, "driver >= 525: ok"),  # a CUDA 12 build of torch
        ('echo "No devices were found"; exit 6', "", 1, "lists no GPU"),
        (None, "", 1, "nvidia-smi not found"),
        ('echo "Tesla T4, 580.65.06, 15360 MiB"', "rocm6", 2, ""),  # a bad TORCH_CUDA: one error line, exit 2
    ],
)
def test_gpu_driver_check_before_the_install(tmp_path, smi, torch_cuda, rc, words):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if smi is not None:
        fake_tool(bin_dir, "nvidia-smi", smi)
    res = run(
        sys.executable,
        str(CI / "check_gpu.py"),
        "driver",
        "--torch-cuda",
        torch_cuda,
        cwd=tmp_path,
        env={"PATH": str(bin_dir)},
        check=False,
    )
    assert res.returncode == rc and words in res.stdout, res.stdout + res.stderr
    if rc == 2:
        assert res.stderr.startswith("error: TORCH_CUDA 'rocm6'") and res.stderr.count("\n") == 1


def test_comment_of_a_tier(tmp_path):
    cpu = tmp_path / "report" / "ci-report-cpu"
    (cpu / "plots").mkdir(parents=True)
    (cpu / "report.md").write_text(
        "# DVC report: main vs workspace\n\n## Metrics\n\n| a | b |\n\n![Loss](plots/00_loss.png)\n"
    )
    out = tmp_path / "report" / "comment.md"
    args = [
        "--title",
        "CPU tier",
        "--report",
        str(cpu),
        "--result",
        "success",
        "--run-url",
        "https://x/runs/1",
        "--out",
        str(out),
    ]
    pr_comment.main(args)
    text = out.read_text()
    assert text.startswith("# textclf CI, CPU tier: success\n") and "https://x/runs/1" in text
    assert "### Metrics" in text and "## DVC report" in text
    assert "![" not in text and "*Loss* (image: in the run's artifacts)" in text  # no broken local images
    pr_comment.main([*args, "--images"])
    assert "![Loss](ci-report-cpu/plots/00_loss.png)" in out.read_text()  # relative to the comment, for CML
    pr_comment.main(
        [
            "--title",
            "GPU tier",
            "--report",
            str(tmp_path / "none"),
            "--result",
            "failure",
            "--reason",
            "Ran because: label",
            "--out",
            str(out),
        ]
    )
    text = out.read_text()
    assert "GPU tier: failure" in text and "No report" in text and "Ran because: label" in text


def test_docs_only_change(tmp_path):
    """.ci/docs_only.sh: true only when every changed file is documentation that dvc.yaml does not name."""
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    run("git", "init", "-q", "-b", "main", cwd=repo)
    (repo / "dvc.yaml").write_text("stages:\n  card:\n    cmd: cat docs/card.md > out\n    deps: [docs/card.md]\n")
    for name in ("README.md", "docs/ci.md", "docs/card.md", "train.py"):
        (repo / name).write_text("v1\n")
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-qm", "base", cwd=repo)
    base = run("git", "rev-parse", "HEAD", cwd=repo).stdout.strip()

    def docs_only(*changed: str) -> str:
        run("git", "checkout", "-q", "-B", "pr", base, cwd=repo)
        for name in changed:
            (repo / name).write_text("v2\n")
        run("git", "commit", "-qam", "pr", "--allow-empty", cwd=repo)
        return run("bash", str(CI / "docs_only.sh"), base, cwd=repo).stdout.strip()

    assert docs_only("README.md", "docs/ci.md") == "docs_only=true"
    assert docs_only("README.md", "train.py") == "docs_only=false"
    assert docs_only("docs/card.md") == "docs_only=false"  # a stage's dependency
    assert docs_only() == "docs_only=false"  # nothing changed: a manual run reproduces
