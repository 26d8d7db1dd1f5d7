"""Validate ``x-dorm-default``: a literal value or an allowed SQL expression."""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Mapping
from typing import Any

from .errors import JsonSchemaError, child_pointer
from .exact_decimal import canonical_decimal
from .parse_checks import require_column_value
from .parse_values import is_number, json_type_name
from .spec import SQL_DEFAULT_EXPRESSIONS, ColumnSpec, LiteralDefault, SqlDefault, column_phrase

__all__ = ["parse_default"]


def parse_default(column: ColumnSpec, raw: Any, pointer: str) -> LiteralDefault | SqlDefault:
    """Return the column's default, checked against its kind and its own CHECK constraints."""
    # An object column takes object literals, so only {"sql": ...} itself is read as SQL there.
    if isinstance(raw, Mapping) and (column.kind != "object" or set(raw) == {"sql"}):
        return _parse_sql_default(column, raw, pointer)

    if raw is None:
        if not column.nullable:
            raise JsonSchemaError(
                pointer,
                f"{column.name!r} is NOT NULL, so its default cannot be null",
                "Remove x-dorm-default or pick a value",
            )
        return LiteralDefault(None)

    value = _parse_literal_default(column, raw, pointer)
    violated = _violated_check(column, value)
    if violated is not None:
        raise JsonSchemaError(
            pointer,
            f"the default {raw!r} breaks the column's own {violated} constraint",
            f"Choose a default that satisfies {violated}",
        )
    return LiteralDefault(value)


def _parse_sql_default(column: ColumnSpec, raw: Mapping[str, Any], pointer: str) -> SqlDefault:
    allowed = SQL_DEFAULT_EXPRESSIONS.get(column.kind, ())
    if set(raw) != {"sql"} or not isinstance(raw["sql"], str):
        raise JsonSchemaError(
            pointer,
            f"the default of {column_phrase(column.kind)} must be a literal value "
            'or {"sql": "..."}',
            'Write a literal such as 0 or "text", or {"sql": "CURRENT_TIMESTAMP"} on a '
            "date-time column",
        )
    expression = raw["sql"].strip().upper()
    if expression in allowed:
        return SqlDefault(expression)
    if allowed:
        fix = f"Use {' or '.join(allowed)} on this column, or a literal default"
    else:
        fix = (
            f"Write a literal default because {column_phrase(column.kind)} takes no SQL expression"
        )
        if column.kind == "object":
            fix += '. An object of the form {"sql": "..."} always means a SQL expression'
    raise JsonSchemaError(
        child_pointer(pointer, "sql"),
        f"the SQL default {raw['sql']!r} is not allowed on {column_phrase(column.kind)}",
        fix,
    )


def _parse_literal_default(column: ColumnSpec, raw: Any, pointer: str) -> Any:
    """Return the Python value of a literal default, checked against the column kind."""
    kind = column.kind
    if kind == "decimal":
        return _parse_decimal_default(column, raw, pointer)
    if kind in ("date", "date-time", "time"):
        return _parse_temporal_default(kind, raw, pointer)
    if kind in ("object", "array"):
        require_column_value(column, raw, pointer, "default")
        try:
            json.dumps(raw, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise JsonSchemaError(
                pointer, f"the default is not JSON: {error}", "Use JSON values only"
            ) from error
        return raw
    require_column_value(column, raw, pointer, "default")
    return raw


def _parse_decimal_default(column: ColumnSpec, raw: Any, pointer: str) -> decimal.Decimal:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise JsonSchemaError(
            pointer,
            f"expected a decimal number, got {json_type_name(raw)}",
            'Write it as a string such as "0.00"',
        )
    try:
        value = decimal.Decimal(repr(raw) if isinstance(raw, float) else str(raw).strip())
    except decimal.InvalidOperation:
        raise JsonSchemaError(
            pointer, f"{raw!r} is not a decimal number", 'Write it as a string such as "0.00"'
        ) from None
    try:
        return canonical_decimal(value, column.scale)
    except ValueError as error:
        raise JsonSchemaError(
            pointer, f"the default does not fit this decimal column: {error}", "Correct the default"
        ) from None


def _parse_temporal_default(kind: str, raw: Any, pointer: str) -> Any:
    examples = {"date": "2024-01-31", "date-time": "2024-01-31T12:00:00", "time": "12:00:00"}
    sql = SQL_DEFAULT_EXPRESSIONS[kind][0]
    fix = (
        f'Write an ISO 8601 {kind} such as "{examples[kind]}", '
        f'or {{"sql": "{sql}"}} for the current {kind}'
    )
    if not isinstance(raw, str):
        raise JsonSchemaError(pointer, f"expected a {kind} string, got {json_type_name(raw)}", fix)

    value: datetime.date | datetime.datetime | datetime.time
    try:
        if kind == "date":
            value = datetime.date.fromisoformat(raw)
        elif kind == "date-time":
            value = datetime.datetime.fromisoformat(raw)
        else:
            value = datetime.time.fromisoformat(raw)
    except ValueError:
        raise JsonSchemaError(pointer, f"{raw!r} is not an ISO 8601 {kind}", fix) from None

    if getattr(value, "tzinfo", None) is not None:
        raise JsonSchemaError(
            pointer,
            f"{raw!r} has a UTC offset, which SQLAlchemy's SQLite {kind} storage drops",
            "Convert the value to UTC and write it without an offset",
        )
    return value


def _violated_check(column: ColumnSpec, value: Any) -> str | None:
    """Return the keyword whose CHECK constraint a literal default would fail, if any."""
    for check in column.checks:
        bound = check.value
        if isinstance(value, decimal.Decimal) and is_number(bound):
            bound = decimal.Decimal(repr(bound))
        failed = (
            (check.keyword == "enum" and value not in bound)
            or (check.keyword == "minimum" and value < bound)
            or (check.keyword == "exclusiveMinimum" and value <= bound)
            or (check.keyword == "maximum" and value > bound)
            or (check.keyword == "exclusiveMaximum" and value >= bound)
            or (check.keyword == "multipleOf" and column.kind == "integer" and value % bound != 0)
            or (check.keyword == "minLength" and len(value) < bound)
            or (check.keyword == "maxLength" and len(value) > bound)
        )
        if failed:
            return check.keyword
    return None
