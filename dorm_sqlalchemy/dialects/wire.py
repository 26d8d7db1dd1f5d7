"""Values and statements on the wire of the HTTP API, seen from the client.

Values travel as plain JSON where JSON is exact and as a one-key object
tagged with ``$`` where it is not (the server documents the same table in
``docs/http-api.md``):

=====================  =====================================  ==========================
Python value           sent as                                read back from
=====================  =====================================  ==========================
``None``               ``null``                               ``null``
``int``                a JSON integer (exact digits)          a number or ``{"$int": "..."}``
``float``              a number with a fraction: ``1.0``      a number or ``{"$real": ...}``
``float`` infinity     ``{"$real": "Infinity"}``              ``{"$real": "Infinity"}``
``float`` NaN          ``null`` (SQLite stores NaN as NULL)   ``null``
``bool``               ``true``/``false`` (stored as 1/0)     a number
``str``                a string                               a string
``bytes``              ``{"$blob": "<base64>"}``              ``{"$blob": "<base64>"}``
=====================  =====================================  ==========================

Other types raise :class:`ProgrammingError`, as ``sqlite3`` does; SQLAlchemy's
types (``Numeric``, ``Date``, ``DateTime``, ...) convert their values to one of
the above before they reach the driver.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import DataError, InterfaceError, ProgrammingError

__all__ = [
    "DML_KEYWORDS",
    "TRANSACTION_KEYWORDS",
    "WRITE_KEYWORDS",
    "decode_row",
    "decode_value",
    "encode_parameters",
    "encode_value",
    "leading_keyword",
]

SQLITE_MIN_INTEGER = -(2**63)
SQLITE_MAX_INTEGER = 2**63 - 1

DML_KEYWORDS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})
WRITE_KEYWORDS = DML_KEYWORDS | {"CREATE", "DROP", "ALTER", "REINDEX", "ANALYZE"}
TRANSACTION_KEYWORDS = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})

_REAL_TAGS = {"Infinity": math.inf, "-Infinity": -math.inf}
_LEADING_NOISE = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$))*", re.DOTALL)
_WORD = re.compile(r"[A-Za-z]+")


# -- parameters ------------------------------------------------------------------


def encode_parameters(parameters: Sequence[Any] | Mapping[str, Any] | None) -> Any:
    """Convert DB-API parameters to the JSON ``params`` of a request: a list or an object."""
    if parameters is None:
        return []
    if isinstance(parameters, Mapping):
        return {str(name): encode_value(value, repr(name)) for name, value in parameters.items()}
    if isinstance(parameters, (str, bytes)):
        raise ProgrammingError(
            f"parameters must be a sequence or a mapping, got {type(parameters).__name__} "
            f"{parameters!r}: wrap a single value in a tuple, as in (value,)"
        )
    return [
        encode_value(value, str(index)) for index, value in enumerate(parameters, start=1)
    ]


def encode_value(value: Any, where: str = "") -> Any:
    """Convert one bound value to its JSON form; ``where`` names the parameter in errors."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not SQLITE_MIN_INTEGER <= value <= SQLITE_MAX_INTEGER:
            raise DataError(
                f"parameter {where} is {value}, outside SQLite's 64-bit INTEGER range "
                f"[{SQLITE_MIN_INTEGER}, {SQLITE_MAX_INTEGER}]: bind it as a string"
            )
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return {"$real": "Infinity" if value > 0 else "-Infinity"}
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$blob": base64.b64encode(bytes(value)).decode("ascii")}
    raise ProgrammingError(
        f"parameter {where} has type {type(value).__name__}, which SQLite cannot store: "
        "bind None, int, float, str or bytes, or use a SQLAlchemy type that converts it"
    )


# -- results ---------------------------------------------------------------------


def decode_value(value: Any) -> Any:
    """Convert one JSON value of a result to the Python value ``sqlite3`` would return."""
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        tag, payload = next(iter(value.items()))
        if tag == "$int" and isinstance(payload, str):
            return int(payload)
        if tag == "$blob" and isinstance(payload, str):
            return base64.b64decode(payload)
        if tag == "$real" and payload in _REAL_TAGS:
            return _REAL_TAGS[payload]
    raise InterfaceError(
        f"the server sent the value {value!r}, which is not part of the protocol: "
        'expected null, a number, a string, or {"$int"}, {"$real"} or {"$blob"}'
    )


def decode_row(values: Sequence[Any]) -> tuple[Any, ...]:
    """Convert a JSON row to a tuple of Python values."""
    return tuple(decode_value(value) for value in values)


# -- statements ------------------------------------------------------------------


def leading_keyword(sql: str) -> str:
    """Return the first keyword of ``sql`` in upper case, after whitespace and comments.

    Returns ``""`` when the statement starts with anything else, such as ``(``.
    """
    start = _LEADING_NOISE.match(sql)
    position = start.end() if start else 0
    word = _WORD.match(sql, position)
    return word.group(0).upper() if word else ""
