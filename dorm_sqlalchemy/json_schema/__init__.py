"""JSON Schema tables: SQLite tables described by JSON Schema documents.

A table schema is a JSON object with ``"$id"`` (the table name), ``"type":
"object"`` and one property per column. It accepts DORM's ``x-dorm-*``
extensions and turns the standard validation keywords (``enum``,
``minimum``/``maximum``, ``minLength``/``maxLength`` ...) into named CHECK
constraints. See ``docs/json-schema.md`` for the full mapping.

* :func:`json_schema_to_table` adds the table to a ``MetaData``, so it works
  with ``create_all``, the ORM and Alembic autogenerate.
* :func:`json_schema_to_sql` returns the SQLite DDL of one schema.
* :func:`render_schema_file` returns the DDL of a JSON file of schemas.
* :func:`table_to_json_schema` goes back from a ``Table`` to a schema, and
  :func:`normalize_json_schema` gives the canonical form of a schema.

Invalid input raises :class:`JsonSchemaError`, whose ``pointer`` is the JSON
Pointer of the offending keyword. Nothing is added to a ``MetaData`` unless
every schema is valid.
"""

from __future__ import annotations

from .build import json_schema_to_table, json_schemas_to_metadata
from .ddl import json_schema_to_sql, render_schema_file
from .errors import JsonSchemaError
from .exact_decimal import ExactDecimal
from .reverse import normalize_json_schema, table_to_json_schema

__all__ = [
    "ExactDecimal",
    "JsonSchemaError",
    "json_schema_to_sql",
    "json_schema_to_table",
    "json_schemas_to_metadata",
    "normalize_json_schema",
    "render_schema_file",
    "table_to_json_schema",
]
