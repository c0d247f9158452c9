"""`textclf sweep`: experiments grouped by every param but the seed, mean ± spread, best by validation.
The README's sweep run for real (a queued 2 x 2 grid, then `textclf sweep`) is in tests/test_docs_commands.py."""

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
            data["metrics"]["metrics/headline.json"] = {
                "data": {
                    "val_accuracy": val_acc,
                    "val_f1_macro": val_f1,
                    "test_accuracy": test_acc,
                    "test_f1_macro": test_acc,
                    "logreg_val_accuracy": 0.5,
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
    assert lines[1].startswith("  workspace: learning_rate=0.00015 ") and lines[1].split()[-5:] == [
        "1",
        "0.9000",
        "0.9000",
        "0.9000",
        "0.9000",
    ], "the baseline first: one run, no ±"
    rows = {line[2:].split()[0]: line for line in lines[2:] if "learning_rate=" in line}
    assert set(rows) == {"learning_rate=5e-05", "learning_rate=0.0001"}, "one row per lr"
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


def test_running_and_queued_experiments_are_left_out_though_they_show_their_commits_metrics(tmp_path):
    """A queued or running experiment lists its parent commit's metrics files in `dvc exp show`."""
    shown = exp_show(unfinished=0)
    stale = shown[1]["experiments"][0]["revs"][0]
    for state in ("running", "queued", "failed"):
        copy = json.loads(json.dumps(stale))
        copy["data"]["params"]["params.yaml"]["data"]["finetune"]["learning_rate"] = 0.5
        copy["data"]["metrics"]["metrics/headline.json"]["data"]["val_accuracy"] = 0.99
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
        metrics = {"val_accuracy": accuracy, "val_f1_macro": accuracy, "test_accuracy": 0.5, "test_f1_macro": 0.5}
        return {
            "revs": [
                {
                    "rev": name,
                    "name": name,
                    "data": {
                        "params": {"params.yaml": {"data": params}},
                        "metrics": {"metrics/headline.json": {"data": metrics}},
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
    labels = {line[2:40].strip() for line in lines[2:6]}
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


def test_the_baseline_may_be_a_named_revision_and_a_single_run_shows_no_spread(tmp_path):
    shown = exp_show({"5e-05": [(0.80, 0.78, 0.95)], "0.0001": [(0.82, 0.81, 0.50), (0.84, 0.83, 0.50)]})
    lines = run_sweep(tmp_path, shown, "--baseline", "main").stdout.splitlines()
    assert lines[1].startswith("  main: ") and "±" not in lines[1], lines
    single = next(line for line in lines if "learning_rate=5e-05" in line)
    assert "0.8000 " in single + " " and "±" not in single, single
    assert "0.8300±0.0141" in next(line for line in lines if "learning_rate=0.0001 " in line)
    assert "first row: the baseline, main (one run); then the experiments" in lines


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seed-param", "finetune.sed"], "error: --seed-param finetune.sed: not a param of these experiments"),
        (["--baseline", "nope"], "error: baseline nope: not the workspace or a commit"),
    ],
)
def test_a_seed_param_or_baseline_that_is_not_there_is_one_line(tmp_path, args, message):
    result = run_sweep(tmp_path, exp_show(), *args)
    assert result.returncode == 2 and result.stdout == "", result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(message), result.stderr


def test_the_common_values_are_listed_once_below_the_table(tmp_path):
    grid = {"5e-05": [(0.80, 0.78, 0.95)], "0.0001": [(0.82, 0.81, 0.50)], "0.0003": [(0.7, 0.7, 0.5)]}
    shown = exp_show(grid)
    extra = json.loads(json.dumps(shown[1]["experiments"][0]))
    extra["revs"][0]["data"]["params"]["params.yaml"]["data"]["finetune"]["epochs"] = 3
    shown[1]["experiments"].append(extra)
    lines = run_sweep(tmp_path, shown).stdout.splitlines()
    assert "common values: epochs=1.5" in lines, lines
    assert any(line.startswith("  epochs=3 learning_rate=5e-05") for line in lines), lines
