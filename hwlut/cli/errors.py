"""One error style for every ``hwlut`` command: a one-line message naming what to do next, and one set of exit codes.

The top-level command group (:class:`HwlutGroup`) catches what a command lets
through and prints ``error: …`` instead of a traceback; ``hwlut --debug`` (or
``HWLUT_DEBUG=1``) lets the traceback through instead. The exit codes are the
same in every command (the README's "Using the CLI" section lists them):

====  =====================================================================
code  meaning
====  =====================================================================
0     done
1     it failed: the server could not be reached, a measurement or a job
      failed, an unexpected error (``--debug`` shows its traceback)
2     refused: a usage mistake or a bad value, a file that is no LUT, a
      server that said no (401, 403, 404, 409, 422), settings that do not match
3     the answer is incomplete: a LUT sum with entries missing
130   interrupted (Ctrl-C)
====  =====================================================================
"""

from __future__ import annotations

import os
import re
import sys
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

__all__ = [
    "EXIT_FAILED",
    "EXIT_INCOMPLETE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "HwlutGroup",
    "debug_enabled",
    "fail",
    "message_of",
    "plain_help",
    "root_options",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
EXIT_INCOMPLETE = 3
EXIT_INTERRUPTED = 130

#: Packages whose ValueError / KeyError subclasses are refusals of a user's value, said in their message.
_OWN_PACKAGES = ("searchspace", "lut_store", "lutclient", "profiler", "searcher", "hwlut")

#: Set by ``hwlut --debug``: let tracebacks through.
_DEBUG = {"on": False}


def debug_enabled() -> bool:
    """True under ``hwlut --debug`` or ``HWLUT_DEBUG`` set to anything but ``0``/empty."""
    return _DEBUG["on"] or os.environ.get("HWLUT_DEBUG", "") not in ("", "0")


def set_debug(on: bool) -> None:
    """``hwlut --debug``: tracebacks are shown from now on."""
    _DEBUG["on"] = on


def fail(message: str, code: int = EXIT_REFUSED) -> NoReturn:
    """Print ``error: message`` on stderr and end the command with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _client_message(exc: Exception) -> tuple[str, int]:
    from lutclient import ApiError, ServerUnreachable, Unauthorized

    url = getattr(exc, "url", None) or "the server"
    if isinstance(exc, ServerUnreachable):
        return (
            f"cannot reach the hwlut server at {url} ({exc}). Start one with `hwlut serve`, or point "
            "--server, HWLUT_SERVER or `hwlut config set server URL` at yours",
            EXIT_FAILED,
        )
    if isinstance(exc, Unauthorized):
        what = "needs a token" if exc.status == 401 else "refused this token"
        return (
            f"{url} {what} ({exc}). Give one with --token, HWLUT_TOKEN or `hwlut config set token TOKEN` "
            "(the admin token for devices; a device's own token for its jobs; the read token where reads need one)",
            EXIT_REFUSED,
        )
    if isinstance(exc, ApiError):
        return f"{url} refused the request: {exc}", EXIT_REFUSED
    return str(exc), EXIT_FAILED


def message_of(exc: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit code of an error a user can cause; None for an unexpected one."""
    from lut_store import FormatError, SchemaBehind
    from lut_store.errors import StoreError
    from lutclient import HwlutError
    from searchspace import LutFileError, SpecError

    if isinstance(exc, HwlutError):
        return _client_message(exc)
    if isinstance(exc, (SchemaBehind, StoreError, FormatError, LutFileError, SpecError)):
        return str(exc), EXIT_REFUSED
    if isinstance(exc, (ValueError, LookupError)) and type(exc).__module__.split(".")[0] in _OWN_PACKAGES:
        return str(exc), EXIT_REFUSED  # hwlut's own refusals (a bad key, an architecture of another space...)
    if isinstance(exc, UnicodeDecodeError):
        return f"not a text file ({exc.reason} at byte {exc.start})", EXIT_REFUSED
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}", EXIT_FAILED
    return None


_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc):`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain_help(text: str | None) -> str | None:
    """Help text without reStructuredText: ``x`` → `x`, :class:`~a.B` → `B`, a ``::`` line ending → ``:``."""
    if not text:
        return text
    text = _ROLE.sub(lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", text)
    text = _LITERAL.sub(r"`\1`", text)
    return re.sub(r"::$", ":", text, flags=re.MULTILINE)


def _plain(command: Any) -> None:
    command.help = plain_help(command.help)
    command.short_help = plain_help(command.short_help)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = plain_help(param.help)
    for sub in getattr(command, "commands", {}).values():
        _plain(sub)


class HwlutGroup(TyperGroup):
    """The ``hwlut`` group: turns what a command raises into one line and an exit code (``--debug``: a traceback).

    Its commands' help is plain text (:func:`plain_help`), not the docstrings' reStructuredText.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain(self)

    def invoke(self, ctx: typer.Context) -> Any:
        """Run the command; a user's mistake or a server's refusal ends it with ``error: …`` and its exit code."""
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except BrokenPipeError:  # the reader of a pipe went away (| head): nothing more to say
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(EXIT_FAILED) from None
        except KeyboardInterrupt:
            if debug_enabled():
                raise
            typer.echo("interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            if debug_enabled():
                raise
            known = message_of(exc)
            if known is None:
                message = (
                    f"unexpected {type(exc).__name__}: {exc} (run again with --debug, or HWLUT_DEBUG=1, "
                    "for the traceback)"
                )
                known = (message, EXIT_FAILED)
            typer.echo(f"error: {known[0]}", err=True)
            raise typer.Exit(known[1]) from None


def _version(value: bool) -> None:
    if value:
        from hwlut import __version__

        typer.echo(f"hwlut {__version__}")
        raise typer.Exit()


def root_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print hwlut's version and exit.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an error (also: HWLUT_DEBUG=1).")
    ] = False,
) -> None:
    """Device latency lookup tables for hardware-aware neural architecture search.

    Exit codes: 0 done, 1 failed (server unreachable, a measurement failed), 2 refused (a usage mistake,
    a bad value, a server's refusal), 3 incomplete answer (LUT entries missing), 130 interrupted.
    """
    set_debug(debug)
