"""The wire format of the SQL endpoints: request bodies and JSON values.

A request body is ``{"sql": ..., "params": ...}`` for one statement, or
``{"transaction": [{"sql": ..., "params": ...}, ...]}`` for several that run
in one transaction. ``params`` is a list for ``?`` placeholders or an object
for ``:name`` placeholders, and may be left out.

Values travel as plain JSON wherever JSON is exact, and as a one-key object
tagged with ``$`` where it is not:

=================================  ==========================================
SQLite value                       JSON
=================================  ==========================================
NULL                               ``null``
INTEGER within +-(2**53 - 1)       a number: ``42``
INTEGER beyond that                ``{"$int": "9007199254740993"}``
REAL                               a number with a fraction or exponent: ``1.0``
REAL infinity                      ``{"$real": "Infinity"}`` or ``"-Infinity"``
TEXT                               a string
BLOB                               ``{"$blob": "<base64>"}``
=================================  ==========================================

JavaScript reads every JSON number as a double, so integers beyond 2**53
are tagged instead of being rounded by the client; Python clients can read
them either way. Parameters accept the same forms, and also plain JSON
integers of any size within SQLite's 64-bit range. A JSON integer binds as
INTEGER, a JSON number with a fraction or exponent as REAL, ``true`` and
``false`` as 1 and 0.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson

from .errors import ApiError

__all__ = [
    "Parameters",
    "QueryRequest",
    "Statement",
    "check_text",
    "decode_parameter",
    "dumps",
    "encode_row",
    "encode_value",
    "is_decimal",
    "join_json_arrays",
    "parse_query_request",
    "row_lines",
    "rows_json",
    "value_size",
]

Parameters: TypeAlias = "Sequence[Any] | Mapping[str, Any]"

JS_MAX_SAFE_INTEGER = 2**53 - 1
SQLITE_MIN_INTEGER = -(2**63)
SQLITE_MAX_INTEGER = 2**63 - 1

_INTEGER_TEXT = re.compile(r"-?[0-9]{1,20}")
_REAL_TAGS = {"Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a request with its decoded parameters."""

    sql: str
    params: Parameters
    position: int | None = None
    """1-based place in a transaction array, or ``None`` for a single statement."""

    def describe(self) -> str:
        """Name the statement in an error message: "statement 2" or "the statement"."""
        return "the statement" if self.position is None else f"statement {self.position}"


@dataclass(frozen=True)
class QueryRequest:
    """A parsed request body: one statement, or a transaction of several."""

    statements: tuple[Statement, ...]
    is_transaction: bool


# -- requests ------------------------------------------------------------------


def parse_query_request(body: bytes) -> QueryRequest:
    """Parse a ``/query/raw`` or ``/query/stream`` body, or raise :class:`ApiError` (400)."""
    document = _load_json(body)
    if not isinstance(document, dict):
        raise ApiError(
            400,
            f"the request body must be a JSON object, got {_json_type(document)}: "
            'send {"sql": "...", "params": [...]} or {"transaction": [...]}',
        )

    if "transaction" in document:
        if "sql" in document:
            raise ApiError(
                400,
                'the request body has both "sql" and "transaction": send one statement '
                'as "sql", or several as "transaction"',
            )
        return QueryRequest(_parse_transaction(document["transaction"]), is_transaction=True)

    if "sql" not in document:
        raise ApiError(
            400,
            'the request body has no "sql": send {"sql": "SELECT ...", "params": [...]} '
            'or {"transaction": [{"sql": "..."}, ...]}',
        )
    return QueryRequest((_parse_statement(document, None),), is_transaction=False)


def _load_json(body: bytes) -> Any:
    if not body.strip():
        raise ApiError(
            400, 'the request body is empty: send a JSON object such as {"sql": "SELECT 1"}'
        )
    try:
        # The same steps as json.loads(body, parse_constant=...), without
        # building a new decoder for every request.
        return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except UnicodeDecodeError as error:
        raise ApiError(400, f"the request body is not UTF-8 text: {error}") from error
    except json.JSONDecodeError as error:
        raise ApiError(400, f"the request body is not valid JSON: {error}") from error
    except RecursionError as error:
        raise ApiError(400, "the request body nests JSON too deeply") from error


