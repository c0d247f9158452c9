"""The launcher's arguments and torchrun variables, checked before anything starts."""

from __future__ import annotations

import pytest

from conftest import ROOT, stage_command
from textclf.models import launch


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, 1),
        ({"PET_NNODES": "1"}, 1),
        ({"PET_NNODES": "3", "PET_RDZV_ENDPOINT": "node0:29500"}, 3),
    ],
)
def test_machines_from_torchrun_variables(monkeypatch, env, expected):
    monkeypatch.delenv("PET_NNODES", raising=False)
    monkeypatch.delenv("PET_RDZV_ENDPOINT", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert launch.nodes() == expected


@pytest.mark.parametrize(
    "env, message",
    [
        ({"PET_NNODES": "1:2"}, "is not a positive count of machines"),
        ({"PET_NNODES": "0"}, "is not a positive count of machines"),
        ({"PET_NNODES": "2"}, "PET_RDZV_ENDPOINT is unset"),
    ],
)
def test_bad_torchrun_variables_are_one_line(monkeypatch, env, message):
    monkeypatch.delenv("PET_RDZV_ENDPOINT", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exc:
        launch.nodes()
    assert str(exc.value).startswith("error: PET_NNODES") and message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_dvc_stage_takes_the_command_dvc_yaml_gives(monkeypatch):
    monkeypatch.chdir(ROOT)
    args = launch.parse_args(["--dvc-stage", "finetune"])
    assert (args.module, args.args) == stage_command("finetune")
    assert args.processes >= 1


def test_dvc_stage_refuses_a_stage_not_run_by_the_launcher(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exc:
        launch.parse_args(["--dvc-stage", "data"])
    assert str(exc.value).startswith("error: --dvc-stage data: not one stage run through textclf.models.launch")


def test_processes_come_from_the_params_file_and_a_value_is_one_argument(tmp_path, monkeypatch):
    """dvc.yaml interpolates no param into a command: the launcher reads `processes` from the stage's params
    file, so a value such as "2 --foo" or "1; touch x" is refused by the schema, never run or split."""
    from conftest import write_params

    monkeypatch.chdir(tmp_path)
    write_params(tmp_path / "params.yaml", processes=4)
    assert launch.parse_args(["stages.finetune", "--encoded", "x"]).processes == 4
    write_params(tmp_path / "other.yaml", processes=2)
    assert launch.parse_args(["stages.finetune", "--params", "other.yaml"]).processes == 2
    for value in ("1; touch pwned", "2 --foo"):
        write_params(tmp_path / "params.yaml", processes=value)
        with pytest.raises(SystemExit) as exc:
            launch.parse_args(["stages.finetune"])
        assert exc.value.code == 2 and not (tmp_path / "pwned").exists()
    assert all("${" not in spec["cmd"] or "${item" in spec["cmd"] or "${key}" in spec["cmd"] for spec in _cmds())


def _cmds() -> list[dict]:
    import yaml

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values()
    return [stage.get("do", stage) for stage in stages]
