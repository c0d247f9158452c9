"""The README's test command shares each costly session fixture between its tests by running them in one
pytest-xdist worker (conftest.py's xdist groups); a group split over both workers builds the fixture twice."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from conftest import ROOT

CONFTEST = textwrap.dedent(
    f"""
    import importlib.util, os
    import pytest
    spec = importlib.util.spec_from_file_location("project_conftest", {str(ROOT / "tests" / "conftest.py")!r})
    project = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(project)
    pytest_collection_modifyitems = project.pytest_collection_modifyitems  # the hook under test

    @pytest.fixture(scope="session")
    def encoded_small(tmp_path_factory):
        with open(os.environ["BUILT_LOG"], "a") as log:
            log.write(f"{{os.getpid()}}\\n")
    """
)
TESTS = textwrap.dedent(
    """
    import pytest

    @pytest.mark.parametrize("i", range(6))
    def test_shares(encoded_small, i):
        pass

    @pytest.mark.parametrize("i", range(6))
    def test_alone(i):
        pass
    """
)


def test_a_groups_session_fixture_is_built_once_on_two_workers(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_probe.py").write_text(TESTS)
    built = tmp_path / "built.log"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "BUILT_LOG": str(built)},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "12 passed" in result.stdout, result.stdout[-2000:]
    assert len(built.read_text().split()) == 1, "the group's fixture was built in both workers"
