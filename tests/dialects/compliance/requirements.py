"""Which parts of SQLAlchemy's compliance suite apply to ``dorm+http``."""

from __future__ import annotations

from sqlalchemy.testing import exclusions
from sqlalchemy.testing.requirements import SuiteRequirements

__all__ = ["Requirements"]


class Requirements(SuiteRequirements):
    """The suite's defaults, with every exclusion justified below."""

    @property
    def schemas(self) -> exclusions.compound:
        # SQLite reaches a second schema only through ATTACH DATABASE, and the
        # server rejects ATTACH because a tenant must not open other files.
        return exclusions.closed()

    @property
    def temporary_tables(self) -> exclusions.compound:
        # The server rejects CREATE TEMPORARY TABLE, because a temporary table
        # would live on one pooled server connection and outlive the request.
        return exclusions.closed()

    @property
    def temp_table_reflection(self) -> exclusions.compound:
        # No temporary tables can exist (see temporary_tables).
        return exclusions.closed()

    @property
    def temporary_views(self) -> exclusions.compound:
        # The server rejects CREATE TEMPORARY VIEW for the same reason.
        return exclusions.closed()

    @property
    def parens_in_union_contained_select_w_limit_offset(self) -> exclusions.compound:
        # SQLite's grammar has no parenthesized SELECT inside UNION, so
        # "(SELECT ... LIMIT 1) UNION (SELECT ...)" is a syntax error.
        return exclusions.closed()

    @property
    def parens_in_union_contained_select_wo_limit_offset(self) -> exclusions.compound:
        # The same SQLite grammar limit, for selects without LIMIT or OFFSET.
        return exclusions.closed()

    # The properties below open what SuiteRequirements closes by default,
    # because SQLAlchemy's SQLite dialect, which dorm+http extends, supports them.

    @property
    def views(self) -> exclusions.compound:
        # The server allows CREATE VIEW and DROP VIEW on ordinary views.
        return exclusions.open()

    @property
    def reflect_table_options(self) -> exclusions.compound:
        # SQLiteDialect implements get_table_options, so the inspector returns
        # a dict instead of raising NotImplementedError.
        return exclusions.open()

    @property
    def reflects_pk_names(self) -> exclusions.compound:
        # SQLiteDialect reads a named PRIMARY KEY constraint from the table's SQL.
        return exclusions.open()
