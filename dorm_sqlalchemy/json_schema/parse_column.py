"""Validate one property of a table schema and turn it into a :class:`ColumnSpec`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import sqlalchemy

from .errors import JsonSchemaError, child_pointer
from .parse_checks import parse_checks
from .parse_default import parse_default
from .parse_indexes import parse_column_index
from .parse_values import json_type_name, parse_identifier
from .spec import (
    ANNOTATION_KEYWORDS,
    CHECK_KEYWORDS,
    COLUMN_TYPES,
    REFERENTIAL_ACTIONS,
    ColumnSpec,
    IndexSpec,
    Reference,
    column_phrase,
)

__all__ = ["PROPERTY_KEYWORDS", "ParsedProperty", "parse_property"]

PROPERTY_KEYWORDS = (
    frozenset(
        [
            "type",
            "format",
            "anyOf",
            *CHECK_KEYWORDS,
            "x-dorm-primary-key",
            "x-dorm-auto-increment",
            "x-dorm-unique",
            "x-dorm-index",
            "x-dorm-default",
            "x-dorm-references",
        ]
    )
    | ANNOTATION_KEYWORDS
)

_JSON_CONTENT_HINT = (
    "SQLite does not check values inside a JSON column: validate them in the "
    "application and remove the keyword, or make the nested fields columns of their own"
)

_PROPERTY_KEYWORD_HINTS = {
    "default": (
        "JSON Schema's default is only an annotation and creates no SQL default: "
        "write x-dorm-default instead, or remove it"
    ),
    "pattern": (
        "SQLite has no regular expression function unless the application registers one: "
        "validate the pattern in the application and remove the keyword"
    ),
    "const": "write enum with one value instead",
    "oneOf": (
        'write a nullable column as "anyOf" with {"type": "null"}, or as "type": ["string", "null"]'
    ),
    "allOf": "merge the subschemas into one property",
    "not": "express the rule with enum, minimum, maximum, minLength or maxLength",
    "$ref": "inline the referenced schema, because a table schema is self-contained",
    "nullable": 'nullable comes from OpenAPI: write "type": ["<type>", "null"] instead',
    "required": "list required columns in the table's required array",
    "properties": _JSON_CONTENT_HINT,
    "additionalProperties": _JSON_CONTENT_HINT,
    "items": _JSON_CONTENT_HINT,
    "prefixItems": _JSON_CONTENT_HINT,
    "minItems": _JSON_CONTENT_HINT,
    "maxItems": _JSON_CONTENT_HINT,
    "uniqueItems": _JSON_CONTENT_HINT,
    "minProperties": _JSON_CONTENT_HINT,
    "maxProperties": _JSON_CONTENT_HINT,
}

_FORMATS = {"string": ("date", "date-time", "time"), "number": ("decimal",)}


# SQLAlchemy 2.1 accepts (table, column) tokens for a foreign key target, which
# work for names containing dots; 2.0 only parses "table.column" strings.
_HAS_FOREIGN_KEY_TARGET = hasattr(sqlalchemy, "ForeignKeyTarget")


@dataclasses.dataclass
class ParsedProperty:
    """A parsed property: its column plus the flags that the table level resolves."""

    column: ColumnSpec
    pointer: str
    pointers: dict[str, str]
    declared_nullable: bool
    primary_key: bool
    auto_increment: bool
    unique: bool
    index: IndexSpec | None

    def keyword_pointer(self, keyword: str) -> str:
        """Return the JSON Pointer of ``keyword`` in this property (inside anyOf if it is there)."""
        return self.pointers.get(keyword, child_pointer(self.pointer, keyword))


def parse_property(
    table: str, name: str, raw: object, pointer: str, required: bool
) -> ParsedProperty:
    """Validate the property ``name`` of ``table`` and return it parsed.

    ``required`` is true when the table lists the property in ``required``.
    """
    if not isinstance(raw, Mapping):
        raise JsonSchemaError(
            pointer,
            f"expected a JSON object describing the column, got {json_type_name(raw)}",
            'Write {"type": "string"} or another column schema',
        )
    keywords, pointers, nullable_by_any_of = _collect_keywords(raw, pointer)
    _reject_unknown_keywords(keywords, pointers)

    column_type, nullable_by_type = _parse_type(keywords, pointers, pointer)
    declared_nullable = nullable_by_type or nullable_by_any_of
    if required and declared_nullable:
        raise JsonSchemaError(
            pointers["type"],
            f"{name!r} is listed in required, so it is NOT NULL, but its type allows null",
            "Remove null from the type, or remove the property from required",
        )

    column = ColumnSpec(
        name=name,
        type=column_type,
        format=_parse_format(keywords, pointers, column_type),
        nullable=not required,
        description=_parse_description(keywords, pointers),
    )
    column.checks = parse_checks(column, keywords, pointers)
    column.reference = _parse_reference(column, keywords, pointers)
    if "x-dorm-default" in keywords:
        column.default = parse_default(
            column, keywords["x-dorm-default"], pointers["x-dorm-default"]
        )

    return ParsedProperty(
        column=column,
        pointer=pointer,
        pointers=pointers,
        declared_nullable=declared_nullable,
        primary_key=_parse_flag(keywords, pointers, "x-dorm-primary-key"),
        auto_increment=_parse_flag(keywords, pointers, "x-dorm-auto-increment"),
        unique=_parse_flag(keywords, pointers, "x-dorm-unique"),
        index=parse_column_index(table, name, keywords, pointers),
    )


def _collect_keywords(
    raw: Mapping[str, Any], pointer: str
) -> tuple[dict[str, Any], dict[str, str], bool]:
    """Return the keywords of a property and their pointers, merging a nullable ``anyOf``."""
    values: dict[str, Any] = {}
    pointers: dict[str, str] = {}

    def add(mapping: Mapping[str, Any], base: str) -> None:
        for key, value in mapping.items():
            if key in values:
                raise JsonSchemaError(
                    child_pointer(base, key),
                    f"{key!r} appears both inside and outside anyOf",
                    "Keep only one of them",
                )
            values[key] = value
            pointers[key] = child_pointer(base, str(key))

    if "anyOf" not in raw:
        add(raw, pointer)
        return values, pointers, False

    any_of_pointer = child_pointer(pointer, "anyOf")
    branches = raw["anyOf"]
    fix = (
        'Write "anyOf": [{"type": "string"}, {"type": "null"}], or "type": ["string", "null"]. '
        "No other combination maps to one column"
    )
    if not isinstance(branches, list) or len(branches) != 2:
        raise JsonSchemaError(
            any_of_pointer, 'anyOf must list one schema and {"type": "null"}', fix
        )
    null_positions = [i for i, branch in enumerate(branches) if _is_null_schema(branch)]
    if len(null_positions) != 1:
        raise JsonSchemaError(
            any_of_pointer, 'anyOf must contain exactly one {"type": "null"}', fix
        )
    value_position = 1 - null_positions[0]
    branch = branches[value_position]
    branch_pointer = child_pointer(any_of_pointer, value_position)
    if not isinstance(branch, Mapping) or "anyOf" in branch:
        raise JsonSchemaError(branch_pointer, "expected a column schema without anyOf", fix)

    add({key: value for key, value in raw.items() if key != "anyOf"}, pointer)
    add(branch, branch_pointer)
    return values, pointers, True


def _is_null_schema(branch: object) -> bool:
    if not isinstance(branch, Mapping) or branch.get("type") != "null":
        return False
    return set(branch) - ANNOTATION_KEYWORDS == {"type"}


def _reject_unknown_keywords(keywords: dict[str, Any], pointers: dict[str, str]) -> None:
    for key in keywords:
        if key in PROPERTY_KEYWORDS:
            continue
        hint = _PROPERTY_KEYWORD_HINTS.get(key)
        if hint is None and isinstance(key, str) and key.startswith("x-dorm-"):
            hint = "the DORM extensions on a property are " + ", ".join(
                sorted(k for k in PROPERTY_KEYWORDS if k.startswith("x-dorm-"))
            )
        if hint is None:
            hint = "remove it. The supported property keywords are " + ", ".join(
                sorted(PROPERTY_KEYWORDS)
            )
        raise JsonSchemaError(
            pointers[key],
            f"the keyword {key!r} is not supported on a column",
            hint[:1].upper() + hint[1:],
        )


def _parse_type(
    keywords: dict[str, Any], pointers: dict[str, str], pointer: str
) -> tuple[str, bool]:
    """Return the column's JSON type and whether the type list includes ``"null"``."""
    allowed = ", ".join(f'"{name}"' for name in COLUMN_TYPES)
    if "type" not in keywords:
        raise JsonSchemaError(
            pointer, "the property has no type", f'Add "type" with one of {allowed}'
        )

    raw = keywords["type"]
    type_pointer = pointers["type"]
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not names:
        raise JsonSchemaError(
            type_pointer,
            f"expected a type name or a list of type names, got {json_type_name(raw)}",
            f'Write one of {allowed}, optionally in a list with "null"',
        )
    for position, name in enumerate(names):
        if name not in COLUMN_TYPES and name != "null":
            where = type_pointer if isinstance(raw, str) else child_pointer(type_pointer, position)
            raise JsonSchemaError(
                where, f"unknown type {name!r}", f'Use one of {allowed} or "null"'
            )
    if len(set(names)) != len(names):
        raise JsonSchemaError(
            type_pointer, "the type list names a type twice", "Remove the duplicate"
        )

    column_types = [name for name in names if name != "null"]
    if not column_types:
        raise JsonSchemaError(
            type_pointer, "a column cannot hold only null", f"Add one of {allowed} to the type"
        )
    if len(column_types) > 1:
        raise JsonSchemaError(
            type_pointer,
            f"a column has one type, got {', '.join(column_types)}",
            'Keep one type (with "null" if the column is nullable), '
            "or split the values into several columns",
        )
    return column_types[0], "null" in names


