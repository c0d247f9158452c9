"""The whole tree passes ruff's lint rules and is formatted as `ruff format` writes it (config: pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_is_installed():
    """A missing ruff fails here (it is pinned in requirements.txt), instead of skipping the checks below."""
    result = ruff("--version")
    assert result.returncode == 0, f"ruff is missing: pip install -r requirements.txt\n{result.stderr}"


def test_ruff_check_finds_nothing():
    result = ruff("check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_changes_nothing():
    result = ruff("format", "--no-cache", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr
