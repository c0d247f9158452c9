"""End to end: `dvc repro` for real in a temporary git repo, with tiny params."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from conftest import LABELS, ROOT, write_params

COPY = ["stages", "textclf", "data/sample", "dvc.yaml", ".dvcignore", ".dvc/config", ".dvc/plots"]


def sh(*args: str, cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("DVC_EXP_BASELINE_REV", None)
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_dvc_repro_end_to_end(tmp_path, small_folder, tiny_model):
    repo = tmp_path / "repo"
    repo.mkdir()
    sh("git", "init", "-q", cwd=repo)
    sh("git", "config", "user.email", "test@example.com", cwd=repo)
    sh("git", "config", "user.name", "test", cwd=repo)
    sh("dvc", "init", "-q", cwd=repo)
    for name in COPY:
        source, target = ROOT / name, repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)
    (repo / ".dvc/config").write_text("")  # no html template: node_modules is not copied
    write_params(
        repo / "params.yaml", data={"source": str(small_folder)}, model={"checkpoint": str(tiny_model)},
        umap={"n_neighbors": 5},
    )
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "pipeline", cwd=repo)

    first = sh("dvc", "repro", cwd=repo)
    stages = set(sh("dvc", "stage", "list", "--name-only", cwd=repo).split())
    assert ran_stages(first) == stages and len(stages) == 11

    # every declared output
    for split, rows in (("train", 36), ("validation", 12), ("test", 12)):
        assert len(pd.read_parquet(repo / f"data/prepared/{split}.parquet")) == rows
        assert len(pd.read_parquet(repo / f"data/encoded/{split}.parquet")) == rows
        for encoder in ("pretrained", "finetuned"):
            assert np.load(repo / f"data/hidden/{encoder}/{split}.npy").shape == (rows, 32)
    baselines = json.loads((repo / "metrics/baselines.json").read_text())
    finetuned = json.loads((repo / "metrics/finetuned.json").read_text())
    assert set(baselines["logistic_regression"]) == {"train", "validation", "test"}
    assert set(finetuned) == {"validation", "test"}
    for value in (baselines["logistic_regression"]["test"]["accuracy"], finetuned["test"]["f1"]):
        assert 0.0 <= value <= 1.0
    assert (repo / "models/finetuned/model.safetensors").is_file()
    for png in ("baselines/confusion", "finetuned/confusion", "umap/pretrained", "umap/finetuned"):
        with Image.open(repo / f"plots/{png}.png") as image:
            image.load()
            assert image.size[0] > 100
    assert set(pd.read_csv(repo / "plots/umap/finetuned.csv")["label"]) == set(LABELS)
    assert pd.read_csv(repo / "plots/errors/label_loss.csv")["label"].tolist() == LABELS
    assert len(pd.read_csv(repo / "plots/errors/top_losses.csv")) == 12  # top_n 50 > 12 validation rows
    card = (repo / "models/MODEL_CARD.md").read_text()
    assert f"value: {finetuned['test']['f1']}" in card

    # nothing to do the second time
    second = sh("dvc", "repro", cwd=repo)
    assert not ran_stages(second)

    # metrics and plots are git-tracked; commit, change a fine-tuning param, rerun
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "run", cwd=repo)
    write_params(
        repo / "params.yaml", data={"source": str(small_folder)}, model={"checkpoint": str(tiny_model)},
        umap={"n_neighbors": 5}, finetune={"learning_rate": 3.0e-3},
    )
    third = sh("dvc", "repro", cwd=repo)
    assert ran_stages(third) == {"finetune", "evaluate", "hidden_states@finetuned", "umap@finetuned", "error_analysis",
                                 "model_card"}

    diff = json.loads(sh("dvc", "metrics", "diff", "HEAD", "--json", cwd=repo).splitlines()[-1])
    changed = {(path, key) for path, keys in diff.items() for key, value in keys.items() if value.get("diff")}
    assert any(path == "dvclive/metrics.json" for path, _ in changed), diff
    assert not any(path == "metrics/baselines.json" for path, _ in changed)
    params_diff = sh("dvc", "params", "diff", "HEAD", "--md", cwd=repo)
    assert "finetune.learning_rate" in params_diff