def _reject_constant(name: str) -> Any:
    raise ApiError(
        400,
        f"the request body contains {name}, which is not JSON: send "
        '{"$real": "Infinity"} or {"$real": "-Infinity"} for infinite REAL values; '
        "SQLite stores NaN as NULL, so send null",
    )


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _parse_transaction(items: Any) -> tuple[Statement, ...]:
    if not isinstance(items, list):
        raise ApiError(
            400,
            f'"transaction" must be a list of {{"sql", "params"}} objects, got {_json_type(items)}',
        )
    if not items:
        raise ApiError(400, '"transaction" is empty: give at least one {"sql": "..."} object')
    statements = []
    for position, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise ApiError(
                400,
                f'statement {position} of "transaction" must be an object {{"sql", "params"}}, '
                f"got {_json_type(item)}",
            )
        statements.append(_parse_statement(item, position))
    return tuple(statements)


def _parse_statement(item: dict[str, Any], position: int | None) -> Statement:
    where = "" if position is None else f" of statement {position}"
    sql = item.get("sql")
    if not isinstance(sql, str):
        raise ApiError(400, f'"sql"{where} must be a string of SQL, got {_json_type(sql)}')
    check_text(sql, f'"sql"{where}')

    raw_params = item.get("params")
    params: Parameters
    if raw_params is None:
        params = ()
    elif isinstance(raw_params, list):
        params = tuple(
            decode_parameter(value, f"parameter {index}{where}")
            for index, value in enumerate(raw_params, start=1)
        )
    elif isinstance(raw_params, dict):
        params = {
            str(name).lstrip(":@$"): decode_parameter(value, f"parameter {name!r}{where}")
            for name, value in raw_params.items()
        }
    else:
        raise ApiError(
            400,
            f'"params"{where} must be a list (for ? placeholders) or an object '
            f"(for :name placeholders), got {_json_type(raw_params)}",
        )
    return Statement(sql, params, position)


def is_decimal(text: str) -> bool:
    """Tell whether ``text`` is a non-negative integer in ASCII digits.

    ``str.isdigit()`` alone also accepts digits such as "²" that ``int()`` rejects.
    """
    return text.isascii() and text.isdigit()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


# -- parameters ----------------------------------------------------------------


def decode_parameter(value: Any, where: str) -> Any:
    """Convert one JSON parameter to the Python value sqlite3 binds, or raise :class:`ApiError`.

    ``where`` names the parameter in the error message.
    """
    if isinstance(value, str):
        return check_text(value, where)
    if value is None or isinstance(value, float):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return _check_integer(value, where)
    if isinstance(value, dict) and len(value) == 1:
        tag, payload = next(iter(value.items()))
        if tag == "$blob":
            return _decode_blob(payload, where)
        if tag == "$int":
            return _decode_integer(payload, where)
        if tag == "$real":
            return _decode_real(payload, where)
    raise ApiError(
        400,
        f"{where} is {_json_type(value)} that cannot be bound: use null, a number, a "
        'string, {"$blob": "<base64>"}, {"$int": "<digits>"} or {"$real": "Infinity"}',
    )


