"""A tiny DVC repository for the report and offline-plots tests: no stages to run, only
top-level metrics/params/plots pointing at small committed files. Branch main, then branch exp
with a changed param and metric."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

DVC = str(Path(sys.executable).with_name("dvc"))

DVC_YAML = """\
params:
  - params.yaml
metrics:
  - metrics.json
plots:
  - Confusion matrix:
      template: confusion_normalized
      x: predicted
      y:
        confusion.csv: actual
  - Scatter:
      template: scatter
      x: x
      y:
        scatter.csv: y
  - Loss:
      x: step
      y:
        loss.tsv: loss
  - image.png
"""


def git(cwd, *args):
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


def dvc(cwd, *args):
    return subprocess.run([DVC, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def dvc_init(root: Path, config: str = "") -> None:
    """The files `dvc init` writes (and `dvc config` edits), written directly: `dvc init` and each `dvc config`
    cost a DVC start (a second or two of CPU) and are not what these fixtures test. ``config``: more lines
    of .dvc/config, after ``[core] analytics = false``."""
    (root / ".dvc").mkdir(parents=True)
    (root / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    (root / ".dvc" / "config").write_text("[core]\n    analytics = false\n" + config)
    (root / ".dvcignore").write_text("# Add patterns of files dvc should ignore\n")


def dvc_main(cwd, *args) -> str:
    """`dvc <args>` in this process, through DVC's own command-line entry point (``dvc.cli.main``), in ``cwd``:
    its stdout; fails unless it exits 0. For tests of what DVC reads or renders, not of the dvc executable
    (no DVC start of a second or two for each call)."""
    from dvc.cli import main

    out, env = io.StringIO(), os.environ.copy()
    # DVC_TEST: DVC's own tests' switch; without it DVC's JSON output swaps sys.stdout back to the stream
    # colorama saw first, past the redirection (it also turns off DVC's update check and analytics)
    os.environ["DVC_TEST"] = "true"
    try:
        with contextlib.chdir(cwd), contextlib.redirect_stdout(out):
            code = main(list(args))
    finally:
        os.environ.clear()
        os.environ.update(env)
    assert code == 0, f"dvc {' '.join(args)} exited {code}:\n{out.getvalue()[-3000:]}"
    return out.getvalue()


def write_png(path: Path, color) -> None:
    from PIL import Image

    Image.new("RGB", (24, 16), color).save(path)


def write_side(root: Path, *, lr: float, accuracy: float, shift: float, color) -> None:
    (root / "params.yaml").write_text(f"train:\n  lr: {lr}\n  epochs: 2\n")
    (root / "metrics.json").write_text(json.dumps({"accuracy": accuracy, "loss": 1.0 - accuracy}))
    labels = ["anger", "joy", "sadness"]
    rows = ["actual,predicted"] + [f"{a},{p}" for i, a in enumerate(labels) for p in labels[i:] + labels[:1]]
    (root / "confusion.csv").write_text("\n".join(rows) + "\n")
    (root / "scatter.csv").write_text("x,y\n" + "".join(f"{i},{(i * 7 % 5) + shift}\n" for i in range(8)))
    (root / "loss.tsv").write_text(
        "step\tloss\n" + "".join(f"{i}\t{round(2.0 / (i + 1) + shift, 3)}\n" for i in range(6))
    )
    write_png(root / "image.png", color)


def make_repo(root: Path, extra_dvc_yaml: str = "") -> Path:
    """main: lr 0.1, accuracy 0.5; exp (checked out): lr 0.01, accuracy 0.75."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    dvc_init(root)
    (root / "dvc.yaml").write_text(DVC_YAML + extra_dvc_yaml)
    write_side(root, lr=0.1, accuracy=0.5, shift=0.0, color=(200, 30, 30))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "main")
    git(root, "checkout", "-q", "-b", "exp")
    write_side(root, lr=0.01, accuracy=0.75, shift=0.5, color=(30, 30, 200))
    git(root, "commit", "-q", "-am", "exp")
    return root
