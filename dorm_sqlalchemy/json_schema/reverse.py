"""Describe a SQLAlchemy ``Table`` as a JSON Schema table, the reverse of ``json_schema_to_table``.

The schema describes what the database enforces: column types, NOT NULL, keys,
unique constraints, indexes, server defaults and the CHECK constraints that this
package creates. Python-side ``default``/``onupdate`` values are not part of the
DDL and are left out. Constraint names are not kept (they are regenerated from
table and column names), except index names.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Time,
    UniqueConstraint,
)
from sqlalchemy.schema import DefaultClause
from sqlalchemy.sql.elements import BindParameter, Null, TextClause
from sqlalchemy.types import TypeDecorator, TypeEngine

from .build import INFO_KEY, json_schema_to_table
from .errors import JsonSchemaError, child_pointer
from .exact_decimal import ExactDecimal
from .spec import CHECK_KEYWORDS, SQL_DEFAULT_EXPRESSIONS, column_phrase, index_name

__all__ = ["normalize_json_schema", "table_to_json_schema"]

_SQL_EXPRESSIONS = frozenset(
    e for expressions in SQL_DEFAULT_EXPRESSIONS.values() for e in expressions
)

# A SQL string literal such as 'it''s', the form text() defaults often take.
_QUOTED_TEXT = re.compile(r"'((?:[^']|'')*)'")


def normalize_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``schema`` and return its canonical form.

    The canonical form is what :func:`table_to_json_schema` returns for the table.
    Nullable columns are written ``"type": ["<type>", "null"]``. NOT NULL columns,
    primary key columns included, are listed in ``required``. Single-column keys,
    unique constraints and indexes sit on their property. Referential actions are
    upper case, and annotations other than ``description`` are dropped.
    """
    return table_to_json_schema(json_schema_to_table(schema, MetaData()))


def table_to_json_schema(table: Table) -> dict[str, Any]:
    """Return a JSON Schema table document that describes ``table``.

    Raises :class:`JsonSchemaError` for what a schema cannot express. That covers
    column types without a JSON Schema counterpart (``Numeric``, ``LargeBinary``
    ...), CHECK constraints that this package did not create, and multi-column
    foreign keys. It also covers expression or partial indexes, and server
    defaults other than literals and the allowed ``{"sql": ...}`` expressions.
    """
    checks = _checks_by_column(table)
    primary_key = [column.name for column in table.primary_key.columns]
    auto_increment = bool(table.dialect_options["sqlite"]["autoincrement"])
    unique_columns, unique_groups = _unique_constraints(table)
    references = _references(table)
    column_indexes, table_indexes = _indexes(table)

    properties: dict[str, Any] = {}
    required: list[str] = []
    for column in table.columns:
        pointer = child_pointer("", "properties", column.name)
        prop = _column_schema(column, checks.get(column.name, {}), pointer)
        if primary_key == [column.name]:
            prop["x-dorm-primary-key"] = True
            if auto_increment:
                prop["x-dorm-auto-increment"] = True
        if column.name in unique_columns:
            prop["x-dorm-unique"] = True
        if column.name in column_indexes:
            prop["x-dorm-index"] = column_indexes[column.name]
        if column.server_default is not None:
            prop["x-dorm-default"] = _default_value(
                column, prop, child_pointer(pointer, "x-dorm-default")
            )
        if column.name in references:
            prop["x-dorm-references"] = references[column.name]
        properties[column.name] = prop
        if not column.nullable:
            required.append(column.name)

    schema: dict[str, Any] = {"$id": table.name, "type": "object"}
    if table.comment is not None:
        schema["description"] = table.comment
    schema["properties"] = properties
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    if len(primary_key) > 1:
        schema["x-dorm-primary-key"] = primary_key
    if unique_groups:
        schema["x-dorm-unique"] = unique_groups
    if table_indexes:
        schema["x-dorm-index"] = table_indexes
    return schema


def _sorted_constraints(table: Table) -> list[Any]:
    # Table.constraints is a set; SQLAlchemy's own CREATE TABLE orders it by
    # creation order, and so does this, to keep a round trip's DDL identical.
    return sorted(
        table.constraints, key=lambda constraint: getattr(constraint, "_creation_order", 0)
    )


def _checks_by_column(table: Table) -> dict[str, dict[str, Any]]:
    checks: dict[str, dict[str, Any]] = {}
    for constraint in _sorted_constraints(table):
        if not isinstance(constraint, CheckConstraint) or getattr(constraint, "_type_bound", False):
            continue
        info = constraint.info.get(INFO_KEY)
        if info is None:
            raise JsonSchemaError(
                "",
                f"table {table.name!r} has the CHECK constraint "
                f"{constraint.name or str(constraint.sqltext)!r}, which no JSON Schema "
                "keyword describes",
                "Remove it from the table, or express the rule with enum, minimum, maximum, "
                "minLength or maxLength",
            )
        checks.setdefault(info["column"], {})[info["keyword"]] = info["value"]
    return checks


