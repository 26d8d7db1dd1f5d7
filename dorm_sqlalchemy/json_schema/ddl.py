"""Render SQLite DDL for JSON Schema tables, from a schema or from a JSON file.

The DDL is always compiled from the ``Table`` with SQLAlchemy's SQLite dialect,
so ``json_schema_to_sql`` and ``json_schema_to_table`` cannot disagree, and every
identifier and literal goes through SQLAlchemy's quoting.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Column, MetaData, Table
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.types import TypeEngine

from .build import add_tables, json_schema_to_table
from .errors import JsonSchemaError, child_pointer
from .identifiers import sql_name

__all__ = ["json_schema_to_sql", "render_schema_file"]

_SQLITE = sqlite.dialect()


def json_schema_to_sql(schema: Mapping[str, Any], *, if_not_exists: bool = False) -> list[str]:
    """Return the SQLite DDL for ``schema``: CREATE TABLE, then one CREATE INDEX per index.

    Statements carry no trailing semicolon. ``if_not_exists`` adds IF NOT EXISTS
    to each statement, as DORM's converter does.
    """
    metadata = MetaData()
    table = json_schema_to_table(schema, metadata)
    _add_reference_stubs(metadata, [table])
    return _table_ddl(table, if_not_exists=if_not_exists)


def render_schema_file(path: str | os.PathLike[str], *, if_not_exists: bool = False) -> str:
    """Read a JSON file of one table schema or a list of them and return their DDL.

    Statements are separated by ``";\\n"`` and the text ends with ``";\\n"``, so it
    can be run with ``sqlite3 db < file.sql``. Raises :class:`JsonSchemaError`
    when the file cannot be read, is not JSON, or contains an invalid schema.
    """
    document = _read_json_file(path)
    if isinstance(document, list):
        if not document:
            raise JsonSchemaError(
                "", "the file contains an empty list", "Add at least one table schema"
            )
        located = [
            (schema, child_pointer("", position)) for position, schema in enumerate(document)
        ]
    else:
        located = [(document, "")]

    metadata = MetaData()
    tables = add_tables(located, metadata)
    _add_reference_stubs(metadata, tables)
    statements = [
        statement
        for table in tables
        for statement in _table_ddl(table, if_not_exists=if_not_exists)
    ]
    return ";\n".join(statements) + ";\n"


def _add_reference_stubs(metadata: MetaData, tables: list[Table]) -> None:
    """Add placeholder tables for referenced tables outside ``metadata``.

    SQLAlchemy resolves a foreign key's target column when it compiles the
    REFERENCES clause. The placeholders only serve that compilation.
    """
    missing: dict[str, dict[str, TypeEngine[Any]]] = {}
    for table in tables:
        for constraint in table.foreign_key_constraints:
            for element in constraint.elements:
                referenced_table, referenced_column = _target_names(element)
                if referenced_table not in metadata.tables:
                    missing.setdefault(referenced_table, {})[referenced_column] = (
                        element.parent.type
                    )
    for name, columns in missing.items():
        Table(
            sql_name(name),
            metadata,
            *(Column(sql_name(column), column_type) for column, column_type in columns.items()),
        )


def _target_names(element: sqlalchemy.ForeignKey) -> tuple[str, str]:
    tokens = getattr(element, "target_tokens", None)
    if tokens is not None:
        return tokens.table_name, tokens.column_name
    table, _, column = element.target_fullname.rpartition(".")
    return table, column


def _table_ddl(table: Table, *, if_not_exists: bool) -> list[str]:
    statements = [
        str(CreateTable(table, if_not_exists=if_not_exists).compile(dialect=_SQLITE)).strip()
    ]
    for index in sorted(table.indexes, key=lambda index: str(index.name)):
        statements.append(
            str(CreateIndex(index, if_not_exists=if_not_exists).compile(dialect=_SQLITE)).strip()
        )
    return statements


def _read_json_file(path: str | os.PathLike[str]) -> Any:
    shown = os.fspath(path)
    try:
        content = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise JsonSchemaError(
            "",
            f"cannot read the schema file {shown!r}: {error}",
            "Check the path, its permissions and that it is UTF-8",
        ) from error
    try:
        return json.loads(content, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as error:
        raise JsonSchemaError(
            "",
            f"{shown!r} is not valid JSON: {error.msg} at line {error.lineno}, "
            f"column {error.colno}",
            "Fix the JSON syntax",
        ) from error
    except _DuplicateKey as error:
        raise JsonSchemaError(
            "",
            f"{shown!r} has the key {error.key!r} twice in one object",
            "Remove one of the two entries",
        ) from None


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result
