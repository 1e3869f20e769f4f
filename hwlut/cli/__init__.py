"""The ``hwlut`` command: one Typer app, a sub-app or command per part of hwlut.

Each part registers here and imports its heavy dependencies (torch, the
runtimes, the server) only inside its commands, so ``hwlut --help`` is fast.
"""

from __future__ import annotations

import typer

from . import export as export_cmd
from . import quickstart as quickstart_cmd
from . import space as space_cmd

app = typer.Typer(
    name="hwlut",
    help="Device latency lookup tables for hardware-aware neural architecture search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(space_cmd.app, name="space")
app.command("export")(export_cmd.export)
app.command("quickstart")(quickstart_cmd.quickstart)


def main() -> None:
    """Entry point of the ``hwlut`` console script."""
    app()
