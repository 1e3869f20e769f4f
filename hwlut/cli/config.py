"""``hwlut config``: the client's settings file, so no one repeats ``--server`` and ``--token``.

The file is JSON, ``config.json`` under the user's config directory
(platformdirs: ``~/.config/hwlut`` on Linux), or ``$HWLUT_CLIENT_CONFIG``. It may hold
a token, so it is written readable by its owner only (mode 0600). A command
takes a value from its option first, then from the environment
(``HWLUT_SERVER``, ``HWLUT_TOKEN``, ``HWLUT_ADMIN_TOKEN``), then from this file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["KEYS", "app", "config_path", "configured", "load_config", "save_config"]

#: The settings the file may hold, and what each is.
KEYS = {
    "server": "the hwlut server's URL (as --server / HWLUT_SERVER)",
    "token": "a token the server commands send (as --token / HWLUT_TOKEN)",
}

app = typer.Typer(
    help="The client's settings (server URL, token), stored 0600 in the user's config directory.",
    no_args_is_help=True,
)


def config_path() -> Path:
    """``$HWLUT_CLIENT_CONFIG``, else ``config.json`` in the user's config directory for hwlut."""
    env = os.environ.get("HWLUT_CLIENT_CONFIG")
    if env:
        return Path(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir("hwlut")) / "config.json"


def load_config() -> dict[str, Any]:
    """The settings file's values ({} when there is none); an unreadable file is an error naming it."""
    path = config_path()
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"{path}: not a readable hwlut config file ({exc}); fix or delete it") from None
    if not isinstance(doc, dict):
        raise typer.BadParameter(f"{path}: expected a JSON object; fix or delete it")
    return doc


def configured(key: str) -> str | None:
    """The value of ``key`` in the settings file, if set."""
    value = load_config().get(key)
    return value if isinstance(value, str) and value else None


def save_config(doc: dict[str, Any]) -> Path:
    """Write the settings file, readable and writable by its owner only (0600, whatever the umask)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file keeps its mode otherwise
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path


def _key(key: str) -> str:
    if key not in KEYS:
        raise typer.BadParameter(f"unknown setting {key!r}; known: {', '.join(KEYS)}", param_hint="KEY")
    return key


KeyArg = Annotated[
    str,
    typer.Argument(
        help=f"One of: {', '.join(KEYS)}.", autocompletion=lambda: list(KEYS), show_default=False, metavar="KEY"
    ),
]


@app.command("set")
def set_(key: KeyArg, value: Annotated[str, typer.Argument(help="The value.", metavar="VALUE")]) -> None:
    """Store a setting.

    Example: ``hwlut config set server http://10.0.0.5:8000`` then ``hwlut config set token hwlut_…``.
    """
    key = _key(key)
    if key == "server":
        from .remote import normalize_server

        value = normalize_server(value)
    doc = load_config()
    doc[key] = value
    path = save_config(doc)
    shown = value if key != "token" else value[:10] + "…"
    typer.echo(f"{path}: {key} = {shown}")


@app.command("unset")
def unset(key: KeyArg) -> None:
    """Remove a setting. Example: ``hwlut config unset token``."""
    key = _key(key)
    doc = load_config()
    if doc.pop(key, None) is None:
        typer.echo(f"{config_path()}: {key} was not set")
        return
    typer.echo(f"{save_config(doc)}: {key} removed")


@app.command("show")
def show() -> None:
    """The settings and where each command's server and token come from. Example: ``hwlut config show``."""
    doc = load_config()
    typer.echo(f"file {config_path()}{'' if config_path().exists() else ' (none yet)'}")
    for key, what in KEYS.items():
        value = doc.get(key)
        shown = "not set" if value is None else (value if key != "token" else str(value)[:10] + "…")
        typer.echo(f"  {key:7} {shown}   ({what})")
    for env in ("HWLUT_SERVER", "HWLUT_TOKEN", "HWLUT_ADMIN_TOKEN"):
        if os.environ.get(env):
            typer.echo(f"  note: ${env} is set and wins over the file")