def _parse_format(
    keywords: dict[str, Any], pointers: dict[str, str], column_type: str
) -> str | None:
    if "format" not in keywords:
        return None
    value = keywords["format"]
    allowed = _FORMATS.get(column_type, ())
    if isinstance(value, str) and value in allowed:
        return value
    if allowed:
        fix = f"Use one of {', '.join(repr(f) for f in allowed)} on {column_phrase(column_type)}"
    else:
        fix = f"Remove it, because {column_phrase(column_type)} takes no format"
    if column_type == "string" and isinstance(value, str):
        fix += ", or move the format to the description and validate it in the application"
    raise JsonSchemaError(
        pointers["format"],
        f"the format {value!r} is not supported on {column_phrase(column_type)}",
        fix,
    )


def _parse_description(keywords: dict[str, Any], pointers: dict[str, str]) -> str | None:
    value = keywords.get("description")
    if value is None:
        return None
    if not isinstance(value, str):
        raise JsonSchemaError(
            pointers["description"],
            f"expected a string, got {json_type_name(value)}",
            "Write the description as a JSON string",
        )
    return value


def _parse_flag(keywords: dict[str, Any], pointers: dict[str, str], keyword: str) -> bool:
    value = keywords.get(keyword, False)
    if not isinstance(value, bool):
        raise JsonSchemaError(
            pointers[keyword],
            f"expected true or false, got {json_type_name(value)}",
            f'Write "{keyword}": true',
        )
    return value


