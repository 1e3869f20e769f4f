"""The options of every command that talks to a server, declared once: ``--server``, ``--token``, ``--job``.

One vocabulary: ``--lut`` is always a file; a server's LUT is ``--job ID|latest``.
Values come from the option, then the environment (``HWLUT_SERVER``,
``HWLUT_TOKEN``, ``HWLUT_ADMIN_TOKEN``), then ``hwlut config`` (:mod:`.config`),
then the default server ``http://127.0.0.1:8000``. Errors of the client
(unreachable, refused) are turned into one line and an exit code by
:class:`~hwlut.cli.errors.HwlutGroup`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from .config import configured

if TYPE_CHECKING:
    from lutclient import HwlutClient

__all__ = [
    "DEFAULT_SERVER",
    "JobRefOpt",
    "ServerOpt",
    "TokenOpt",
    "connect",
    "normalize_server",
    "server_url",
    "token_of",
]

DEFAULT_SERVER = "http://127.0.0.1:8000"

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="HWLUT_SERVER",
        help=f"The hwlut server's URL (default: `hwlut config set server URL`, else {DEFAULT_SERVER}).",
        show_default=False,
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Token sent to the server (default: $HWLUT_TOKEN, $HWLUT_ADMIN_TOKEN, else `hwlut config set token`).",
        show_default=False,
    ),
]
JobRefOpt = Annotated[
    str,
    typer.Option(
        "--job", help="The server's LUT: a job id, or latest (the device's newest complete LUT).", metavar="ID|latest"
    ),
]


def normalize_server(url: str) -> str:
    """``url`` as the server's root: ``http://`` added when no scheme, a pasted ``/v1/…`` path dropped (a note says so).

    Anything else that is no root URL (another scheme, another path, a query) is a usage error saying what to give.
    """
    import httpx

    text = url.strip()
    example = f"give the server's root URL, e.g. {DEFAULT_SERVER}"
    fixed = text if "://" in text else f"http://{text}"
    try:
        parsed = httpx.URL(fixed)
    except httpx.InvalidURL as exc:
        raise typer.BadParameter(f"{url!r} is no URL ({exc}); {example}", param_hint="--server") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise typer.BadParameter(f"{url!r} is no http(s) URL; {example}", param_hint="--server")
    if parsed.query or parsed.fragment:
        raise typer.BadParameter(f"{url!r} has a query or fragment; {example}", param_hint="--server")
    path = parsed.path.rstrip("/")
    if path == "/v1" or path.startswith("/v1/"):
        path = ""
    if path:
        raise typer.BadParameter(f"{url!r} has a path ({parsed.path}); {example}", param_hint="--server")
    root = str(parsed.copy_with(path="/")).rstrip("/")
    if root != text.rstrip("/"):
        typer.echo(f"note: using {root} as the server's URL (from {url!r})", err=True)
    return root


def server_url(given: str | None) -> str:
    """The server to talk to: ``given`` (option or $HWLUT_SERVER), else the config file's, else the default."""
    return normalize_server(given or configured("server") or DEFAULT_SERVER)


def token_of(given: str | None, *, admin_first: bool = False) -> str | None:
    """The token to send: ``given``, else $HWLUT_TOKEN or $HWLUT_ADMIN_TOKEN (``admin_first``), else the config."""
    envs = ("HWLUT_ADMIN_TOKEN", "HWLUT_TOKEN") if admin_first else ("HWLUT_TOKEN", "HWLUT_ADMIN_TOKEN")
    return given or next((os.environ[e] for e in envs if os.environ.get(e)), None) or configured("token")


def connect(server: str | None, token: str | None, *, admin_first: bool = False) -> HwlutClient:
    """A client of the server these options name (use it as a context manager)."""
    from lutclient import HwlutClient

    return HwlutClient(server_url(server), token=token_of(token, admin_first=admin_first))
