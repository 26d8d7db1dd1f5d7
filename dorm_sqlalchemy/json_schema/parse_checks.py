"""Turn the validation keywords of a column into CHECK constraint specs."""

from __future__ import annotations

import decimal
from typing import Any

from .errors import JsonSchemaError, child_pointer
from .parse_values import INT64_MAX, INT64_MIN, is_integer, is_number, json_type_name
from .spec import CHECK_KEYWORDS, Check, ColumnSpec, column_phrase

__all__ = ["parse_checks", "require_column_value"]

_BOUND_KEYWORDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")


_KEYWORDS_BY_KIND = {
    "integer": frozenset(["enum", *_BOUND_KEYWORDS, "multipleOf"]),
    "number": frozenset(["enum", *_BOUND_KEYWORDS]),
    "decimal": frozenset([*_BOUND_KEYWORDS, "multipleOf"]),
    "string": frozenset(["enum", "minLength", "maxLength"]),
}


def parse_checks(
    column: ColumnSpec, keywords: dict[str, Any], pointers: dict[str, str]
) -> list[Check]:
    """Return the column's CHECK constraints: the ones its type implies, then its keywords'."""
    checks: list[Check] = []
    if column.kind == "integer":
        checks.append(Check("type", "integer"))
    elif column.kind == "number":
        checks.append(Check("type", "real"))
    elif column.kind == "boolean":
        checks.append(Check("boolean", None))
    elif column.kind in ("object", "array"):
        checks.append(Check("json", column.kind))
    elif column.kind == "decimal":
        checks.append(Check("decimal", None))

    applicable = _KEYWORDS_BY_KIND.get(column.kind, frozenset())
    for keyword in CHECK_KEYWORDS:
        if keyword not in keywords:
            continue
        pointer = pointers[keyword]
        if keyword == "multipleOf" and column.kind == "number":
            raise JsonSchemaError(
                pointer,
                "multipleOf cannot be enforced on a REAL column because binary floats "
                "hold most decimal fractions inexactly",
                'For exact amounts such as money write "format": "decimal" with '
                '"multipleOf": 0.01, and otherwise remove multipleOf',
            )
        if keyword not in applicable:
            raise JsonSchemaError(
                pointer,
                f"{keyword} does not apply to {column_phrase(column.kind)}",
                "Remove it, or change the column type",
            )
        checks.append(
            Check(keyword, _parse_check_value(column, keyword, keywords[keyword], pointer))
        )

    _reject_empty_ranges(checks, pointers)
    return checks


def _parse_check_value(column: ColumnSpec, keyword: str, value: Any, pointer: str) -> Any:
    if keyword == "enum":
        return _parse_enum(column, value, pointer)
    if keyword in ("minLength", "maxLength"):
        if not is_integer(value) or value < 0:
            raise JsonSchemaError(
                pointer,
                f"expected a non-negative integer, got {value!r}",
                "Write a whole number such as 1",
            )
        return value
    if keyword == "multipleOf":
        return _parse_multiple_of(column, value, pointer)
    if not is_number(value):
        raise JsonSchemaError(
            pointer,
            f"expected a finite number, got {_describe(value)}",
            "Write a number such as 0",
        )
    return value


def _parse_enum(column: ColumnSpec, value: Any, pointer: str) -> tuple[Any, ...]:
    if not isinstance(value, list) or not value:
        problem = (
            "enum is empty" if value == [] else f"expected a list, got {json_type_name(value)}"
        )
        raise JsonSchemaError(pointer, problem, 'Write "enum": ["a", "b"]')
    seen: list[Any] = []
    for position, item in enumerate(value):
        item_pointer = child_pointer(pointer, position)
        if item is None:
            raise JsonSchemaError(
                item_pointer,
                "null in enum is not needed because nullability comes from type and required",
                "Remove null from enum. The CHECK constraint lets NULL through when the "
                "column is nullable",
            )
        require_column_value(column, item, item_pointer, "enum value")
        if item in seen:
            raise JsonSchemaError(item_pointer, f"{item!r} is listed twice", "Remove the duplicate")
        seen.append(item)
    return tuple(value)


def _parse_multiple_of(column: ColumnSpec, value: Any, pointer: str) -> Any:
    if column.kind == "integer":
        if not is_integer(value) or value <= 0:
            raise JsonSchemaError(
                pointer,
                f"expected a positive integer, got {value!r}",
                "Write a whole number such as 5",
            )
        return value

    # A decimal column: multipleOf fixes the digits after the decimal point.
    if is_number(value) and value > 0:
        digits = decimal.Decimal(repr(value)).normalize().as_tuple()
        if digits.digits == (1,) and int(digits.exponent) <= 0:
            return value
    raise JsonSchemaError(
        pointer,
        "multipleOf on a decimal column must be 1, 0.1, 0.01 or another power of ten "
        f"up to 1, got {value!r}",
        "Write for example 0.01 for amounts with two decimal places",
    )


def _reject_empty_ranges(checks: list[Check], pointers: dict[str, str]) -> None:
    values = {check.keyword: check.value for check in checks}
    for low in ("minimum", "exclusiveMinimum"):
        for high in ("maximum", "exclusiveMaximum"):
            if low not in values or high not in values:
                continue
            inclusive = low == "minimum" and high == "maximum"
            if values[low] > values[high] or (not inclusive and values[low] == values[high]):
                raise JsonSchemaError(
                    pointers[low],
                    f"{low} {values[low]!r} and {high} {values[high]!r} leave no valid value",
                    "Correct one of the two bounds",
                )
    if (
        "minLength" in values
        and "maxLength" in values
        and values["minLength"] > values["maxLength"]
    ):
        raise JsonSchemaError(
            pointers["minLength"],
            f"minLength {values['minLength']} is greater than maxLength {values['maxLength']}",
            "Correct one of the two lengths",
        )


def require_column_value(column: ColumnSpec, value: Any, pointer: str, label: str) -> None:
    """Raise unless ``value`` fits a column of this kind (for enum values and defaults)."""
    kind = column.kind
    if kind == "integer":
        fits = is_integer(value) and INT64_MIN <= value <= INT64_MAX
        expected = "an integer between -2**63 and 2**63-1"
    elif kind == "number":
        fits = is_number(value)
        expected = "a finite number"
    elif kind == "boolean":
        fits = isinstance(value, bool)
        expected = "true or false"
    elif kind == "object":
        fits = isinstance(value, dict)
        expected = "a JSON object"
    elif kind == "array":
        fits = isinstance(value, list)
        expected = "a JSON array"
    else:
        fits = isinstance(value, str) and "\x00" not in value
        expected = "a string without NUL characters"
    if not fits:
        raise JsonSchemaError(
            pointer,
            f"the {label} {value!r} does not fit {column_phrase(kind)}",
            f"Write {expected}",
        )


def _describe(value: Any) -> str:
    return repr(value) if isinstance(value, float) else json_type_name(value)