def _unique_constraints(table: Table) -> tuple[set[str], list[list[str]]]:
    single: set[str] = set()
    groups: list[list[str]] = []
    for constraint in _sorted_constraints(table):
        if not isinstance(constraint, UniqueConstraint):
            continue
        names = [column.name for column in constraint.columns]
        if len(names) == 1 and names[0] not in single:
            single.add(names[0])
        else:
            groups.append(names)
    return single, groups


def _references(table: Table) -> dict[str, dict[str, str]]:
    references: dict[str, dict[str, str]] = {}
    for constraint in _sorted_constraints(table):
        if not isinstance(constraint, ForeignKeyConstraint):
            continue
        if len(constraint.elements) != 1:
            raise JsonSchemaError(
                "",
                f"the foreign key {constraint.name or ''} of table {table.name!r} spans "
                f"{len(constraint.elements)} columns",
                "JSON Schema tables support single-column foreign keys only. Reference a unique "
                "single column instead",
            )
        element = constraint.elements[0]
        tokens = getattr(element, "target_tokens", None)
        if tokens is not None:
            referenced_table, referenced_column = tokens.table_name, tokens.column_name
        else:
            referenced_table, _, referenced_column = element.target_fullname.rpartition(".")
        reference = {"table": referenced_table, "column": referenced_column}
        if constraint.ondelete:
            reference["onDelete"] = constraint.ondelete.upper()
        if constraint.onupdate:
            reference["onUpdate"] = constraint.onupdate.upper()
        references[element.parent.name] = reference
    return references


def _indexes(table: Table) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Split the indexes into per-property values and the table-level list."""
    described = []
    for index in sorted(table.indexes, key=lambda index: str(index.name)):
        pointer = child_pointer("", "x-dorm-index")
        if index.name is None:
            raise JsonSchemaError(
                pointer, f"an index of table {table.name!r} has no name", "Name the index"
            )
        if index.dialect_options["sqlite"]["where"] is not None:
            raise JsonSchemaError(
                pointer,
                f"the index {index.name!r} is partial (it has a WHERE clause)",
                "JSON Schema tables support plain indexes only, so drop the WHERE clause",
            )
        names: list[str] = []
        for expression in index.expressions:
            if not isinstance(expression, Column) or expression.table is not table:
                raise JsonSchemaError(
                    pointer,
                    f"the index {index.name!r} indexes an expression, not a column",
                    "JSON Schema tables support indexes on plain columns only",
                )
            names.append(expression.name)
        described.append((str(index.name), tuple(names), bool(index.unique)))

    single_counts: dict[str, int] = {}
    for _, columns, _ in described:
        if len(columns) == 1:
            single_counts[columns[0]] = single_counts.get(columns[0], 0) + 1

    per_column: dict[str, Any] = {}
    table_level: list[dict[str, Any]] = []
    for name, columns, unique in described:
        is_default_name = name == index_name(table.name, columns)
        if len(columns) == 1 and single_counts[columns[0]] == 1:
            per_column[columns[0]] = _column_index_value(name, is_default_name, unique)
            continue
        entry: dict[str, Any] = {"columns": list(columns)}
        if not is_default_name:
            entry["name"] = name
        if unique:
            entry["unique"] = True
        table_level.append(entry)
    return per_column, table_level


def _column_index_value(name: str, is_default_name: bool, unique: bool) -> Any:
    if not unique:
        return True if is_default_name else name
    return {"unique": True} if is_default_name else {"name": name, "unique": True}


def _column_schema(column: Column[Any], checks: dict[str, Any], pointer: str) -> dict[str, Any]:
    json_type, json_format = _json_type(column, checks, pointer)
    prop: dict[str, Any] = {"type": [json_type, "null"] if column.nullable else json_type}
    if json_format is not None:
        prop["format"] = json_format
    if column.comment is not None:
        prop["description"] = column.comment

    column_type = column.type
    if (
        isinstance(column_type, ExactDecimal)
        and column_type.scale is not None
        and "multipleOf" not in checks
    ):
        checks = {
            **checks,
            "multipleOf": 1 if column_type.scale == 0 else float(f"1e-{column_type.scale}"),
        }
    if isinstance(column_type, Enum) and "enum" not in checks:
        checks = {**checks, "enum": list(column_type.enums)}

    for keyword in CHECK_KEYWORDS:
        if keyword in checks:
            value = checks[keyword]
            prop[keyword] = list(value) if keyword == "enum" else value
    return prop


def _json_type(column: Column[Any], checks: dict[str, Any], pointer: str) -> tuple[str, str | None]:
    """Return the JSON type and format that describe the column's SQL type."""
    column_type: TypeEngine[Any] = column.type
    if isinstance(column_type, ExactDecimal):
        return "number", "decimal"
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance

    if isinstance(column_type, Boolean):
        return "boolean", None
    if isinstance(column_type, Integer):
        return "integer", None
    if isinstance(column_type, Float):
        return "number", None
    if isinstance(column_type, DateTime):
        return "string", "date-time"
    if isinstance(column_type, Date):
        return "string", "date"
    if isinstance(column_type, Time):
        return "string", "time"
    if isinstance(column_type, JSON):
        if "json" not in checks:
            raise JsonSchemaError(
                child_pointer(pointer, "type"),
                f"column {column.name!r} is JSON, but the table does not state whether it "
                "stores objects or arrays",
                'Build the table from a JSON Schema with "type": "object" or "array"',
            )
        return checks["json"], None
    if isinstance(column_type, String):
        return "string", None

    fix = "Use Integer, Float, Boolean, String, Date, DateTime, Time or JSON"
    if isinstance(column_type, Numeric):
        fix = (
            "Numeric loses digits on SQLite. Use dorm_sqlalchemy.json_schema.ExactDecimal for "
            "exact decimals or Float for approximate numbers"
        )
    raise JsonSchemaError(
        child_pointer(pointer, "type"),
        f"column {column.name!r} has the type {column.type!r}, which no JSON Schema type describes",
        fix,
    )


