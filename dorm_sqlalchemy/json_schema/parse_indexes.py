"""Validate ``x-dorm-index`` on properties and on the table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import JsonSchemaError, child_pointer
from .parse_values import (
    json_type_name,
    parse_identifier,
    parse_name_list,
    reject_folded_duplicates,
    require_properties,
)
from .spec import IndexSpec, TableSpec, index_name

__all__ = ["parse_column_index", "resolve_indexes"]

_INDEX_KEYWORDS = frozenset(["name", "columns", "unique"])


def resolve_indexes(
    spec: TableSpec, column_indexes: list[IndexSpec], schema: Mapping[str, Any], pointer: str
) -> None:
    """Set ``spec.indexes``: the property-level indexes, then the table-level list."""
    located = [(index, index.pointer) for index in column_indexes]

    if "x-dorm-index" in schema:
        indexes_pointer = child_pointer(pointer, "x-dorm-index")
        entries = schema["x-dorm-index"]
        if not isinstance(entries, list) or not entries:
            raise JsonSchemaError(
                indexes_pointer,
                f"expected a non-empty list of index objects, got {json_type_name(entries)}",
                'Write "x-dorm-index": [{"columns": ["a", "b"], "unique": false}], or use '
                '"x-dorm-index": true on a single property',
            )
        for position, entry in enumerate(entries):
            entry_pointer = child_pointer(indexes_pointer, position)
            located.append((_parse_table_index(spec, entry, entry_pointer), entry_pointer))

    reject_folded_duplicates(
        [(index.name, where) for index, where in located],
        "index",
        "SQLite index names are unique per database, compared without regard to ASCII case",
    )
    spec.indexes = [index for index, _ in located]


def _parse_table_index(spec: TableSpec, entry: object, pointer: str) -> IndexSpec:
    if not isinstance(entry, Mapping):
        raise JsonSchemaError(
            pointer,
            f"expected an index object, got {json_type_name(entry)}",
            'Write {"columns": ["a", "b"]}, optionally with "name" and "unique"',
        )
    for key in entry:
        if key not in _INDEX_KEYWORDS:
            raise JsonSchemaError(
                child_pointer(pointer, str(key)),
                f"the index keyword {key!r} is not supported",
                'Use only "columns", "name" and "unique"',
            )
    if "columns" not in entry:
        raise JsonSchemaError(
            pointer, "the index has no columns", 'Add "columns": ["<column>", ...]'
        )

    columns_pointer = child_pointer(pointer, "columns")
    columns = tuple(parse_name_list(entry["columns"], columns_pointer, "column names"))
    require_properties(spec, columns, columns_pointer)

    name = index_name(spec.name, columns)
    if "name" in entry:
        name = parse_identifier(
            entry["name"], child_pointer(pointer, "name"), "the index name", reserved_prefix=True
        )
    unique = entry.get("unique", False)
    if not isinstance(unique, bool):
        raise JsonSchemaError(
            child_pointer(pointer, "unique"),
            f"expected true or false, got {json_type_name(unique)}",
            'Write "unique": true or "unique": false',
        )
    return IndexSpec(name=name, columns=columns, unique=unique, pointer=pointer)


def parse_column_index(
    table: str, name: str, keywords: dict[str, Any], pointers: dict[str, str]
) -> IndexSpec | None:
    """Return the index that a property's ``x-dorm-index`` declares, if any."""
    value = keywords.get("x-dorm-index", False)
    pointer = pointers.get("x-dorm-index", "")
    default_name = index_name(table, (name,))

    if value is False:
        return None
    if value is True:
        return IndexSpec(name=default_name, columns=(name,), pointer=pointer)
    if isinstance(value, str):
        return IndexSpec(
            name=parse_identifier(value, pointer, "the index name", reserved_prefix=True),
            columns=(name,),
            pointer=pointer,
        )
    if not isinstance(value, Mapping):
        raise JsonSchemaError(
            pointer,
            f"expected true, an index name or an index object, got {json_type_name(value)}",
            'Write true, "<index name>" or {"name": "<index name>", "unique": true}',
        )

    # The object form: {"name": ..., "unique": ...}, both optional.
    for key in value:
        if key not in ("name", "unique"):
            raise JsonSchemaError(
                child_pointer(pointer, str(key)),
                f"the index keyword {key!r} is not supported here",
                'Use only "name" and "unique", and list multi-column indexes in the '
                "table's x-dorm-index",
            )
    unique = value.get("unique", False)
    if not isinstance(unique, bool):
        raise JsonSchemaError(
            child_pointer(pointer, "unique"),
            f"expected true or false, got {json_type_name(unique)}",
            'Write "unique": true',
        )

    chosen = default_name
    if "name" in value:
        chosen = parse_identifier(
            value["name"], child_pointer(pointer, "name"), "the index name", reserved_prefix=True
        )
    return IndexSpec(name=chosen, columns=(name,), unique=unique, pointer=pointer)
