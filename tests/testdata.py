"""What several test modules share: where the reference LUTs are, and whether PostgreSQL is there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lut_store.testing import postgres_url

#: The real phone LUTs in the project's shared folder, beside the repository (``HWLUT_REFERENCE_LUTS`` overrides).
REFERENCE_LUTS = Path(
    os.environ.get("HWLUT_REFERENCE_LUTS") or Path(__file__).resolve().parents[2] / "shared" / "data" / "reference-luts"
)


def need_postgres() -> None:
    """Skip without PostgreSQL, but fail under CI, where scripts/test.sh must have started one."""
    if postgres_url() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI needs PostgreSQL: HWLUT_TEST_POSTGRES_URL is not set (scripts/test.sh starts one)")
        pytest.skip("HWLUT_TEST_POSTGRES_URL is not set")