def _default_value(column: Column[Any], prop: dict[str, Any], pointer: str) -> Any:
    """Return the ``x-dorm-default`` value for the column's server default."""
    server_default = column.server_default
    if not isinstance(server_default, DefaultClause):
        raise JsonSchemaError(
            pointer,
            f"column {column.name!r} has a server-generated value ({server_default!r})",
            "JSON Schema tables describe literal defaults and CURRENT_TIMESTAMP, CURRENT_DATE "
            "or CURRENT_TIME only",
        )

    argument = server_default.arg
    kind = prop.get("format") or (
        prop["type"][0] if isinstance(prop["type"], list) else prop["type"]
    )
    if isinstance(argument, Null):
        return None
    if isinstance(argument, BindParameter):
        return _json_value(argument.value, kind)
    if isinstance(argument, TextClause):
        expression = argument.text.strip()
        if expression.upper() in _SQL_EXPRESSIONS:
            return {"sql": expression.upper()}
        return _parse_sql_text(expression, kind, column, pointer)
    if isinstance(argument, str):
        return _parse_default_text(argument, kind, column, pointer)
    raise JsonSchemaError(
        pointer,
        f"column {column.name!r} has the default expression {str(argument)!r}",
        "Use a literal default, or CURRENT_TIMESTAMP, CURRENT_DATE or CURRENT_TIME",
    )


def _json_value(value: Any, kind: str) -> Any:
    if kind in ("object", "array") and isinstance(value, str):
        return json.loads(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return value


def _parse_sql_text(expression: str, kind: str, column: Column[Any], pointer: str) -> Any:
    """Return the value of a ``text()`` default that is a plain SQL literal."""
    quoted = _QUOTED_TEXT.fullmatch(expression)
    if quoted is not None:
        return _parse_default_text(quoted.group(1).replace("''", "'"), kind, column, pointer)
    if expression.upper() == "NULL":
        return None
    if kind in ("integer", "number", "boolean", "decimal"):
        return _parse_default_text(expression, kind, column, pointer)
    raise JsonSchemaError(
        pointer,
        f"column {column.name!r} has the default expression {expression!r}",
        "Use a literal default, or CURRENT_TIMESTAMP, CURRENT_DATE or CURRENT_TIME",
    )


def _parse_default_text(value: str, kind: str, column: Column[Any], pointer: str) -> Any:
    """Return a default given as text (``server_default="0"``) as a value of the column's kind."""
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            number = float(value)
            return int(number) if re.fullmatch(r"[+-]?\d+", value.strip()) else number
        if kind == "boolean":
            flags = {"0": False, "1": True, "false": False, "true": True}
            return flags[value.strip().lower()]
        if kind == "decimal":
            return format(decimal.Decimal(value), "f")
        if kind in ("object", "array"):
            return json.loads(value)
    except (ValueError, KeyError, decimal.InvalidOperation):
        raise JsonSchemaError(
            pointer,
            f"the default {value!r} of column {column.name!r} is invalid for {column_phrase(kind)}",
            "Correct the default in the table definition",
        ) from None
    return value
