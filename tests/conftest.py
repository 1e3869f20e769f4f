"""Shared fixtures: an isolated hwlut home per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from testdata import need_postgres

from lut_store import Store
from lut_store.testing import empty_store


@pytest.fixture(scope="session", autouse=True)
def _hwlut_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Point HWLUT_HOME at a fresh folder, unless the run names one (to reuse an artifact cache)."""
    if "HWLUT_TEST_HOME" in os.environ:
        os.environ["HWLUT_HOME"] = os.environ["HWLUT_TEST_HOME"]
    else:
        os.environ["HWLUT_HOME"] = str(tmp_path_factory.mktemp("hwlut-home"))
    # the client's config file (`hwlut config`): the tests' own, never the user's
    os.environ["HWLUT_CLIENT_CONFIG"] = str(tmp_path_factory.mktemp("hwlut-config") / "config.json")
    # no calm gate (up to 20 s a build on a busy machine) where a test does not ask for one: test_calm_recheck does
    os.environ.setdefault("HWLUT_CALM_WAIT", "0")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_kind(request: pytest.FixtureRequest) -> str:
    """Each database test runs on SQLite and on PostgreSQL."""
    if request.param == "postgres":
        need_postgres()
    return request.param


@pytest.fixture
def store(db_kind: str, tmp_path: Path) -> Iterator[Store]:
    """A fresh store migrated to head, on each database."""
    s = empty_store(db_kind, tmp_path)
    s.upgrade()
    yield s
    s.dispose()
