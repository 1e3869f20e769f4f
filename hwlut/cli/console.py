"""The Rich console a command prints its results on."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer.core
from rich.console import Console
from rich.progress import Progress

__all__ = ["PIPED_WIDTH", "live_progress", "out_console", "widen_help"]

#: Columns of a result printed into a pipe or a log: Rich's 80 would cut the wide tables.
PIPED_WIDTH = 120


def out_console() -> Console:
    """Standard output: the terminal's width, ``$COLUMNS`` when set, else :data:`PIPED_WIDTH` columns."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console()
    return Console(width=PIPED_WIDTH)


@contextmanager
def live_progress(progress: Progress) -> Iterator[Progress]:
    """``with progress:``, except that Ctrl-C erases the bars, so an interrupted command ends with one line."""
    with progress:
        try:
            yield progress
        except KeyboardInterrupt:
            progress.live.transient = True  # not even a final frame into a pipe or log
            raise


#: How ``--help`` names a value's type: words a user knows, not Python's type names (``<list[Path]>``).
_TYPE_WORDS = {
    "int": "INTEGER",
    "int range": "INTEGER",
    "float": "NUMBER",
    "float range": "NUMBER",
    "str": "TEXT",
    "Path": "PATH",
    "file": "FILE",
}


def _display_type(param: Any, ctx: Any) -> str | None:
    """A parameter's type in ``--help``: its metavar, its choices, or INTEGER/NUMBER/TEXT/PATH (a flag: none)."""
    if getattr(param, "is_flag", False) or getattr(param, "is_bool_flag", False):
        return None
    if param.metavar:
        return None if isinstance(param, typer.core.TyperArgument) else param.metavar
    label = str(param.display_type(ctx)).strip("<>")
    many = label.startswith("list[")
    label = label[5:-1] if many else label
    if label == "bool":
        return None
    word = label if "|" in label else _TYPE_WORDS.get(label, label.upper())
    return f"{word} (repeat)" if many else word


def widen_help() -> None:
    """``--help`` that teaches: type words, not Python's type names; into a pipe, 120 columns, not Rich's 80."""
    import typer.rich_utils

    if hasattr(typer.core.TyperOption, "display_type"):  # Typer's own type labels (<bool>, <list[Path]>...)
        typer.core.TyperOption.display_type_rich = _display_type  # type: ignore[method-assign]
        typer.core.TyperArgument.display_type_rich = _display_type  # type: ignore[method-assign]
    make_console = getattr(typer.rich_utils, "_get_rich_console", None)
    if make_console is None or getattr(make_console, "hwlut_wide", False):
        return  # another Typer, or done already

    def wide_console(stderr: bool = False) -> Console:
        console = make_console(stderr=stderr)
        if typer.rich_utils.MAX_WIDTH is None and not console.is_terminal and not os.environ.get("COLUMNS"):
            console.width = PIPED_WIDTH
        return console

    wide_console.hwlut_wide = True  # type: ignore[attr-defined]
    typer.rich_utils._get_rich_console = wide_console
