"""What every database stores alike: the checks a value passes before it is written.

SQLite takes what PostgreSQL refuses (a NUL byte in text, an integer beyond
a 32-bit column, a key longer than its column, NaN in JSON), and either may
store what cannot be read back or served (a lone UTF-16 surrogate, JSON
nested hundreds of levels deep). :func:`check_value` refuses such values
wherever they come from (an HTTP body, an imported file), naming where;
:func:`install_flush_guard` runs the column checks on every row a write
session flushes, so nothing the store accepts breaks a later read.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import JSON, Float, Integer, String, event, inspect
from sqlalchemy.orm import Session, sessionmaker

from .errors import Invalid

__all__ = [
    "MAX_DEPTH",
    "MAX_INT32",
    "MAX_JSON_INT",
    "ValueProblem",
    "check_text",
    "check_value",
    "install_flush_guard",
]

MAX_DEPTH = 32  # nesting of a free JSON value (a device's hardware, a job's options, extra stats)
MAX_INT32 = 2**31 - 1  # an Integer column on PostgreSQL
MAX_JSON_INT = 2**53  # the largest integer every JSON reader (JavaScript's too) keeps exactly


class ValueProblem(ValueError):
    """A value no database stores faithfully; ``path`` is where in it (``[]`` for the value itself)."""

    def __init__(self, path: list[str | int], message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


def check_text(text: str, path: list[str | int], max_length: int | None = None) -> None:
    """Text PostgreSQL and UTF-8 can both hold: no NUL byte, no lone surrogate, at most ``max_length``."""
    if "\x00" in text:
        raise ValueProblem(path, "contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueProblem(path, "contains a lone UTF-16 surrogate (not valid Unicode text)") from None
    if max_length is not None and len(text) > max_length:
        raise ValueProblem(path, f"longer than {max_length} characters")


def check_value(value: Any, path: list[str | int] | None = None, *, depth: int = 0) -> None:
    """A JSON value every database stores and every reader reads: see the module's docstring.

    Raises :class:`ValueProblem` with the path of the first bad part.
    """
    path = path or []
    if depth > MAX_DEPTH:
        raise ValueProblem(path, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        check_text(value, path)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) > MAX_JSON_INT:
            raise ValueProblem(path, f"integer beyond ±2^53 ({value.bit_length()} bits)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueProblem(path, "NaN and infinity are not allowed")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueProblem(path, f"a key is not text: {type(key).__name__}")
            check_text(key, [*path, key], max_length=255)
            check_value(item, [*path, key], depth=depth + 1)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_value(item, [*path, i], depth=depth + 1)
    else:
        raise ValueProblem(path, f"not a JSON value: {type(value).__name__}")


def dotted(path: list[str | int]) -> str:
    """``["stats", "x", 2]`` as ``stats.x[2]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _check_column(column: Any, value: Any) -> None:
    kind = column.type
    if isinstance(value, str):
        check_text(value, [], getattr(kind, "length", None) if isinstance(kind, String) else None)
    elif isinstance(kind, Integer) and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_INT32:
            raise ValueProblem([], f"{value} does not fit a 32-bit integer")
    elif isinstance(kind, Float) and isinstance(value, float) and not math.isfinite(value):
        raise ValueProblem([], "NaN and infinity are not allowed")
    elif isinstance(kind, JSON) and value is not None:
        check_value(value)


def check_row(obj: Any) -> None:
    """Every column of an ORM object against its type; :class:`Invalid` naming ``table.column[.path]``."""
    mapper = inspect(obj).mapper
    for attr in mapper.column_attrs:
        column = attr.columns[0]
        value = getattr(obj, attr.key, None)
        if value is None:
            continue
        try:
            _check_column(column, value)
        except ValueProblem as exc:
            where = dotted([f"{mapper.local_table.name}.{attr.key}", *exc.path])
            raise Invalid(where, exc.message) from None


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    for obj in (*session.new, *session.dirty):
        check_row(obj)


def install_flush_guard(factory: sessionmaker[Session]) -> None:
    """Check every new or changed row before ``factory``'s sessions flush it (:func:`check_row`)."""
    event.listen(factory, "before_flush", _before_flush)
