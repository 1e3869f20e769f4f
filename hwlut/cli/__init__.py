"""The ``hwlut`` command: one Typer app, a sub-app or command per part of hwlut.

Each part registers here and imports its heavy dependencies (torch, the
runtimes, the server) only inside its commands, so ``hwlut --help`` is fast.
"""

from __future__ import annotations

import typer

from . import agent as agent_cmd
from . import config as config_cmd
from . import db as db_cmd
from . import device as device_cmd
from . import export as export_cmd
from . import fit as fit_cmd
from . import job as job_cmd
from . import lut as lut_cmd
from . import measure as measure_cmd
from . import plot as plot_cmd
from . import profile as profile_cmd
from . import quickstart as quickstart_cmd
from . import search as search_cmd
from . import serve as serve_cmd
from . import space as space_cmd
from . import validate as validate_cmd
from . import verify as verify_cmd
from .console import widen_help
from .errors import HwlutGroup, root_options

app = typer.Typer(
    name="hwlut",
    help="Device latency lookup tables for hardware-aware neural architecture search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=HwlutGroup,
    context_settings={"max_content_width": 120},
)
app.callback()(root_options)
widen_help()
app.add_typer(space_cmd.app, name="space")
app.command("export")(export_cmd.export)
app.command("quickstart")(quickstart_cmd.quickstart)
app.command("search")(search_cmd.search)
app.add_typer(db_cmd.app, name="db")
app.command("serve")(serve_cmd.serve)
app.add_typer(device_cmd.app, name="device")
job_cmd.app.command("few-shot")(fit_cmd.job_fewshot)
app.add_typer(job_cmd.app, name="job")
app.add_typer(config_cmd.app, name="config")
app.command("agent")(agent_cmd.agent)
lut_cmd.app.command("fit")(fit_cmd.fit)
lut_cmd.app.add_typer(fit_cmd.fewshot_app, name="fewshot")
app.add_typer(lut_cmd.app, name="lut")
app.add_typer(lut_cmd.query_app, name="query")
app.command("profile")(profile_cmd.profile)
app.command("measure-arch")(measure_cmd.measure_arch)
app.command("validate")(validate_cmd.validate)
app.add_typer(plot_cmd.app, name="plot")
app.command("verify")(verify_cmd.verify)


def main() -> None:
    """Entry point of the ``hwlut`` console script.

    Errors end a command with one line and the exit code of :mod:`hwlut.cli.errors`
    (:class:`~hwlut.cli.errors.HwlutGroup` catches them), not a traceback.
    """
    app()
