"""Validate a JSON Schema table document and turn it into a :class:`TableSpec`.

Every keyword is either used, on the explicit list of ignored annotations, or
rejected with a :class:`JsonSchemaError` that carries its JSON Pointer. This
module checks the table-level rules: keys, unique constraints and names.
:mod:`.parse_column` checks the keywords of one property, and
:mod:`.parse_indexes` the indexes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import JsonSchemaError, child_pointer
from .parse_column import ParsedProperty, parse_property
from .parse_indexes import resolve_indexes
from .parse_values import (
    json_type_name,
    parse_identifier,
    parse_name_list,
    reject_folded_duplicates,
    require_properties,
)
from .spec import (
    ANNOTATION_KEYWORDS,
    LiteralDefault,
    TableSpec,
    check_name,
    foreign_key_name,
    unique_name,
)

__all__ = ["parse_table"]

TABLE_KEYWORDS = (
    frozenset(
        [
            "$id",
            "$schema",
            "type",
            "properties",
            "required",
            "additionalProperties",
            "x-dorm-primary-key",
            "x-dorm-unique",
            "x-dorm-index",
        ]
    )
    | ANNOTATION_KEYWORDS
)

_TABLE_KEYWORD_HINTS = {
    "definitions": "a table schema is self-contained: inline the definitions",
    "$defs": "a table schema is self-contained: inline the definitions",
    "x-dorm-auto-increment": "put x-dorm-auto-increment on the integer primary key property",
    "x-dorm-default": "put x-dorm-default on the property it applies to",
    "x-dorm-references": "put x-dorm-references on the property that holds the foreign key",
}


def parse_table(schema: object, pointer: str = "") -> TableSpec:
    """Validate one table schema and return its canonical :class:`TableSpec`.

    ``pointer`` prefixes every error pointer, for schemas inside a larger document.
    """
    if not isinstance(schema, Mapping):
        raise JsonSchemaError(
            pointer,
            f"expected a JSON object describing a table, got {json_type_name(schema)}",
            'Write {"$id": "<table name>", "type": "object", "properties": {...}}',
        )
    _reject_unknown_table_keywords(schema, pointer)

    name = _parse_table_name(schema, pointer)
    description = _parse_description(schema, pointer)
    _parse_object_type(schema, pointer)
    _parse_additional_properties(schema, pointer)
    raw_properties = _parse_properties_object(schema, pointer)
    required = _parse_required(schema, raw_properties, pointer)

    # Columns, in the order the schema lists them.
    properties: list[ParsedProperty] = []
    for column_name, raw in raw_properties.items():
        property_pointer = child_pointer(pointer, "properties", column_name)
        parse_identifier(column_name, property_pointer, "the column name")
        properties.append(
            parse_property(name, column_name, raw, property_pointer, column_name in required)
        )
    reject_folded_duplicates(
        [(p.column.name, p.pointer) for p in properties],
        "column",
        "SQLite compares column names without regard to ASCII case",
    )

    spec = TableSpec(name=name, columns=[p.column for p in properties], description=description)
    _resolve_primary_key(spec, properties, schema, pointer)
    _resolve_unique_constraints(spec, properties, schema, pointer)
    resolve_indexes(spec, [p.index for p in properties if p.index is not None], schema, pointer)
    _check_referential_actions(spec, properties)
    _check_constraint_names(spec, pointer)
    return spec


def _reject_unknown_table_keywords(schema: Mapping[Any, Any], pointer: str) -> None:
    for key in schema:
        if key in TABLE_KEYWORDS:
            continue
        key_pointer = child_pointer(pointer, str(key))
        hint = _TABLE_KEYWORD_HINTS.get(key)
        if hint is None:
            hint = "remove it. The table keywords are " + ", ".join(sorted(TABLE_KEYWORDS))
        raise JsonSchemaError(
            key_pointer, f"the keyword {key!r} is not supported on a table", _sentence(hint)
        )


def _parse_table_name(schema: Mapping[str, Any], pointer: str) -> str:
    if "$id" not in schema:
        raise JsonSchemaError(
            pointer, "the table name is missing", 'Add "$id": "<table name>" to the schema'
        )
    id_pointer = child_pointer(pointer, "$id")
    return parse_identifier(schema["$id"], id_pointer, "the table name", reserved_prefix=True)


def _parse_description(schema: Mapping[str, Any], pointer: str) -> str | None:
    description = schema.get("description")
    if description is not None and not isinstance(description, str):
        raise JsonSchemaError(
            child_pointer(pointer, "description"),
            f"expected a string, got {json_type_name(description)}",
            "Write the description as a JSON string",
        )
    return description


def _parse_object_type(schema: Mapping[str, Any], pointer: str) -> None:
    if "type" not in schema:
        raise JsonSchemaError(
            child_pointer(pointer, "type"),
            'the table schema has no "type"',
            'Add "type": "object" and list the columns in "properties"',
        )
    if schema["type"] != "object":
        raise JsonSchemaError(
            child_pointer(pointer, "type"),
            f'a table schema must have "type": "object", got {schema["type"]!r}',
            'Set "type": "object" and list the columns in "properties"',
        )


def _parse_additional_properties(schema: Mapping[str, Any], pointer: str) -> None:
    if "additionalProperties" in schema and schema["additionalProperties"] is not False:
        raise JsonSchemaError(
            child_pointer(pointer, "additionalProperties"),
            "a SQL table has a fixed set of columns, so it cannot accept additional properties",
            'Set "additionalProperties": false or remove the keyword',
        )


def _parse_properties_object(schema: Mapping[str, Any], pointer: str) -> Mapping[str, Any]:
    properties_pointer = child_pointer(pointer, "properties")
    properties = schema.get("properties")
    if properties is None:
        raise JsonSchemaError(
            properties_pointer,
            "the table has no properties",
            'Add "properties" with one entry per column',
        )
    if not isinstance(properties, Mapping):
        raise JsonSchemaError(
            properties_pointer,
            f"expected a JSON object of columns, got {json_type_name(properties)}",
            'Write "properties": {"<column>": {"type": ...}, ...}',
        )
    if not properties:
        raise JsonSchemaError(
            properties_pointer,
            "the table has no columns",
            "Add at least one property, because SQLite cannot create a table without columns",
        )
    return properties


def _parse_required(
    schema: Mapping[str, Any], properties: Mapping[str, Any], pointer: str
) -> set[str]:
    if "required" not in schema:
        return set()
    names = parse_name_list(
        schema["required"], child_pointer(pointer, "required"), "property names", allow_empty=True
    )
    for position, name in enumerate(names):
        if name not in properties:
            raise JsonSchemaError(
                child_pointer(pointer, "required", position),
                f"{name!r} is listed in required but is not a property",
                "Add the property, or remove it from required",
            )
    return set(names)


def _resolve_primary_key(
    spec: TableSpec, properties: list[ParsedProperty], schema: Mapping[str, Any], pointer: str
) -> None:
    marked = [p for p in properties if p.primary_key]
    key_pointer = child_pointer(pointer, "x-dorm-primary-key")

    if "x-dorm-primary-key" in schema:
        if marked:
            raise JsonSchemaError(
                marked[0].keyword_pointer("x-dorm-primary-key"),
                "the primary key is declared both here and at table level",
                "Keep one of the two declarations",
            )
        names = parse_name_list(schema["x-dorm-primary-key"], key_pointer, "property names")
        require_properties(spec, names, key_pointer)
        spec.primary_key = tuple(names)
    elif len(marked) > 1:
        raise JsonSchemaError(
            marked[1].keyword_pointer("x-dorm-primary-key"),
            "more than one property has x-dorm-primary-key: "
            + ", ".join(p.column.name for p in marked),
            'Declare a composite key at table level, for example "x-dorm-primary-key": '
            + json.dumps([p.column.name for p in marked]),
        )
    elif marked:
        spec.primary_key = (marked[0].column.name,)

    # Primary key columns are NOT NULL even when "required" does not list them.
    by_name = {p.column.name: p for p in properties}
    for name in spec.primary_key:
        prop = by_name[name]
        if prop.declared_nullable:
            raise JsonSchemaError(
                prop.keyword_pointer("type"),
                f"the primary key column {name!r} allows null",
                'Remove "null" from its type, because a primary key column is NOT NULL',
            )
        prop.column.nullable = False
        if prop.column.default == LiteralDefault(None):
            raise JsonSchemaError(
                prop.keyword_pointer("x-dorm-default"),
                f"the primary key column {name!r} is NOT NULL, so its default cannot be null",
                "Remove x-dorm-default or pick a value",
            )

    # A single INTEGER PRIMARY KEY is the rowid, which SQLite keeps an integer by itself.
    if len(spec.primary_key) == 1 and spec.column(spec.primary_key[0]).kind == "integer":
        key_column = spec.column(spec.primary_key[0])
        key_column.checks = [check for check in key_column.checks if check.keyword != "type"]

    for prop in properties:
        if not prop.auto_increment:
            continue
        if spec.primary_key != (prop.column.name,) or prop.column.kind != "integer":
            raise JsonSchemaError(
                prop.keyword_pointer("x-dorm-auto-increment"),
                f"x-dorm-auto-increment needs {prop.column.name!r} to be the only primary key "
                "column and of type integer",
                'Make it "type": "integer" with "x-dorm-primary-key": true, or remove '
                "x-dorm-auto-increment (SQLite AUTOINCREMENT works only on INTEGER PRIMARY KEY)",
            )
        spec.auto_increment = True


def _resolve_unique_constraints(
    spec: TableSpec, properties: list[ParsedProperty], schema: Mapping[str, Any], pointer: str
) -> None:
    for prop in properties:
        prop.column.unique = prop.unique
    if "x-dorm-unique" not in schema:
        return

    unique_pointer = child_pointer(pointer, "x-dorm-unique")
    groups = schema["x-dorm-unique"]
    if not isinstance(groups, list) or not groups:
        raise JsonSchemaError(
            unique_pointer,
            f"expected a non-empty list of column lists, got {json_type_name(groups)}",
            'Write "x-dorm-unique": [["first_name", "last_name"]], or use '
            '"x-dorm-unique": true on a single property',
        )
    seen: set[tuple[str, ...]] = set()
    for position, group in enumerate(groups):
        group_pointer = child_pointer(unique_pointer, position)
        names = tuple(parse_name_list(group, group_pointer, "property names"))
        require_properties(spec, names, group_pointer)
        if names in seen or (len(names) == 1 and spec.column(names[0]).unique):
            raise JsonSchemaError(
                group_pointer,
                f"the unique constraint on {list(names)!r} is declared twice",
                "Remove the duplicate",
            )
        seen.add(names)
        if len(names) == 1:
            spec.column(names[0]).unique = True
        else:
            spec.uniques.append(names)


def _check_referential_actions(spec: TableSpec, properties: list[ParsedProperty]) -> None:
    for prop in properties:
        column = prop.column
        reference = column.reference
        if reference is None or column.nullable:
            continue
        for key, action in (("onDelete", reference.on_delete), ("onUpdate", reference.on_update)):
            action_pointer = child_pointer(prop.keyword_pointer("x-dorm-references"), key)
            if action == "SET NULL":
                raise JsonSchemaError(
                    action_pointer,
                    f"{key} SET NULL cannot work because {column.name!r} is NOT NULL",
                    "Remove the column from required (and from the primary key), or choose "
                    "CASCADE, RESTRICT or NO ACTION",
                )
            if action == "SET DEFAULT" and column.default is None:
                raise JsonSchemaError(
                    action_pointer,
                    f"{key} SET DEFAULT would write NULL because {column.name!r} has no "
                    "x-dorm-default and is NOT NULL",
                    "Add x-dorm-default to the column, or choose another action",
                )


def _check_constraint_names(spec: TableSpec, pointer: str) -> None:
    names: list[tuple[str, str]] = []
    for column in spec.columns:
        column_pointer = child_pointer(pointer, "properties", column.name)
        names.extend(
            (check_name(spec.name, column.name, c.keyword), column_pointer) for c in column.checks
        )
        if column.unique:
            names.append((unique_name(spec.name, (column.name,)), column_pointer))
        if column.reference is not None:
            fk_name = foreign_key_name(spec.name, column.name, column.reference.table)
            names.append((fk_name, column_pointer))
    names.extend(
        (unique_name(spec.name, group), child_pointer(pointer, "x-dorm-unique"))
        for group in spec.uniques
    )
    reject_folded_duplicates(
        names,
        "constraint",
        "the generated names are built from table and column names joined by '_'",
    )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]
