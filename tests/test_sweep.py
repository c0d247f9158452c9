"""`textclf sweep`: experiments grouped by every param but the seed, mean ± spread, best by validation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT

TWO_LRS = {"5e-05": [(0.80, 0.78, 0.95), (0.84, 0.80, 0.10)], "0.0001": [(0.82, 0.81, 0.50), (0.83, 0.82, 0.50)]}


def exp_show(grid: dict = TWO_LRS, unfinished: int = 1) -> list[dict]:
    """A `dvc exp show --json` answer: a workspace, a commit and its experiments (seed i+1 of each lr),
    each with validation accuracy, macro F1 and a test accuracy that would pick the other lr."""

    def rev(name, lr, seed, metrics):
        params = {"finetune": {"learning_rate": float(lr), "seed": seed, "epochs": 1.5}, "data": {"source": "sample"}}
        data = {"params": {"params.yaml": {"data": params}}, "metrics": {}}
        if metrics:
            val_acc, val_f1, test_acc = metrics
            data["metrics"]["metrics/finetuned.json"] = {
                "data": {
                    "validation": {"accuracy": val_acc, "f1_macro": val_f1},
                    "test": {"accuracy": test_acc, "f1_macro": test_acc},
                }
            }
        return {"rev": f"{abs(hash(name)):040x}"[:40], "name": name, "data": data}

    runs = [rev(f"exp-{lr}-{i}", lr, i + 1, m) for lr, seeds in grid.items() for i, m in enumerate(seeds)]
    runs += [rev(f"queued-{i}", "0.001", 1, None) for i in range(unfinished)]
    commit = rev("main", "0.00015", 42, (0.9, 0.9, 0.9))
    commit["experiments"] = [{"revs": [r]} for r in runs]
    return [{"rev": "workspace", "name": None, "data": commit["data"], "experiments": None}, commit]


def run_sweep(tmp_path, shown, *args) -> subprocess.CompletedProcess:
    path = tmp_path / "shown.json"
    path.write_text(json.dumps(shown))
    return subprocess.run(
        [sys.executable, "-m", "textclf", "sweep", "--exp-show-json", str(path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_groups_by_everything_but_the_seed_and_marks_the_best_by_validation(tmp_path):
    result = run_sweep(tmp_path, exp_show())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 100 for line in lines), max(map(len, lines))
    rows = {line[2:].split()[0]: line for line in lines if "learning_rate=" in line}
    assert set(rows) == {"learning_rate=5e-05", "learning_rate=0.0001"}, "one row per lr; the commit is left out"
    # 1e-4: validation accuracy 0.825 ± 0.0071 beats 5e-5's 0.82 ± 0.0283; test (0.5 vs 0.525) would not
    assert rows["learning_rate=0.0001"].startswith("* ") and rows["learning_rate=5e-05"].startswith("  ")
    assert "0.8250±0.0071" in rows["learning_rate=0.0001"] and "0.8200±0.0283" in rows["learning_rate=5e-05"]
    assert " 2 " in rows["learning_rate=0.0001"], "two seeds"
    assert "0.5250±0.6010" in rows["learning_rate=5e-05"], "test is shown"
    assert "1 experiment(s) without metrics left out" in result.stdout


def test_the_metric_that_chooses_is_an_option(tmp_path):
    grid = {"5e-05": [(0.80, 0.90, 0.5), (0.80, 0.90, 0.5)], "0.0001": [(0.85, 0.70, 0.5), (0.85, 0.70, 0.5)]}
    by_f1 = run_sweep(tmp_path, exp_show(grid), "--metric", "f1_macro").stdout
    assert [line.split()[1] for line in by_f1.splitlines() if line.startswith("* l")] == ["learning_rate=5e-05"]
    by_accuracy = run_sweep(tmp_path, exp_show(grid)).stdout
    assert [line.split()[1] for line in by_accuracy.splitlines() if line.startswith("* l")] == ["learning_rate=0.0001"]


@pytest.mark.parametrize("content", ["not json", json.dumps([{"rev": "workspace", "experiments": None}])])
def test_nothing_to_summarise_is_one_line(tmp_path, content):
    path = tmp_path / "shown.json"
    path.write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "textclf", "sweep", "--exp-show-json", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")


def test_outside_a_dvc_project_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "textclf", "sweep", "--repo", str(tmp_path)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2, result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")


@pytest.mark.slow
def test_a_queued_grid_of_lr_x_seed_then_its_summary(tmp_path, e2e_origin):
    """The README's two commands on a copy of the session's small reproduced project (conftest's e2e_origin:
    tiny model, 36 train rows, 10 steps): a 2 x 2 grid through `dvc exp run --queue` and `dvc queue start`,
    then `textclf sweep`. One of the four is the committed configuration: the run-cache gives its results."""
    from conftest import sh, wait_for_queue, workspace

    repo = workspace(e2e_origin, tmp_path / "repo")

    # evaluate: the grid needs metrics/finetuned.json, not the stages after it
    sh(
        "dvc",
        "exp",
        "run",
        "--queue",
        "-S",
        "finetune.learning_rate=0.001,0.003",
        "-S",
        "finetune.seed=1,42",  # lr 0.001, seed 42: the committed run, restored from the run-cache
        "evaluate",
        cwd=repo,
    )
    sh("dvc", "queue", "start", "-j", "1", cwd=repo)
    try:
        status = wait_for_queue(repo, 4, 900)
    finally:
        sh("dvc", "queue", "stop", "--kill", cwd=repo, ok=False)
    assert status.count("Success") == 4, status

    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    by_lr: dict[float, list[float]] = {}
    for group in shown[-1]["experiments"]:
        data = group["revs"][0]["data"]
        lr = data["params"]["params.yaml"]["data"]["finetune"]["learning_rate"]
        by_lr.setdefault(lr, []).append(data["metrics"]["metrics/finetuned.json"]["data"]["validation"]["accuracy"])
    assert sorted(by_lr) == [0.001, 0.003] and all(len(v) == 2 for v in by_lr.values())
    means = {lr: sum(accuracies) / 2 for lr, accuracies in by_lr.items()}

    result = sh(sys.executable, "-m", "textclf", "sweep", cwd=repo)
    lines = result.stdout.splitlines()
    assert all(len(line) <= 100 for line in lines), result.stdout
    rows = {line[2:].split()[0]: line for line in lines if "learning_rate=" in line}
    assert set(rows) == {"learning_rate=0.001", "learning_rate=0.003"}, result.stdout
    marked = [lr for lr in means if rows[f"learning_rate={lr}"].startswith("* ")]
    assert len(marked) == 1 and means[marked[0]] == max(means.values()), result.stdout  # a tie: either one
    for lr, mean in means.items():
        assert rows[f"learning_rate={lr}"].split()[-5] == "2", "two seeds a configuration"
        assert f"{mean:.4f}±" in rows[f"learning_rate={lr}"]


def test_running_and_queued_experiments_are_left_out_though_they_show_their_commits_metrics(tmp_path):
    """A queued or running experiment lists its parent commit's metrics files in `dvc exp show`."""
    shown = exp_show(unfinished=0)
    stale = shown[1]["experiments"][0]["revs"][0]
    for state in ("running", "queued", "failed"):
        copy = json.loads(json.dumps(stale))
        copy["data"]["params"]["params.yaml"]["data"]["finetune"]["learning_rate"] = 0.5
        copy["data"]["metrics"]["metrics/finetuned.json"]["data"]["validation"]["accuracy"] = 0.99
        shown[1]["experiments"].append({"executor": {"state": state}, "revs": [copy]})
    result = run_sweep(tmp_path, shown)
    assert "learning_rate=0.5" not in result.stdout and "0.99" not in result.stdout, result.stdout
    assert "3 experiment(s) without metrics left out" in result.stdout


