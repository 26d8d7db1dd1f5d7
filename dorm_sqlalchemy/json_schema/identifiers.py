"""SQLite identifier rules: case folding and the keywords that must be quoted."""

from __future__ import annotations

from sqlalchemy.sql.elements import quoted_name

__all__ = ["SQLITE_KEYWORDS", "fold_identifier", "sql_name"]

SQLITE_KEYWORDS = frozenset(
    """
    abort action add after all alter always analyze and as asc attach autoincrement before
    begin between by cascade case cast check collate column commit conflict constraint
    create cross current current_date current_time current_timestamp database default
    deferrable deferred delete desc detach distinct do drop each else end escape except
    exclude exclusive exists explain fail filter first following for foreign from full
    generated glob group groups having if ignore immediate in index indexed initially inner
    insert instead intersect into is isnull join key last left like limit match materialized
    natural no not nothing notnull null nulls of offset on or order others outer over
    partition plan pragma preceding primary query raise range recursive references regexp
    reindex release rename replace restrict returning right rollback row rows savepoint
    select set table temp temporary then ties to transaction trigger unbounded union unique
    update using vacuum values view virtual when where window with without
    """.split()  # noqa: SIM905
)
"""The 147 keywords of SQLite 3.40, as its ``sqlite3_keyword_name()`` lists them.

SQLAlchemy 2.1's SQLite dialect leaves some of them unquoted, and SQLite then
fails to parse, for example, a column named ``nothing`` or ``returning``.
"""

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold_identifier(name: str) -> str:
    """Return ``name`` with ASCII letters in lower case, the way SQLite compares identifiers."""
    return name.translate(_ASCII_LOWER)


def sql_name(name: str) -> str:
    """Return ``name``, forced to be quoted in SQL when it is a SQLite keyword."""
    if fold_identifier(name) in SQLITE_KEYWORDS:
        return quoted_name(name, True)
    return name
