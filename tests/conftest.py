"""Shared fixtures: an isolated hwlut home per test session."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _hwlut_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Point HWLUT_HOME at a fresh folder, unless the run names one (to reuse an artifact cache)."""
    if "HWLUT_TEST_HOME" in os.environ:
        os.environ["HWLUT_HOME"] = os.environ["HWLUT_TEST_HOME"]
    else:
        os.environ["HWLUT_HOME"] = str(tmp_path_factory.mktemp("hwlut-home"))
