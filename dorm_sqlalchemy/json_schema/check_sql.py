"""SQL expressions for the CHECK constraints of a column, built with SQLAlchemy."""

from __future__ import annotations

from typing import Any

from sqlalchemy import REAL, Boolean, Column, Integer, Text, and_, cast, func, literal, not_, or_
from sqlalchemy.sql.elements import ColumnElement

from .spec import Check, ColumnSpec, decimal_places

__all__ = ["check_expression"]


def check_expression(column: Column[Any], spec: ColumnSpec, check: Check) -> ColumnElement[bool]:
    keyword, value = check.keyword, check.value

    if keyword == "type":
        # Column types are only affinities: an INTEGER column keeps the text 'abc' as text.
        same_type = func.typeof(column) == literal(value, Text())
        return or_(column.is_(None), same_type) if spec.nullable else same_type
    if keyword == "boolean":
        return column.in_([literal(0, Integer()), literal(1, Integer())])
    if keyword == "json":
        valid = and_(func.json_valid(column), func.json_type(column) == literal(value, Text()))
        # json_valid(NULL) is 0 on SQLite 3.40, so NULL needs its own branch.
        return or_(column.is_(None), valid) if spec.nullable else valid
    if keyword == "decimal":
        return _plain_decimal_text(column)
    if keyword == "enum":
        return column.in_([_value_literal(item) for item in value])
    if keyword == "minLength":
        return func.length(column) >= literal(value, Integer())
    if keyword == "maxLength":
        return func.length(column) <= literal(value, Integer())
    if keyword == "multipleOf":
        if spec.kind == "decimal":
            point = func.instr(column, literal(".", Text()))
            places = literal(decimal_places(value), Integer())
            return or_(point == literal(0, Integer()), func.length(column) - point <= places)
        return column % literal(value, Integer()) == literal(0, Integer())

    # Bounds; decimal text is compared as REAL, which is exact to about 15 digits.
    subject = cast(column, REAL()) if spec.kind == "decimal" else column
    bound = _value_literal(value)
    comparisons = {
        "minimum": subject >= bound,
        "exclusiveMinimum": subject > bound,
        "maximum": subject <= bound,
        "exclusiveMaximum": subject < bound,
    }
    return comparisons[keyword]


def _plain_decimal_text(column: Column[Any]) -> ColumnElement[bool]:
    """Return a check that ``column`` contains text of the form -?[0-9]+(.[0-9]+)?."""

    def glob(pattern: str) -> ColumnElement[bool]:
        return column.op("GLOB", is_comparison=True)(literal(pattern, Text()))

    return and_(
        not_(glob("*[^0-9.-]*")),
        or_(glob("[0-9]*"), glob("-[0-9]*")),
        not_(glob("?*-*")),
        not_(glob("*.*.*")),
        glob("*[0-9]"),
    )


def _value_literal(value: Any) -> ColumnElement[Any]:
    if isinstance(value, bool):
        return literal(value, Boolean())
    if isinstance(value, int):
        return literal(value, Integer())
    if isinstance(value, float):
        return literal(value, REAL())
    return literal(value, Text())
