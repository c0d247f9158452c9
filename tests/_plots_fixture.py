"""A copy of the project's plot declarations (dvc.yaml, .dvc/plots, the page template) in a git repo,
with plot files written by the project's own writers: branch main, then branch exp (checked out) with
other numbers. No stage runs; `dvc plots show` / `dvc plots diff main` read the files as the pipeline
leaves them. ``labels`` may hold hostile names; ``text`` goes into the rows of the error table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import yaml

from _dvc_fixture import dvc_init, git
from conftest import ROOT
from textclf.evaluation.error_analysis import write_csv
from textclf.reporting.plots import write_predictions_csv, write_umap_csv

LABELS = ["sadness", "joy", "love", "anger", "fear", "surprise"]
# dvclive's curve files (finetune's plot output dvclive/plots): train loss and the curve subset's points
CURVES = [
    "train/loss",
    "curve_subset/loss",
    "curve_subset/accuracy",
    "curve_subset/f1_macro",
    "curve_subset/f1_weighted",
]
# 17.3: the error table of raw validation texts is no plot (the error_analysis helper removes it from
# dvc.yaml's plots); dropped here so that this fixture matches the pipeline once that lands
NOT_PLOTS = {"plots/errors/top_losses.csv"}


def _dvc_yaml() -> dict:
    """The project's dvc.yaml without the plot outputs of NOT_PLOTS."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    for stage in spec["stages"].values():
        body = stage.get("do", stage)
        plots = [p for p in body.get("plots", []) if next(iter(p)) not in NOT_PLOTS]
        if plots:
            body["plots"] = plots
        else:
            body.pop("plots", None)
    return spec


def write_side(root: Path, labels: list[str], seed: int, text: str) -> None:
    """Every plot file and metrics file the pipeline writes, from seeded random predictions (not the notebook's
    PNG figures: DVC outputs, not plots)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    y_true = np.repeat(np.arange(n), 8)
    y_pred = np.where(rng.random(len(y_true)) < 0.7 + 0.1 * seed, y_true, rng.integers(0, n, len(y_true)))
    for name in ("baselines", "finetuned"):
        write_predictions_csv(root / f"plots/{name}/confusion.csv", y_true, y_pred, labels)
    for name in ("pretrained", "finetuned"):
        rows = np.repeat(np.arange(n), 50)
        xy = rng.normal(0, 10, (n, 2))[rows] + rng.normal(0, 1, (len(rows), 2)) + 50  # far from zero, as UMAP is
        write_umap_csv(root / f"plots/umap/{name}.csv", xy, rows, labels)
    import pandas as pd

    write_csv(
        root / "plots/errors/label_loss.csv",
        pd.DataFrame(
            {"label": labels, "mean_loss": rng.random(n).round(4), "rows": 8, "errors": rng.integers(0, 8, n)}
        ),
    )
    write_csv(
        root / "plots/errors/top_losses.csv",
        pd.DataFrame(
            {
                "rank": [1, 2],
                "row": [3, 7],
                "text": [text, text + " 2"],
                "label": labels[:2],
                "predicted": labels[1:3],
                "loss": [4.2, 3.1],
            }
        ),
    )
    for curve in CURVES:
        path = root / f"dvclive/plots/metrics/{curve}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        name = curve.split("/")[-1]
        chosen = 60 + 10 * seed  # the step whose weights finetune kept (textclf.training.trainer.mark_chosen_step)
        path.write_text(
            f"step\tchosen\t{name}\n"
            + "".join(f"{s}\t{int(s == chosen)}\t{rng.random():.4f}\n" for s in range(10, 110, 10))
        )
    accuracy = round(0.5 + 0.1 * seed, 4)
    scores = {
        "accuracy": accuracy,
        "f1_macro": accuracy - 0.01,
        "f1_weighted": accuracy - 0.005,
        "f1_per_label": dict.fromkeys(labels, accuracy),
    }
    metrics = {
        "metrics/finetuned.json": {"validation": scores, "test": scores},
        "metrics/baselines.json": {"logistic_regression": {"validation": {"accuracy": 0.4, "f1_macro": 0.3}}},
        "metrics/error_analysis.json": {"validation": {"label_loss": dict.fromkeys(labels, 1)}},
        "dvclive/metrics.json": {"train": {"loss": 0.1}, "curve_subset": {"accuracy": accuracy}, "step": 100},
    }
    from stages.headline import headline

    metrics["metrics/headline.json"] = headline(
        metrics["metrics/finetuned.json"], metrics["metrics/baselines.json"], Path("f"), Path("b")
    )
    for path, data in metrics.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(json.dumps(data, indent=2) + "\n")


def make_plots_repo(root: Path, labels: list[str] = LABELS, text: str = "plain") -> Path:
    """main: seed 0; exp (checked out, committed): seed 1. The project's plot declarations and template."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    dvc_init(root, "[plots]\n    html_template = plots_template.html\n")
    shutil.copy(ROOT / ".dvc/plots_template.html", root / ".dvc/plots_template.html")
    shutil.copytree(ROOT / ".dvc/plots", root / ".dvc/plots")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    (root / "dvc.yaml").write_text(yaml.safe_dump(_dvc_yaml(), sort_keys=False))
    write_side(root, labels, seed=0, text=text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "main")
    git(root, "checkout", "-q", "-b", "exp")
    write_side(root, labels, seed=1, text=text)
    git(root, "commit", "-q", "-am", "exp")
    return root
