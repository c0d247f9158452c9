"""Every command printed in README.md and docs/ (bash blocks; docs/ci.md has its own tests in test_ci_*) is
run here as printed, and where the page shows output, the output is checked against it.

The slow tests share one small copy of the project (a 2-layer random model, 36 train rows), reproduced on
main, after the README's sweep (tests/_swept_fixture.py); they run in file order, each group of commands
on the state the page describes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "ci.md")]
WIDTH = 120  # the comparison tables fit a 120-column terminal


def blocks(page: Path) -> list[tuple[list[str], str | None]]:
    """(the commands of each bash block, backslash continuations joined; the first plain block after it and
    before the next bash block, the output the page shows, or None)."""
    fences = re.findall(r"^```(\w*)\n(.*?)^```$", page.read_text(), re.S | re.M)
    found = []
    for i, (language, body) in enumerate(fences):
        if language != "bash":
            continue
        commands = [" ".join(line.split()) for line in body.replace("\\\n", " ").splitlines() if line.strip()]
        output = fences[i + 1][1] if i + 1 < len(fences) and fences[i + 1][0] == "" else None
        found.append((commands, output))
    return found


def commands_of(page: Path) -> list[str]:
    return [c for commands, _ in blocks(page) for c in commands]


def shown_after(command: str) -> str:
    """The output a page prints after the block whose last command is ``command``."""
    for page in PAGES:
        for commands, output in blocks(page):
            if commands[-1] == command and output is not None:
                return output
    raise AssertionError(f"no page shows the output of {command!r}")


NOTEBOOK = (
    "dvc exp run -S data.source=../shared/data/emotion -S model.checkpoint=distilbert-base-uncased "
    "-S finetune.learning_rate=2e-5 -S finetune.batch_size=16 -S finetune.epochs=2 -S finetune.warmup_ratio=0.0 "
    "-S finetune.train_word_embeddings=true"
)
EXP_SHOW = "dvc exp show --only-changed --drop 'Created|State|Executor|test_|.*weighted|.*/|.*yaml' --keep val_accuracy"
# Each command the pages print, by the test that runs it. Install and the test suite itself are run by CI
# (.ci/run, tests/test_ci_scripts.py), not from inside the tests.
RUN_BY = {
    "python3.11 -m venv .venv && . .venv/bin/activate": "CI (.ci/run)",
    "pip install -r requirements.txt": "CI (.ci/run)",
    "python -m pytest -q": "test_the_test_command_is_what_ci_runs",
    "cat metrics/headline.json": "test_the_committed_headline_is_what_the_readme_shows",
    "dvc stage list": "test_stage_list",
    "dvc repro": "swept (the README's run)",
    "dvc exp run --queue -S 'finetune.learning_rate=1e-4,3e-4' -S 'finetune.seed=1,2'": "swept",
    "dvc queue start": "swept",
    "textclf sweep": "swept",
    EXP_SHOW: "test_exp_show_fits_and_shows_the_changed_params_beside_validation_accuracy",
    "dvc queue status": "test_looking_at_the_sweep",
    "textclf sweep --baseline main": "test_looking_at_the_sweep",
    "dvc plots show": "test_looking_at_the_sweep",
    "dvc plots diff main -o ../plots-vs-main": "test_looking_at_the_sweep",
    "textclf report --base main": "test_looking_at_the_sweep",
    "dvc metrics diff main --targets metrics/finetuned.json": "test_looking_at_the_sweep",
    "dvc params diff main": "test_looking_at_the_sweep",
    'textclf predict "i feel great today" "this is so unfair"': "test_the_model_commands",
    'textclf predict "i feel great today" --all-scores': "test_the_model_commands",
    "printf 'i feel great today\\nthis is so unfair\\n' > texts.txt": "test_the_model_commands",
    "textclf predict --input texts.txt --output labelled.csv": "test_the_model_commands",
    "textclf export --out dist/emotion-classifier": "test_the_model_commands",
    "dvc exp run -S finetune.learning_rate=3e-4 -S finetune.seed=1": "test_one_experiment_then_metrics_diff",
    "dvc metrics diff --all": "test_one_experiment_then_metrics_diff",
    "dvc exp run --queue -S finetune.learning_rate=1e-4 -S finetune.seed=1": "test_queue_start_in_a_pipe_waits",
    "dvc queue start | tail -n 1": "test_queue_start_in_a_pipe_waits",
    "dvc exp run -S data.max_train_samples=1 || true": "test_a_failed_experiment_and_its_restore",
    "git status --short": "test_a_failed_experiment_and_its_restore",
    "git checkout -- params.yaml dvc.lock && dvc checkout": "test_a_failed_experiment_and_its_restore",
    "dvc status": "test_a_failed_experiment_and_its_restore",
    "dvc repro -f data": "test_a_failed_run_and_its_restore",
    "dvc checkout --force && git checkout -- metrics plots": "test_a_failed_run_and_its_restore",
    NOTEBOOK: "test_the_notebook_configuration",
}


def test_every_printed_command_is_run_by_a_test():
    printed = {c for page in PAGES for c in commands_of(page)}
    assert printed == set(RUN_BY), {"not run": printed - set(RUN_BY), "no longer printed": set(RUN_BY) - printed}


def test_the_readme_is_a_front_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for page in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / page).is_file(), page
    for page in PAGES[1:]:
        assert f"]({page.relative_to(ROOT)}" in readme, f"the README links {page.name}"
    test = readme.split("## Test", 1)[1]
    assert blocks_in(test)[0] == ["python -m pytest -q"] and 'python -m pytest -q -m "not slow"' in test


def blocks_in(text: str) -> list[list[str]]:
    return [[line for line in b.splitlines() if line.strip()] for b in re.findall(r"```bash\n(.*?)```", text, re.S)]


def test_the_test_command_is_what_ci_runs():
    lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines() if line.strip()]
    assert lines[-1] == ".venv/bin/python -m pytest -q"
    assert "slow:" in (ROOT / "pyproject.toml").read_text(), "the marker of the quick tier"


def test_the_committed_headline_is_what_the_readme_shows():
    from _swept_fixture import bash

    out = bash("cat metrics/headline.json", ROOT).stdout
    assert json.loads(out) == json.loads(shown_after("cat metrics/headline.json"))


def test_stage_list():
    from _swept_fixture import bash

    listed = bash("dvc stage list", ROOT).stdout
    for stage in ("params", "data", "encode", "finetune", "headline", "model_card"):
        assert re.search(rf"^{stage}\b", listed, re.M), listed


@pytest.fixture(scope="session")
def swept(tmp_path_factory, e2e_origin) -> dict:
    from _swept_fixture import make_swept_repo

    readme = ROOT / "README.md"
    run = next(commands for commands, _ in blocks(readme) if commands == ["dvc repro"])
    sweep = next(commands for commands, _ in blocks(readme) if commands[0].startswith("dvc exp run --queue"))
    return make_swept_repo(tmp_path_factory.mktemp("docs") / "repo", e2e_origin, run[0], sweep)


def table(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


@pytest.mark.slow
def test_the_readme_run_and_sweep(swept):
    from _swept_fixture import bash

    shown = table(shown_after("dvc repro").replace("\n\n", "\n"))
    printed = iter(table(swept["first run"]))
    for line in shown:  # in order, each line as dvc printed it
        assert any(line == got for got in printed), (line, swept["first run"])
    assert "Data and pipelines are up to date." in swept["second run"]
    assert swept["queue start seconds"] < 60, "started with its output in a file, it returns at once"
    assert swept["queue status"].count("Success") == 4, swept["queue status"]
    lines = swept["textclf sweep"].splitlines()
    assert all(len(line) <= 100 for line in lines), swept["textclf sweep"]
    assert lines[1].startswith("  workspace: ") and "±" not in lines[1], "the baseline first, one run"

    # the summary against the experiments' own headline numbers
    shown = json.loads(bash("dvc exp show --json", swept["repo"]).stdout)
    by_lr: dict[float, list[float]] = {}
    for group in shown[-1]["experiments"]:
        data = group["revs"][0]["data"]
        lr = data["params"]["params.yaml"]["data"]["finetune"]["learning_rate"]
        by_lr.setdefault(lr, []).append(data["metrics"]["metrics/headline.json"]["data"]["val_accuracy"])
    assert sorted(by_lr) == [1e-4, 3e-4] and all(len(v) == 2 for v in by_lr.values()), by_lr
    means = {lr: sum(values) / 2 for lr, values in by_lr.items()}
    rows = {line[2:].split()[0]: line for line in lines[2:] if "learning_rate=" in line}
    assert set(rows) == {"learning_rate=0.0001", "learning_rate=0.0003"}, swept["textclf sweep"]
    marked = [lr for lr in means if rows[f"learning_rate={lr}"].startswith("* ")]
    assert len(marked) == 1 and means[marked[0]] == max(means.values()), swept["textclf sweep"]  # a tie: either
    for lr, mean in means.items():
        row = rows[f"learning_rate={lr}"]
        assert row.split()[-5] == "2" and f"{mean:.4f}±" in row, row


@pytest.mark.slow
def test_exp_show_fits_and_shows_the_changed_params_beside_validation_accuracy(swept):
    from _swept_fixture import bash

    out = bash(EXP_SHOW, swept["repo"]).stdout
    lines = table(out)
    assert max(map(len, lines)) <= WIDTH, max(map(len, lines))
    header = lines[1].split()
    assert header == ["Experiment", "val_accuracy", "finetune.learning_rate", "finetune.seed"], lines
    shown = table(shown_after(EXP_SHOW))
    assert lines[1] == shown[1]
    # the values as the README prints them; names and shas of experiments differ from run to run
    values = lambda rows: sorted(row.split()[-3:] for row in rows[3:-1])  # noqa: E731
    assert values(lines) == values(shown), out


@pytest.mark.slow
def test_looking_at_the_sweep(swept):
    from _swept_fixture import bash

    repo = swept["repo"]
    assert re.search(r"\b(Queued|Running)\b", bash("dvc queue status", repo).stdout) is None
    summary = bash("textclf sweep --baseline main", repo).stdout
    assert summary.splitlines()[1].startswith("  main: ") and "±" in summary
    assert all(len(line) <= 100 for line in summary.splitlines()), summary
    bash("dvc plots show", repo)
    assert (repo / "dvc_plots/index.html").is_file()
    bash("dvc plots diff main -o ../plots-vs-main", repo)
    assert (repo.parent / "plots-vs-main/index.html").is_file()
    bash("textclf report --base main", repo)
    report = (repo / "report/report.md").read_text()
    assert report.index("## Headline") < report.index("## Parameters"), report[:800]
    details = bash("dvc metrics diff main --targets metrics/finetuned.json", repo).stdout
    assert "metrics/finetuned.json" in details or details == "", details
    bash("dvc params diff main", repo)


@pytest.mark.slow
def test_the_model_commands(swept):
    from _swept_fixture import bash

    repo = swept["repo"]
    two = 'textclf predict "i feel great today" "this is so unfair"'
    rows = [json.loads(line) for line in bash(two, repo).stdout.splitlines()]
    assert [r["text"] for r in rows] == ["i feel great today", "this is so unfair"]
    assert all({"label", "score"} <= set(r) for r in rows), rows
    scores = json.loads(bash('textclf predict "i feel great today" --all-scores', repo).stdout)
    assert len(scores["scores"]) == 6, scores
    bash("printf 'i feel great today\\nthis is so unfair\\n' > texts.txt", repo)
    bash("textclf predict --input texts.txt --output labelled.csv", repo)
    assert len((repo / "labelled.csv").read_text().splitlines()) == 3
    bash("textclf export --out dist/emotion-classifier", repo)
    assert (repo / "dist/emotion-classifier/README.md").is_file()
    assert (repo / "dist/emotion-classifier/config.json").is_file()


@pytest.mark.slow
def test_one_experiment_then_metrics_diff(swept):
    from _swept_fixture import bash

    repo = swept["repo"]
    ran = bash("dvc exp run -S finetune.learning_rate=3e-4 -S finetune.seed=1", repo)
    assert "is cached - skipping run" in ran.stdout + ran.stderr, "the sweep ran it: restored from the run-cache"
    out = bash("dvc metrics diff --all", repo).stdout
    assert table(out) == table(shown_after("dvc metrics diff --all")), out
    assert max(map(len, out.splitlines())) <= WIDTH
    bash("git add -A && git commit -qm 'learning rate 3e-4, seed 1'", repo)


@pytest.mark.slow
def test_queue_start_in_a_pipe_waits(swept):
    from _swept_fixture import bash, queue_finished

    repo = swept["repo"]
    bash("dvc exp run --queue -S finetune.learning_rate=1e-4 -S finetune.seed=1", repo)
    assert not queue_finished(repo)
    bash("dvc queue start | tail -n 1", repo, timeout=900)
    assert queue_finished(repo), "the pipe returned only when the queue was done"


@pytest.mark.slow
def test_a_failed_experiment_and_its_restore(swept):
    from _swept_fixture import bash

    repo = swept["repo"]
    bash("dvc exp run -S data.max_train_samples=1 || true", repo)
    status = bash("git status --short", repo).stdout
    assert table(status) == table(shown_after("git status --short")), status
    bash("git checkout -- params.yaml dvc.lock && dvc checkout", repo)
    out = bash("dvc status", repo).stdout
    assert table(out) == table(shown_after("dvc status")), out
    assert bash("git status --short", repo).stdout == ""


@pytest.mark.slow
def test_a_failed_run_and_its_restore(swept):
    from _swept_fixture import bash

    repo = swept["repo"]
    bash("dvc repro -f data", repo)
    assert "Data and pipelines are up to date." in bash("dvc status", repo).stdout
    train = repo / "data/sample/train.jsonl"
    train.write_text(train.read_text() + "{not json\n")  # bad data: the data stage fails, its outputs removed
    failed = bash("dvc repro", repo, ok=False)
    assert failed.returncode != 0 and not (repo / "data/prepared").exists()
    assert "dvc checkout --force && git checkout -- metrics plots" in failed.stderr + failed.stdout
    bash("git checkout -- data/sample", repo)  # the data fixed
    bash("dvc checkout --force && git checkout -- metrics plots", repo)
    assert "Data and pipelines are up to date." in bash("dvc status", repo).stdout
    assert bash("git status --short", repo).stdout == ""


def fake_hub_cache(home: Path, name: str, model: Path) -> Path:
    """A Hugging Face cache under ``home`` holding ``model`` as the hub's ``name``."""
    snapshot = home / "hub" / f"models--{name}" / "snapshots" / ("0" * 40)
    shutil.copytree(model, snapshot)
    (home / "hub" / f"models--{name}" / "refs").mkdir()
    (home / "hub" / f"models--{name}" / "refs" / "main").write_text("0" * 40)
    return home


