"""Server settings, read once per process (see :func:`get_settings`): the environment, then a config file.

The config file is TOML: ``$HWLUT_CONFIG`` when set, else ``server.toml`` in
hwlut's home (``$HWLUT_HOME``) when it exists::

    admin_token = "..."        # or HWLUT_ADMIN_TOKEN
    read_token = "..."         # or HWLUT_READ_TOKEN
    database_url = "sqlite:///..."   # or HWLUT_DATABASE_URL
    max_body_bytes = 8388608   # or HWLUT_MAX_BODY_BYTES
    lut_cache_ttl_s = 1.0      # or HWLUT_LUT_CACHE_TTL_S
    upload_rate = 50.0         # or HWLUT_UPLOAD_RATE (uploads a second per token; 0: no limit)

An environment variable wins over the file. A file holding a token must not
be readable by group or others (``chmod 600``), as with ssh keys; unknown keys
are refused, so a typo never leaves the server silently open.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["CONFIG_ENV", "ConfigError", "Settings", "config_path", "get_settings"]

CONFIG_ENV = "HWLUT_CONFIG"
_ENV = {
    "database_url": "HWLUT_DATABASE_URL",
    "admin_token": "HWLUT_ADMIN_TOKEN",
    "read_token": "HWLUT_READ_TOKEN",
    "max_body_bytes": "HWLUT_MAX_BODY_BYTES",
    "lut_cache_ttl_s": "HWLUT_LUT_CACHE_TTL_S",
    "upload_rate": "HWLUT_UPLOAD_RATE",
}
_TYPES: dict[str, type] = {
    "database_url": str,
    "admin_token": str,
    "read_token": str,
    "max_body_bytes": int,
    "lut_cache_ttl_s": float,
    "upload_rate": float,
}


class ConfigError(ValueError):
    """A config file or setting hwlut cannot use; the message names the file and the key."""


@dataclass(frozen=True)
class Settings:
    """What the server needs to know; tokens are secrets and never printed (``repr`` hides them).

    ``lut_cache_ttl_s`` bounds how long a server process trusts its memory of
    which LUT ``latest`` (or a job id) of a device is, when another process
    (another worker, ``hwlut lut import``) changed the database; a change made
    through the same process is seen at once.
    """

    database_url: str | None = None
    admin_token: str | None = None
    read_token: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch: int = 10_000
    lut_cache_ttl_s: float = 1.0
    #: Uploads (results, failures) a second per token and worker, in bursts of twice as many; 0: no limit.
    upload_rate: float = 50.0

    def __repr__(self) -> str:
        hidden = {k: ("***" if getattr(self, k) else None) for k in ("admin_token", "read_token")}
        return (
            f"Settings(database_url={self.database_url!r}, admin_token={hidden['admin_token']}, "
            f"read_token={hidden['read_token']}, max_body_bytes={self.max_body_bytes}, "
            f"lut_cache_ttl_s={self.lut_cache_ttl_s}, upload_rate={self.upload_rate})"
        )

    @classmethod
    def from_env(cls) -> Settings:
        """The environment's settings over the config file's (see the module's docstring)."""
        values = read_config(config_path())
        for name, var in _ENV.items():
            raw = os.environ.get(var)
            if raw:
                values[name] = _convert(name, raw, var)
        return cls(**values)


def config_path() -> Path | None:
    """``$HWLUT_CONFIG`` (which must exist), else ``$HWLUT_HOME/server.toml`` if it exists, else ``None``."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={named}: no such file")
        return path
    from searchspace.paths import hwlut_home

    path = hwlut_home() / "server.toml"
    return path if path.is_file() else None


def _convert(name: str, value: Any, where: str) -> Any:
    kind = _TYPES[name]
    try:
        if kind is str:
            if not isinstance(value, str):
                raise TypeError
            return value or None
        if isinstance(value, bool):
            raise TypeError
        converted = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}") from None
    if converted < 0:
        raise ConfigError(f"{where}: must not be negative")
    return converted


def read_config(path: Path | None) -> dict[str, Any]:
    """The settings in a TOML config file (empty for ``None``); :class:`ConfigError` naming what is wrong."""
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    known = {f.name for f in fields(Settings)} & set(_TYPES)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if ("admin_token" in data or "read_token" in data) and os.name == "posix" and path.stat().st_mode & 0o077:
        raise ConfigError(f"{path} holds a token but others may read it: chmod 600 {path}")
    return {name: _convert(name, value, f"{path}: {name}") for name, value in data.items()}


@lru_cache
def get_settings() -> Settings:
    """The process's settings (cached; tests pass their own to ``create_app``)."""
    return Settings.from_env()
