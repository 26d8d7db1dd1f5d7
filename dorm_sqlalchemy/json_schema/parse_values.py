"""Checks for the JSON values inside a schema: names, lists of names, numbers."""

from __future__ import annotations

import math
from typing import Any

from .errors import JsonSchemaError, child_pointer
from .identifiers import fold_identifier
from .spec import TableSpec

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "is_integer",
    "is_number",
    "json_type_name",
    "parse_identifier",
    "parse_name_list",
    "reject_folded_duplicates",
    "require_properties",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def json_type_name(value: object) -> str:
    """Return the JSON Schema type name of a parsed JSON value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a Python {type(value).__name__}, which is not a JSON value"


def is_number(value: object) -> bool:
    """Return whether ``value`` is a finite JSON number (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)


def is_integer(value: object) -> bool:
    """Return whether ``value`` is a JSON integer (booleans are not integers)."""
    return isinstance(value, int) and not isinstance(value, bool)


def parse_identifier(value: Any, pointer: str, label: str, *, reserved_prefix: bool = False) -> str:
    """Return ``value`` if it can name a SQLite table, column or index, else raise.

    Any non-empty string without a NUL character works, because SQLAlchemy
    quotes every identifier that needs it. ``reserved_prefix`` also rejects the
    ``sqlite_`` prefix, which SQLite keeps for its own tables and indexes.
    """
    if not isinstance(value, str):
        raise JsonSchemaError(
            pointer,
            f"{label} must be a string, got {json_type_name(value)}",
            "Write it as a JSON string",
        )
    if not value:
        raise JsonSchemaError(pointer, f"{label} is empty", "Give it a non-empty name")
    if "\x00" in value:
        raise JsonSchemaError(
            pointer, f"{label} contains a NUL character", "Remove the NUL character from the name"
        )
    if reserved_prefix and fold_identifier(value).startswith("sqlite_"):
        raise JsonSchemaError(
            pointer,
            f"{label} {value!r} starts with 'sqlite_', which SQLite reserves for internal objects",
            "Choose a name that does not start with 'sqlite_'",
        )
    return value


def parse_name_list(
    value: Any, pointer: str, label: str, *, allow_empty: bool = False
) -> list[str]:
    """Return ``value`` if it is a list of distinct non-empty strings, else raise."""
    if not isinstance(value, list):
        raise JsonSchemaError(
            pointer,
            f"expected a list of {label}, got {json_type_name(value)}",
            'Write a JSON array of strings, for example ["id"]',
        )
    if not value and not allow_empty:
        raise JsonSchemaError(pointer, f"the list of {label} is empty", "Name at least one")
    seen: set[str] = set()
    for position, name in enumerate(value):
        item_pointer = child_pointer(pointer, position)
        if not isinstance(name, str) or not name:
            raise JsonSchemaError(
                item_pointer,
                f"expected a non-empty string, got {json_type_name(name)}",
                "Write the name as a JSON string",
            )
        if name in seen:
            raise JsonSchemaError(item_pointer, f"{name!r} is listed twice", "Remove the duplicate")
        seen.add(name)
    return list(value)


def require_properties(spec: TableSpec, names: list[str] | tuple[str, ...], pointer: str) -> None:
    """Raise unless every name in ``names`` is a column of ``spec``."""
    known = {column.name for column in spec.columns}
    for position, name in enumerate(names):
        if name not in known:
            raise JsonSchemaError(
                child_pointer(pointer, position),
                f"{name!r} is not a property of table {spec.name!r}",
                "Name one of: " + ", ".join(repr(n) for n in sorted(known)),
            )


def reject_folded_duplicates(named: list[tuple[str, str]], label: str, reason: str) -> None:
    """Raise at the second of two (name, pointer) pairs whose names SQLite treats as equal."""
    seen: dict[str, str] = {}
    for name, pointer in named:
        folded = fold_identifier(name)
        if folded in seen:
            raise JsonSchemaError(
                pointer,
                f"the {label} name {name!r} clashes with {seen[folded]!r}",
                f"Rename one of them, because {reason}",
            )
        seen[folded] = name
