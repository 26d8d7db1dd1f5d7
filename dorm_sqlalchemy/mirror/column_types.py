"""Column types of aggregate tables, and the conversion of SQLite values for them.

A SQLite aggregate keeps each tenant column's declared type and takes raw
values unchanged. Another database gets a portable type per column and the
values SQLAlchemy's SQLite types produce (``datetime`` from a DATETIME
string, ``Decimal`` from NUMERIC), so they fit its typed columns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import BigInteger, LargeBinary, Text, types
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Dialect

__all__ = ["Converter", "ddl_type", "value_converter"]

Converter = Callable[[Any], Any]
"""Turns one raw SQLite value (never None) into the value an aggregate column takes."""

_SAFE_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_ ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?")


def ddl_type(declared: str, dialect: Dialect) -> str:
    """Return the type of an aggregate column for a tenant column declared as ``declared``."""
    if dialect.name == "sqlite":
        # The aggregate keeps SQLite's own declared type, so values keep
        # the same affinity and storage class as in the tenant.
        return declared if _SAFE_TYPE.fullmatch(declared) else ""
    return str(_portable_type(declared).compile(dialect=dialect))


def value_converter(declared: str | None, dialect: Dialect) -> Converter | None:
    """Return the function that turns a raw SQLite value into a value for ``dialect``, if any."""
    if dialect.name == "sqlite" or declared is None:
        return None
    source_type = _sqlite_type(declared)
    if isinstance(source_type, types.NullType):
        return _untyped_to_text
    if isinstance(source_type, types.JSON):
        # JSON text goes to the aggregate as it is stored: the drivers send a
        # str with no declared type, so the database reads it as JSON.
        return _json_text
    processor = source_type.result_processor(sqlite_dialect.dialect(), None)
    return processor  # type: ignore[no-any-return]


def _untyped_to_text(value: object) -> object:
    # A column without a declared type can hold any storage class; outside
    # SQLite it becomes TEXT, with BLOBs as hexadecimal.
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _json_text(value: object) -> object:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _sqlite_type(declared: str) -> types.TypeEngine[Any]:
    dialect = sqlite_dialect.dialect()
    try:
        return dialect._resolve_type_affinity(declared)  # type: ignore[attr-defined, no-any-return]
    except Exception:  # an unparseable declared type keeps no affinity
        return types.NullType()


def _portable_type(declared: str) -> types.TypeEngine[Any]:
    """Map a SQLite declared type to a type another database can store losslessly."""
    resolved = _sqlite_type(declared)
    if isinstance(resolved, types.Integer) and not isinstance(resolved, types.Boolean):
        return BigInteger()
    if isinstance(resolved, (types.Float,)):
        return types.Double()
    if isinstance(resolved, types.Numeric):
        return types.Numeric(resolved.precision, resolved.scale)
    for generic in (types.DateTime, types.Date, types.Time, types.Boolean, types.JSON):
        if isinstance(resolved, generic):
            return generic()
    if isinstance(resolved, types.LargeBinary):
        return LargeBinary()
    return Text()