def test_a_row_names_only_what_differs_from_the_common_values(tmp_path):
    """Many params varied one at a time (the full-data runs of bench/RESULTS.md): each row names its change."""

    def run(name, seed, accuracy, **changes):
        params = {
            "finetune": {"seed": seed, "precision": "fp32", "class_weights": "none", "epochs": 1.5},
            "hidden_states": {"precision": "fp32"},
        }
        for key, value in changes.items():
            section, field = key.split("__")
            params[section][field] = value
        metrics = {
            "validation": {"accuracy": accuracy, "f1_macro": accuracy},
            "test": {"accuracy": 0.5, "f1_macro": 0.5},
        }
        return {
            "revs": [
                {
                    "rev": name,
                    "name": name,
                    "data": {
                        "params": {"params.yaml": {"data": params}},
                        "metrics": {"metrics/finetuned.json": {"data": metrics}},
                    },
                }
            ]
        }

    shown = [
        {"rev": "workspace", "data": {}, "experiments": None},
        {
            "rev": "c" * 40,
            "data": {},
            "experiments": [
                run("s1", 1, 0.92),
                run("s2", 2, 0.93),
                run("balanced", 42, 0.91, finetune__class_weights="balanced"),
                run("bf16", 42, 0.94, finetune__precision="bf16", hidden_states__precision="bf16"),
                run("e3", 42, 0.935, finetune__epochs=3),
            ],
        },
    ]
    lines = run_sweep(tmp_path, shown).stdout.splitlines()
    assert all(len(line) <= 100 for line in lines), lines
    labels = {line[2:40].strip() for line in lines[1:5]}
    assert labels == {
        "(common values)",
        "epochs=3",
        "class_weights=balanced",
        "finetune.precision=bf16 hidden_states…",
    }, lines  # cut at the column's width
    assert any(line.startswith("* finetune.precision=bf16") for line in lines), "best by validation"
    common = [line for line in lines if line.startswith("common values: ")]
    assert common == [
        "common values: class_weights=none, epochs=1.5, finetune.precision=fp32, hidden_states.precision=fp32"
    ], lines
