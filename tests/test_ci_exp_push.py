"""`dvc exp push` with the token set up the way the GPU workflow sets it up, against a loopback HTTP git server
that demands it (dulwich's smart-HTTP server behind HTTP basic auth, as GitHub does with the job's token).

DVC pushes experiments through dulwich, which reads only the global and system git config. The token that
`actions/checkout` leaves in the repository's local config reaches `git push` but not DVC: that is the
control case. The workflow's step "Give git and DVC the job's token" is run as written, with HOME in a
temporary folder, and `dvc exp push origin` must then succeed.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
from pathlib import Path
from wsgiref.simple_server import make_server

import pytest
import yaml
from dulwich.repo import Repo
from dulwich.server import DictBackend
from dulwich.web import WSGIRequestHandlerLogger, WSGIServerLogger, make_wsgi_chain

ROOT = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).with_name("dvc"))
TOKEN = "ghs_loopbackTOKEN"
STEP = "Give git and DVC the job's token"


def guarded(app, token: str):
    """The git server's WSGI app, answering 401 to any request without basic auth x-access-token:<token>."""
    expected = base64.b64encode(f"x-access-token:{token}".encode()).decode()

    def wrapper(environ, start_response):
        scheme, _, value = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "basic" or value.strip() != expected:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"'), ("Content-Length", "0")])
            return [b""]
        return app(environ, start_response)

    return wrapper


@pytest.fixture
def server(tmp_path):
    """URL of a bare repository served over HTTP on 127.0.0.1, token required."""
    bare = tmp_path / "server.git"
    Repo.init_bare(str(bare), mkdir=True)
    app = guarded(make_wsgi_chain(DictBackend({"/": Repo(str(bare))})), TOKEN)
    httpd = make_server("127.0.0.1", 0, app, handler_class=WSGIRequestHandlerLogger, server_class=WSGIServerLogger)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", bare
    httpd.shutdown()
    thread.join(timeout=10)


def workflow_step(name: str) -> str:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "gpu.yaml").read_text())
    steps = [s for job in workflow["jobs"].values() for s in job.get("steps", []) if s.get("name", "").startswith(name)]
    assert len(steps) == 1, name
    return steps[0]["run"]


def sh(*args, cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    if check:
        assert res.returncode == 0, f"{args}:\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture
def checkout(tmp_path, server):
    """A DVC project with one stage, its origin the token-guarded server, an experiment saved, and an
    empty HOME (no global git config): what the GPU job's checkout looks like before the token step."""
    url, _ = server
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "ci",
        "GIT_AUTHOR_EMAIL": "ci@example.com",
        "GIT_COMMITTER_NAME": "ci",
        "GIT_COMMITTER_EMAIL": "ci@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    repo = tmp_path / "repo"
    repo.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=repo, env=env)
    sh(DVC, "init", "-q", cwd=repo, env=env)
    sh(DVC, "remote", "add", "-d", "storage", str(tmp_path / "dvc-remote"), cwd=repo, env=env)
    (repo / "params.yaml").write_text("n: 1\n")
    (repo / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: echo ${n} > out.txt\n    params: [n]\n    outs: [out.txt]\n"
    )
    sh(DVC, "repro", "-q", cwd=repo, env=env)
    sh("git", "add", "-A", cwd=repo, env=env)
    sh("git", "commit", "-qm", "pipeline", cwd=repo, env=env)
    sh("git", "remote", "add", "origin", url + "/", cwd=repo, env=env)
    (repo / "params.yaml").write_text("n: 2\n")
    sh(DVC, "repro", "-q", cwd=repo, env=env)
    sh(DVC, "exp", "save", "--name", "ci-1-1", cwd=repo, env=env)
    return repo, env, url


def test_token_in_the_local_config_reaches_git_but_not_dvc(checkout, server):
    repo, env, url = checkout
    header = "AUTHORIZATION: basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    sh("git", "config", "--local", f"http.{url}/.extraheader", header, cwd=repo, env=env)  # as actions/checkout does
    sh("git", "push", "-q", "origin", "main", cwd=repo, env=env)  # git reads it: the server takes the push
    res = sh(DVC, "exp", "push", "origin", "ci-1-1", cwd=repo, env=env, check=False)
    assert res.returncode != 0 and "Authentication failed" in res.stderr, res.stdout + res.stderr
    assert not any(Path(server[1], "refs", "exps").rglob("ci-1-1"))


def test_the_workflows_token_step_lets_dvc_exp_push(checkout, server):
    repo, env, url = checkout
    sh("bash", "-eo", "pipefail", "-c", workflow_step(STEP), cwd=repo, env={**env, "TOKEN": TOKEN, "SERVER_URL": url})
    assert TOKEN not in (repo / ".git" / "config").read_text()  # the token went to the global config only
    res = sh(DVC, "exp", "push", "origin", "ci-1-1", cwd=repo, env=env)
    pushed = [p.name for p in Path(server[1], "refs", "exps").rglob("*") if p.is_file()]
    assert pushed == ["ci-1-1"], res.stdout + res.stderr