def check_text(text: str, where: str) -> str:
    """Return ``text``, or raise :class:`ApiError` if it cannot be stored as UTF-8.

    JSON can carry lone UTF-16 surrogates (``"\\ud800"``), which neither
    SQLite nor any other UTF-8 store accepts.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ApiError(
            400,
            f"{where} contains a lone UTF-16 surrogate at character {error.start}: "
            "send valid Unicode text",
        ) from error
    return text


def _check_integer(value: int, where: str) -> int:
    if not SQLITE_MIN_INTEGER <= value <= SQLITE_MAX_INTEGER:
        raise ApiError(
            400,
            f"{where} is {value}, outside SQLite's 64-bit INTEGER range "
            f"[{SQLITE_MIN_INTEGER}, {SQLITE_MAX_INTEGER}]: send it as a string if it is text",
        )
    return value


def _decode_blob(payload: Any, where: str) -> bytes:
    if not isinstance(payload, str):
        raise ApiError(400, f'{where}: "$blob" must be a base64 string, got {_json_type(payload)}')
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ApiError(
            400, f'{where}: "$blob" is not valid base64 ({error}): encode the bytes with base64'
        ) from error


def _decode_integer(payload: Any, where: str) -> int:
    if not isinstance(payload, str) or not _INTEGER_TEXT.fullmatch(payload):
        raise ApiError(
            400,
            f'{where}: "$int" must be a string of decimal digits with an optional "-", '
            f"got {payload!r}",
        )
    return _check_integer(int(payload), where)


def _decode_real(payload: Any, where: str) -> float:
    if isinstance(payload, str) and payload in _REAL_TAGS:
        return _REAL_TAGS[payload]
    raise ApiError(
        400,
        f'{where}: "$real" must be "Infinity" or "-Infinity", got {payload!r}; '
        "send finite REAL values as plain JSON numbers",
    )


# -- results -------------------------------------------------------------------


def encode_value(value: Any) -> Any:
    """Convert one SQLite value to its JSON form (see the table in this module's docstring)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if -JS_MAX_SAFE_INTEGER <= value <= JS_MAX_SAFE_INTEGER:
            return value
        return {"$int": str(value)}
    if isinstance(value, float):
        if math.isinf(value):
            return {"$real": "Infinity" if value > 0 else "-Infinity"}
        return value
    if isinstance(value, bytes):
        return {"$blob": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot encode a value of type {type(value).__name__} as JSON: {value!r}")


def encode_row(row: Sequence[Any]) -> list[Any]:
    """Convert a row of SQLite values to a JSON list."""
    return [encode_value(value) for value in row]


def value_size(value: Any) -> int:
    """Estimate the bytes a value takes in a JSON response, for the result size limit."""
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, bytes):
        return len(value) * 4 // 3 + 12
    return 8


def dumps(document: Any) -> bytes:
    """Serialise a response document, already in the JSON form above, as compact UTF-8 JSON."""
    return orjson.dumps(document)


def rows_json(rows: Sequence[Sequence[Any]]) -> bytes:
    """Return the JSON array of a batch of rows of SQLite values, in the encoding above."""
    try:
        text = orjson.dumps(rows, default=_tag_blob, option=orjson.OPT_STRICT_INTEGER)
    except orjson.JSONEncodeError:
        return orjson.dumps([encode_row(row) for row in rows])
    if b"null" in text and _has_infinity(rows):
        return orjson.dumps([encode_row(row) for row in rows])
    return text


def join_json_arrays(arrays: Sequence[bytes]) -> bytes:
    """Join the texts of non-empty JSON arrays, such as those of :func:`rows_json`, into one array."""
    if len(arrays) == 1:
        return arrays[0]
    return b"[" + b",".join(array[1:-1] for array in arrays) + b"]"


def row_lines(
    rows: Sequence[Sequence[Any]],
    columns: Sequence[str] | None,
    *,
    start: bytes,
    separator: bytes,
    end: bytes,
) -> bytes:
    """Return ``start``, the JSON text of each row joined by ``separator``, and ``end``.

    Each row is an object keyed by ``columns``, or a list when ``columns`` is
    ``None``. An object keeps the last of several values under one column
    name, as a ``dict`` does.
    """
    documents: Sequence[Any] = rows if columns is None else [dict(zip(columns, row)) for row in rows]
    dumps_, tag_blob, strict = orjson.dumps, _tag_blob, orjson.OPT_STRICT_INTEGER
    try:
        # OPT_STRICT_INTEGER raises for integers beyond 2**53 - 1, and
        # _tag_blob encodes BLOBs. orjson writes infinite floats as null,
        # which the check below finds. Either sends the batch through encode_value.
        lines = [dumps_(document, default=tag_blob, option=strict) for document in documents]
    except orjson.JSONEncodeError:
        lines = _tagged_row_lines(rows, columns)
    else:
        text = b"".join((start, separator.join(lines), end))
        if b"null" not in text or not _has_infinity(rows):
            return text
        lines = _tagged_row_lines(rows, columns)
    return b"".join((start, separator.join(lines), end))


def _tagged_row_lines(rows: Sequence[Sequence[Any]], columns: Sequence[str] | None) -> list[bytes]:
    encoded = [encode_row(row) for row in rows]
    if columns is None:
        return [orjson.dumps(values) for values in encoded]
    return [orjson.dumps(dict(zip(columns, values))) for values in encoded]


def _tag_blob(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$blob": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot encode a value of type {type(value).__name__} as JSON: {value!r}")


def _has_infinity(rows: Sequence[Sequence[Any]]) -> bool:
    return any(type(value) is float and math.isinf(value) for row in rows for value in row)