@pytest.mark.slow
def test_the_notebook_configuration(swept, tmp_path, tiny_model):
    """As printed, offline: ../shared/data/emotion holds a few rows in the real layout (jsonl, integer labels),
    and the Hugging Face cache holds the tiny model as distilbert-base-uncased."""
    from _swept_fixture import bash
    from conftest import sh

    repo = tmp_path / "repo"
    sh("git", "clone", "-q", str(swept["repo"]), str(repo), cwd=tmp_path)
    data = tmp_path / "shared/data/emotion"
    data.mkdir(parents=True)
    names = json.loads((repo / "data/sample/labels.json").read_text())
    for split in ("train", "validation", "test"):
        rows = [json.loads(line) for line in (repo / f"data/sample/{split}.jsonl").read_text().splitlines()]
        (data / f"{split}.jsonl").write_text(
            "".join(
                json.dumps(
                    {"text": r["text"], "label": r["label"] if isinstance(r["label"], int) else names.index(r["label"])}
                )
                + "\n"
                for r in rows
            )
        )
    home = fake_hub_cache(tmp_path / "hf", "distilbert-base-uncased", tiny_model)
    bash(NOTEBOOK, repo, env={"HF_HOME": str(home)})
    params = bash("dvc params diff main", repo).stdout
    assert "distilbert-base-uncased" in params and "../shared/data/emotion" in params, params
    headline = json.loads((repo / "metrics/headline.json").read_text())
    assert set(headline) >= {"val_accuracy", "test_accuracy", "logreg_val_accuracy"}
