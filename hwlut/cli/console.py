"""The Rich console a command prints its results on."""

from __future__ import annotations

import os
import sys

from rich.console import Console

__all__ = ["PIPED_WIDTH", "out_console"]

#: Columns of a result printed into a pipe or a log: Rich's 80 would cut the wide tables.
PIPED_WIDTH = 120


def out_console() -> Console:
    """Standard output: the terminal's width, ``$COLUMNS`` when set, else :data:`PIPED_WIDTH` columns."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console()
    return Console(width=PIPED_WIDTH)
