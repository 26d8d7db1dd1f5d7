"""Build SQLAlchemy tables from validated JSON Schema table specs.

Every schema of a batch is parsed and checked against the others and against
the target ``MetaData`` before the first ``Table`` is created, so an invalid
schema leaves the ``MetaData`` unchanged. Names of constraints and indexes are
wrapped in ``conv()`` so that a naming convention on the ``MetaData`` keeps them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy
from sqlalchemy import (
    JSON,
    REAL,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    Time,
    UniqueConstraint,
    literal,
    null,
    text,
)
from sqlalchemy.schema import DefaultClause, conv
from sqlalchemy.types import TypeEngine

from .check_sql import check_expression
from .errors import JsonSchemaError, child_pointer
from .exact_decimal import ExactDecimal
from .identifiers import SQLITE_KEYWORDS, fold_identifier, sql_name
from .parse import parse_table
from .spec import (
    ColumnSpec,
    LiteralDefault,
    Reference,
    SqlDefault,
    TableSpec,
    check_name,
    foreign_key_name,
    unique_name,
)

__all__ = ["INFO_KEY", "add_tables", "json_schema_to_table", "json_schemas_to_metadata"]

logger = logging.getLogger(__name__)

INFO_KEY = "dorm_json_schema"
"""Key in ``CheckConstraint.info`` that records the keyword a check was built from."""


def json_schema_to_table(schema: Mapping[str, Any], metadata: MetaData) -> Table:
    """Validate ``schema`` and add the table it describes to ``metadata``.

    Raises :class:`JsonSchemaError`, and leaves ``metadata`` unchanged, when the
    schema is invalid or ``metadata`` already has a table or index of that name.
    It also raises when a reference names a column of a table in ``metadata``
    that is neither that table's primary key nor unique.
    """
    [table] = add_tables([(schema, "")], metadata)
    return table


def json_schemas_to_metadata(
    schemas: Iterable[Mapping[str, Any]], metadata: MetaData | None = None
) -> MetaData:
    """Validate every schema, then add all their tables to ``metadata`` and return it.

    Error pointers start with the schema's position (``/1/properties/...``). Tables
    may reference each other in any order. A new ``MetaData`` is made when none is given.
    """
    if isinstance(schemas, Mapping):
        raise JsonSchemaError(
            "",
            "expected a list of table schemas, got one schema",
            "Wrap the schema in a list, or call json_schema_to_table",
        )
    if metadata is None:
        metadata = MetaData()
    located = [(schema, child_pointer("", position)) for position, schema in enumerate(schemas)]
    add_tables(located, metadata)
    return metadata


def add_tables(located: list[tuple[Any, str]], metadata: MetaData) -> list[Table]:
    """Validate all schemas against each other and ``metadata``, then build them."""
    specs = [(parse_table(schema, pointer), pointer) for schema, pointer in located]
    _check_names_are_free(specs, metadata)
    _check_references(specs, metadata)

    tables = []
    for spec, _ in specs:
        tables.append(_build_table(spec, metadata))
        logger.debug(
            "built table %r from JSON Schema with %d columns", spec.name, len(spec.columns)
        )
    return tables


def _check_names_are_free(specs: list[tuple[TableSpec, str]], metadata: MetaData) -> None:
    # SQLite keeps tables and indexes in one namespace and compares names without ASCII case.
    owners: dict[str, str] = {}
    for table in metadata.tables.values():
        owners[fold_identifier(table.name)] = f"table {table.name!r} already in the MetaData"
        for index in table.indexes:
            if index.name:
                owners[fold_identifier(index.name)] = (
                    f"index {index.name!r} already in the MetaData"
                )

    for spec, pointer in specs:
        named = [(spec.name, child_pointer(pointer, "$id"), f"table {spec.name!r}")]
        named += [(index.name, index.pointer, f"index {index.name!r}") for index in spec.indexes]
        for name, where, label in named:
            folded = fold_identifier(name)
            if folded in owners:
                raise JsonSchemaError(
                    where,
                    f"the name of {label} is already used by {owners[folded]}",
                    "Rename it, because SQLite table and index names share one namespace "
                    "and ignore ASCII case",
                )
            owners[folded] = f"{label} at {where or 'the schema root'}"


def _check_references(specs: list[tuple[TableSpec, str]], metadata: MetaData) -> None:
    """Check each foreign key whose referenced table is known, as SQLite will at run time."""
    targets: dict[str, tuple[set[str], set[str]]] = {}
    for table in metadata.tables.values():
        targets[table.name] = (
            {column.name for column in table.columns},
            _keyable_columns_of_table(table),
        )
    for spec, _ in specs:
        targets[spec.name] = (
            {column.name for column in spec.columns},
            _keyable_columns_of_spec(spec),
        )

    for spec, _ in specs:
        for column in spec.columns:
            reference = column.reference
            if reference is None or reference.table not in targets:
                continue
            columns, keyable = targets[reference.table]
            where = child_pointer(reference.pointer, "column")
            if reference.column not in columns:
                raise JsonSchemaError(
                    where,
                    f"table {reference.table!r} has no column {reference.column!r}",
                    "Name one of: " + ", ".join(repr(name) for name in sorted(columns)),
                )
            if reference.column not in keyable:
                raise JsonSchemaError(
                    where,
                    f"{reference.table}.{reference.column} is neither the primary key nor unique, "
                    "so SQLite would report a foreign key mismatch on every write",
                    "Reference the primary key, or mark the referenced column x-dorm-unique",
                )


def _keyable_columns_of_spec(spec: TableSpec) -> set[str]:
    keyable = {column.name for column in spec.columns if column.unique}
    keyable.update(
        index.columns[0] for index in spec.indexes if index.unique and len(index.columns) == 1
    )
    if len(spec.primary_key) == 1:
        keyable.add(spec.primary_key[0])
    return keyable


def _keyable_columns_of_table(table: Table) -> set[str]:
    keyable: set[str] = set()
    if len(table.primary_key.columns) == 1:
        keyable.update(column.name for column in table.primary_key.columns)
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint) and len(constraint.columns) == 1:
            keyable.update(column.name for column in constraint.columns)
    for index in table.indexes:
        if index.unique and len(index.expressions) == 1:
            keyable.update(getattr(expression, "name", "") for expression in index.expressions)
    return keyable


def _build_table(spec: TableSpec, metadata: MetaData) -> Table:
    columns = {column.name: _build_column(column) for column in spec.columns}

    constraints: list[Any] = []
    if spec.primary_key:
        constraints.append(PrimaryKeyConstraint(*spec.primary_key))
    for column_spec in spec.columns:
        column = columns[column_spec.name]
        for check in column_spec.checks:
            constraints.append(
                CheckConstraint(
                    check_expression(column, column_spec, check),
                    name=_constraint_name(check_name(spec.name, column_spec.name, check.keyword)),
                    info={
                        INFO_KEY: {
                            "column": column_spec.name,
                            "keyword": check.keyword,
                            "value": check.value,
                        }
                    },
                )
            )
        if column_spec.unique:
            constraints.append(
                UniqueConstraint(
                    column, name=_constraint_name(unique_name(spec.name, (column_spec.name,)))
                )
            )
        if column_spec.reference is not None:
            constraints.append(_foreign_key(spec.name, column_spec.name, column_spec.reference))
    for group in spec.uniques:
        constraints.append(
            UniqueConstraint(*group, name=_constraint_name(unique_name(spec.name, group)))
        )

    options: dict[str, Any] = {"sqlite_autoincrement": True} if spec.auto_increment else {}
    items: list[Any] = [*columns.values(), *constraints]
    table = Table(sql_name(spec.name), metadata, *items, comment=spec.description, **options)
    for index in spec.indexes:
        Index(
            _constraint_name(index.name),
            *(table.c[name] for name in index.columns),
            unique=index.unique,
        )
    return table


def _constraint_name(name: str) -> conv:
    # conv() keeps the name as is under a MetaData naming convention.
    return conv(name, True if fold_identifier(name) in SQLITE_KEYWORDS else None)


def _build_column(spec: ColumnSpec) -> Column[Any]:
    column_type = _column_type(spec)
    return Column(
        sql_name(spec.name),
        column_type,
        nullable=spec.nullable,
        server_default=_server_default(spec, column_type),
        comment=spec.description,
    )


def _column_type(spec: ColumnSpec) -> TypeEngine[Any]:
    kind = spec.kind
    if kind == "decimal":
        return ExactDecimal(spec.scale)
    if kind in ("object", "array"):
        # none_as_null: Python None is SQL NULL, not the JSON text 'null'.
        return JSON(none_as_null=True)
    types: dict[str, TypeEngine[Any]] = {
        "integer": Integer(),
        "number": REAL(),
        "boolean": Boolean(),
        "string": Text(),
        "date": Date(),
        "date-time": DateTime(),
        "time": Time(),
    }
    return types[kind]


def _server_default(spec: ColumnSpec, column_type: TypeEngine[Any]) -> DefaultClause | None:
    default = spec.default
    if default is None:
        return None
    if isinstance(default, SqlDefault):
        # Only names from SQL_DEFAULT_EXPRESSIONS reach this point.
        return DefaultClause(text(default.expression))
    if default.value is None:
        return DefaultClause(null())
    if spec.kind in ("object", "array"):
        return DefaultClause(literal(json.dumps(default.value), Text()))
    return DefaultClause(literal(default.value, _literal_type(default, column_type)))


def _literal_type(default: LiteralDefault, column_type: TypeEngine[Any]) -> TypeEngine[Any]:
    # An int default of a REAL column is rendered as written, so the type follows the value.
    if isinstance(default.value, bool):
        return Boolean()
    if isinstance(default.value, int):
        return Integer()
    if isinstance(default.value, float):
        return REAL()
    return column_type


def _foreign_key(table: str, column: str, reference: Reference) -> ForeignKeyConstraint:
    target: Any
    if hasattr(sqlalchemy, "ForeignKeyTarget"):
        target = sqlalchemy.ForeignKeyTarget(
            None, sql_name(reference.table), sql_name(reference.column)
        )
    else:
        # SQLAlchemy 2.0: the parser rejected names with dots, so the dotted form is unambiguous.
        target = f"{reference.table}.{reference.column}"
    return ForeignKeyConstraint(
        [column],
        [target],
        name=_constraint_name(foreign_key_name(table, column, reference.table)),
        ondelete=reference.on_delete,
        onupdate=reference.on_update,
    )
