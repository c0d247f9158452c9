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
