"""Where hwlut keeps its files."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = ["hwlut_home"]


def hwlut_home() -> Path:
    """``$HWLUT_HOME``, else the platform's user data directory for hwlut (created)."""
    env = os.environ.get("HWLUT_HOME")
    home = Path(env).expanduser() if env else Path(platformdirs.user_data_dir("hwlut"))
    home.mkdir(parents=True, exist_ok=True)
    return home
