"""The validated, canonical form of a JSON Schema table.

The parser turns a schema document into a :class:`TableSpec`; the builder turns
a :class:`TableSpec` into a SQLAlchemy ``Table``. Every fact the DDL depends on
is in the spec, so two schemas that normalise to the same spec give identical DDL.
"""

from __future__ import annotations

import dataclasses
import decimal
from typing import Any

__all__ = [
    "ANNOTATION_KEYWORDS",
    "CHECK_KEYWORDS",
    "CHECK_NAME_SUFFIXES",
    "COLUMN_TYPES",
    "Check",
    "ColumnSpec",
    "IndexSpec",
    "LiteralDefault",
    "REFERENTIAL_ACTIONS",
    "Reference",
    "SQL_DEFAULT_EXPRESSIONS",
    "SqlDefault",
    "TableSpec",
    "check_name",
    "column_phrase",
    "foreign_key_name",
    "index_name",
    "unique_name",
]

COLUMN_TYPES = ("integer", "number", "boolean", "string", "object", "array")
"""JSON Schema type names that map to a column. ``"null"`` only makes a column nullable."""

ANNOTATION_KEYWORDS = frozenset(
    ["title", "description", "$comment", "examples", "deprecated", "readOnly", "writeOnly"]
)
"""Keywords accepted anywhere and ignored, because they do not constrain values.

``description`` is the exception that is kept: it becomes the column or table comment.
"""

CHECK_KEYWORDS = (
    "enum",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
)
"""Validation keywords that become CHECK constraints, in the order they are emitted."""

CHECK_NAME_SUFFIXES = {
    "type": "type",
    "boolean": "boolean",
    "json": "json",
    "decimal": "decimal",
    "enum": "enum",
    "minimum": "minimum",
    "exclusiveMinimum": "exclusive_minimum",
    "maximum": "maximum",
    "exclusiveMaximum": "exclusive_maximum",
    "multipleOf": "multiple_of",
    "minLength": "min_length",
    "maxLength": "max_length",
}
"""The last part of each CHECK constraint name, by the keyword that created the check.

``type``, ``boolean``, ``json`` and ``decimal`` are implied by the column type and format.
"""

REFERENTIAL_ACTIONS = ("CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION")
"""The ON DELETE / ON UPDATE actions SQLite accepts."""

SQL_DEFAULT_EXPRESSIONS = {
    "string": ("CURRENT_TIMESTAMP", "CURRENT_DATE", "CURRENT_TIME"),
    "date": ("CURRENT_DATE",),
    "date-time": ("CURRENT_TIMESTAMP",),
    "time": ("CURRENT_TIME",),
}
"""The SQL expressions allowed in ``{"sql": ...}`` defaults, by column kind.

The list is closed on purpose: any other text would be pasted into DDL.
"""


@dataclasses.dataclass(frozen=True)
class Check:
    """One CHECK constraint: the keyword that creates it and the keyword's value."""

    keyword: str
    value: Any


@dataclasses.dataclass(frozen=True)
class LiteralDefault:
    """A constant column default, already converted to its Python value."""

    value: Any


@dataclasses.dataclass(frozen=True)
class SqlDefault:
    """A column default taken from :data:`SQL_DEFAULT_EXPRESSIONS`."""

    expression: str


@dataclasses.dataclass(frozen=True)
class Reference:
    """A single-column foreign key."""

    table: str
    column: str
    on_delete: str | None = None
    on_update: str | None = None
    pointer: str = dataclasses.field(default="", compare=False)
    """Where the reference is written, for errors found once the referenced table is known."""


@dataclasses.dataclass(frozen=True)
class IndexSpec:
    """A named index over one or more columns."""

    name: str
    columns: tuple[str, ...]
    unique: bool = False
    pointer: str = dataclasses.field(default="", compare=False)
    """Where the index is written, for name clashes found across tables."""


@dataclasses.dataclass
class ColumnSpec:
    """One column: its JSON type, SQL constraints and default."""

    name: str
    type: str
    format: str | None = None
    nullable: bool = True
    description: str | None = None
    checks: list[Check] = dataclasses.field(default_factory=list)
    default: LiteralDefault | SqlDefault | None = None
    unique: bool = False
    reference: Reference | None = None

    @property
    def kind(self) -> str:
        """The column kind that decides the SQL type: the format if any, else the type."""
        return self.format or self.type

    @property
    def scale(self) -> int | None:
        """Digits after the decimal point that a ``decimal`` column keeps, if fixed."""
        for check in self.checks:
            if check.keyword == "multipleOf" and self.format == "decimal":
                return decimal_places(check.value)
        return None


@dataclasses.dataclass
class TableSpec:
    """One table: columns in schema order, keys, unique constraints and indexes."""

    name: str
    columns: list[ColumnSpec]
    description: str | None = None
    primary_key: tuple[str, ...] = ()
    auto_increment: bool = False
    uniques: list[tuple[str, ...]] = dataclasses.field(default_factory=list)
    indexes: list[IndexSpec] = dataclasses.field(default_factory=list)

    def column(self, name: str) -> ColumnSpec:
        """Return the column called ``name``."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)


def decimal_places(multiple_of: int | float) -> int:
    """Return k for a ``multipleOf`` of 10**-k, the only form the parser accepts."""
    exponent = decimal.Decimal(repr(multiple_of)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def column_phrase(kind: str) -> str:
    """Return "an integer column", "a string column" ... for messages."""
    article = "an" if kind[0] in "aeiou" else "a"
    return f"{article} {kind} column"


def check_name(table: str, column: str, keyword: str) -> str:
    """Return the deterministic CHECK constraint name ``ck_<table>_<column>_<kind>``."""
    return f"ck_{table}_{column}_{CHECK_NAME_SUFFIXES[keyword]}"


def unique_name(table: str, columns: tuple[str, ...]) -> str:
    """Return the deterministic UNIQUE constraint name ``uq_<table>_<columns>``."""
    return "_".join(["uq", table, *columns])


def index_name(table: str, columns: tuple[str, ...]) -> str:
    """Return the default index name ``idx_<table>_<columns>``, the form DORM uses."""
    return "_".join(["idx", table, *columns])


def foreign_key_name(table: str, column: str, referenced_table: str) -> str:
    """Return the deterministic foreign key name ``fk_<table>_<column>_<referenced table>``."""
    return f"fk_{table}_{column}_{referenced_table}"
