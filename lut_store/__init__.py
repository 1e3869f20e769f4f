"""hwlut's LUT store: SQLAlchemy models, sessions, migrations and LUT file formats.

Never imports torch or the server. See :mod:`lut_store.db` (engines, schema
version), :mod:`lut_store.models` (tables), :mod:`lut_store.crud` (what the
server does) and :mod:`lut_store.formats` (import / export).
"""

from .db import DATABASE_URL_ENV, SchemaBehind, Store, current_revision, database_url, head_revision, make_engine
from .formats import FORMATS, FormatError, Table, TableRow, read_table, write_table

__all__ = [
    "DATABASE_URL_ENV",
    "FORMATS",
    "FormatError",
    "SchemaBehind",
    "Store",
    "Table",
    "TableRow",
    "current_revision",
    "database_url",
    "head_revision",
    "make_engine",
    "read_table",
    "write_table",
]