def _parse_reference(
    column: ColumnSpec, keywords: dict[str, Any], pointers: dict[str, str]
) -> Reference | None:
    if "x-dorm-references" not in keywords:
        return None
    value = keywords["x-dorm-references"]
    pointer = pointers["x-dorm-references"]
    if not isinstance(value, Mapping):
        raise JsonSchemaError(
            pointer,
            f"expected an object, got {json_type_name(value)}",
            'Write {"table": "users", "column": "id", "onDelete": "CASCADE"}',
        )
    for key in value:
        if key not in ("table", "column", "onDelete", "onUpdate"):
            raise JsonSchemaError(
                child_pointer(pointer, str(key)),
                f"the reference keyword {key!r} is not supported",
                'Use only "table", "column", "onDelete" and "onUpdate"',
            )
    if column.kind in ("object", "array"):
        raise JsonSchemaError(
            pointer,
            f"{column_phrase(column.kind)} cannot be a foreign key",
            "Reference from a scalar column",
        )

    names = {}
    for key in ("table", "column"):
        if key not in value:
            raise JsonSchemaError(
                pointer, f'the reference has no "{key}"', f'Add "{key}": "<referenced {key}>"'
            )
        key_pointer = child_pointer(pointer, key)
        names[key] = parse_identifier(value[key], key_pointer, f"the referenced {key} name")
        if not _HAS_FOREIGN_KEY_TARGET and "." in names[key]:
            raise JsonSchemaError(
                key_pointer,
                "SQLAlchemy before 2.1 cannot reference a name that contains a dot",
                "Rename the referenced table or column, or upgrade SQLAlchemy to 2.1",
            )

    actions = {key: _parse_action(value, key, pointer) for key in ("onDelete", "onUpdate")}
    return Reference(
        names["table"], names["column"], actions["onDelete"], actions["onUpdate"], pointer=pointer
    )


def _parse_action(reference: Mapping[str, Any], key: str, pointer: str) -> str | None:
    if key not in reference:
        return None
    value = reference[key]
    action = value.upper() if isinstance(value, str) else None
    if action not in REFERENTIAL_ACTIONS:
        raise JsonSchemaError(
            child_pointer(pointer, key),
            f"{value!r} is not a referential action",
            "Use one of " + ", ".join(REFERENTIAL_ACTIONS),
        )
    return action
