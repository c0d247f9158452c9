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
            data["metrics"]["metrics/finetuned.json"] = {"data": {
                "validation": {"accuracy": val_acc, "f1_macro": val_f1},
                "test": {"accuracy": test_acc, "f1_macro": test_acc},
            }}
        return {"rev": f"{abs(hash(name)):040x}"[:40], "name": name, "data": data}

    runs = [rev(f"exp-{lr}-{i}", lr, i + 1, m) for lr, seeds in grid.items() for i, m in enumerate(seeds)]
    runs += [rev(f"queued-{i}", "0.001", 1, None) for i in range(unfinished)]
    commit = rev("main", "0.00015", 42, (0.9, 0.9, 0.9))
    commit["experiments"] = [{"revs": [r]} for r in runs]
    return [{"rev": "workspace", "name": None, "data": commit["data"], "experiments": None}, commit]


def run_sweep(tmp_path, shown, *args) -> subprocess.CompletedProcess:
    path = tmp_path / "shown.json"
    path.write_text(json.dumps(shown))
    return subprocess.run([sys.executable, "-m", "textclf", "sweep", "--exp-show-json", str(path), *args],
                          cwd=ROOT, capture_output=True, text=True)


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
    result = subprocess.run([sys.executable, "-m", "textclf", "sweep", "--exp-show-json", str(path)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")


def test_outside_a_dvc_project_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "textclf", "sweep", "--repo", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2, result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
