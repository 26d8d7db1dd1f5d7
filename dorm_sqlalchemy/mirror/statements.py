"""Fixed SQL text for the aggregate databases, one class per dialect.

The mirror worker runs in the application's process and shares its
interpreter lock, so its hot path executes these strings with plain DB-API
calls (``execute`` and ``executemany``) instead of building SQLAlchemy
statements for every batch. Each string is built once per aggregate table
and column set, then reused.

SQLite takes ``?`` parameters and stores a row with ``INSERT OR REPLACE``;
PostgreSQL takes ``%s`` parameters (psycopg, psycopg2 and pg8000 all
accept them) and uses ``INSERT ... ON CONFLICT ... DO UPDATE``. Both rely
on the aggregate table's primary key ``(tenant, <key columns>)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import MirrorError

__all__ = ["STATE_TABLE", "AggregateSql", "PostgresqlSql", "SqliteSql", "sql_for_dialect"]

STATE_TABLE = "_dorm_mirror_state"
"""The table of each aggregate that stores every tenant's position."""


class AggregateSql:
    """The statements the mirror runs on one kind of aggregate database."""

    placeholder = "?"
    begin: str | None = None
    """The statement that opens a write transaction, or None when the driver opens one itself."""

    def __init__(self, tenant_column: str) -> None:
        self.tenant_column = tenant_column
        state = self.table(STATE_TABLE)
        mark = self.placeholder
        self.create_state = (
            f"CREATE TABLE IF NOT EXISTS {self.table(STATE_TABLE, parameters=False)} ("
            "tenant VARCHAR(63) NOT NULL, incarnation VARCHAR(64) NOT NULL, "
            "last_seq BIGINT NOT NULL, PRIMARY KEY (tenant))"
        )
        self.select_positions = f"SELECT tenant, incarnation, last_seq FROM {state}"
        self.select_position = f"SELECT incarnation, last_seq FROM {state} WHERE tenant = {mark}"
        self.lock_position = self.select_position
        self.insert_position = (
            f"INSERT INTO {state} (tenant, incarnation, last_seq) VALUES ({mark}, {mark}, {mark})"
        )
        self.update_position = (
            f"UPDATE {state} SET incarnation = {mark}, last_seq = {mark} WHERE tenant = {mark}"
        )
        self.delete_position = f"DELETE FROM {state} WHERE tenant = {mark}"

    def quote(self, name: str, *, parameters: bool = True) -> str:
        """Quote an identifier for a statement that takes parameters (or not)."""
        return '"' + name.replace('"', '""') + '"'

    def table(self, name: str, *, parameters: bool = True) -> str:
        """Quote the name of an aggregate table."""
        return self.quote(name, parameters=parameters)

    # -- rows ----------------------------------------------------------------

    def store_rows(self, table: str, columns: Sequence[str], key: Sequence[str]) -> str:
        """Return the statement that inserts or replaces one row, tenant column first."""
        raise NotImplementedError

    def delete_keys(self, table: str, key: Sequence[str]) -> str:
        """Return the statement that deletes one tenant's row by its key, tenant first."""
        conditions = " AND ".join(
            f"{self.quote(name)} = {self.placeholder}" for name in (self.tenant_column, *key)
        )
        return f"DELETE FROM {self.table(table)} WHERE {conditions}"

    def purge(self, table: str) -> str:
        """Return the statement that deletes every row of one tenant."""
        return f"DELETE FROM {self.table(table)} WHERE {self.quote(self.tenant_column)} = {self.placeholder}"

    def _column_list(self, table: str, columns: Sequence[str]) -> tuple[str, str]:
        names = ", ".join(self.quote(name) for name in (self.tenant_column, *columns))
        marks = ", ".join([self.placeholder] * (len(columns) + 1))
        return names, marks

    # -- schema --------------------------------------------------------------

    select_columns = ""
    """Query of one table's column names; an empty result means the table does not exist."""

    select_tenant_tables = ""
    """Query of the tables that have a column named by the parameter."""

    def create_table(self, table: str, columns: Sequence[tuple[str, str]], key: Sequence[str]) -> str:
        """Return the ``CREATE TABLE`` of an aggregate table; ``columns`` are (name, DDL type)."""
        parts = [f"{self.quote(self.tenant_column, parameters=False)} TEXT NOT NULL"]
        parts += [f"{self.quote(name, parameters=False)} {ddl_type}".rstrip() for name, ddl_type in columns]
        primary_key = ", ".join(self.quote(name, parameters=False) for name in (self.tenant_column, *key))
        parts.append(f"PRIMARY KEY ({primary_key})")
        return f"CREATE TABLE {self.table(table, parameters=False)} (\n    " + ",\n    ".join(parts) + "\n)"

    def add_column(self, table: str, column: str, ddl_type: str) -> str:
        return (
            f"ALTER TABLE {self.table(table, parameters=False)} "
            f"ADD COLUMN {self.quote(column, parameters=False)} {ddl_type}"
        ).rstrip()


class SqliteSql(AggregateSql):
    """SQLite statements; every name is qualified with ``main`` because
    tenant databases may be attached to the same connection."""

    placeholder = "?"
    begin = "BEGIN IMMEDIATE"
    select_columns = "SELECT name FROM pragma_table_info(?, 'main')"
    select_tenant_tables = (
        "SELECT m.name FROM main.sqlite_schema AS m JOIN pragma_table_info(m.name, 'main') AS c "
        "WHERE m.type = 'table' AND c.name = ?"
    )

    def __init__(self, tenant_column: str) -> None:
        super().__init__(tenant_column)
        # BEGIN IMMEDIATE would take the write lock of every attached tenant
        # too. A deferred BEGIN followed by this write takes the aggregate's
        # write lock alone, waiting for it under the busy timeout because no
        # read snapshot is held yet.
        self.lock_aggregate = (
            f"UPDATE {self.table(STATE_TABLE)} SET last_seq = last_seq WHERE tenant = ?"
        )

    def table(self, name: str, *, parameters: bool = True) -> str:
        return "main." + self.quote(name)

    def store_rows(self, table: str, columns: Sequence[str], key: Sequence[str]) -> str:
        _, marks = self._column_list(table, columns)
        return f"{self.store_selected(table, columns)} VALUES ({marks})"

    def store_selected(self, table: str, columns: Sequence[str]) -> str:
        """Return the head of an ``INSERT OR REPLACE`` whose rows come from a query that follows."""
        # The aggregate table has no constraint but its primary key, so
        # REPLACE only ever replaces the same tenant's row with that key.
        names, _ = self._column_list(table, columns)
        return f"INSERT OR REPLACE INTO {self.table(table)} ({names})"


class PostgresqlSql(AggregateSql):
    placeholder = "%s"
    select_columns = (
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s"
    )
    select_tenant_tables = (
        "SELECT table_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND column_name = %s"
    )

    def __init__(self, tenant_column: str) -> None:
        super().__init__(tenant_column)
        self.lock_position = self.select_position + " FOR UPDATE"

    def quote(self, name: str, *, parameters: bool = True) -> str:
        quoted = super().quote(name)
        # The drivers read %s in a statement that takes parameters, so a
        # literal % in an identifier must be doubled there, and only there.
        return quoted.replace("%", "%%") if parameters else quoted

    def store_rows(self, table: str, columns: Sequence[str], key: Sequence[str]) -> str:
        names, marks = self._column_list(table, columns)
        conflict = ", ".join(self.quote(name) for name in (self.tenant_column, *key))
        updates = ", ".join(
            f"{self.quote(name)} = EXCLUDED.{self.quote(name)}" for name in columns if name not in key
        )
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        return f"INSERT INTO {self.table(table)} ({names}) VALUES ({marks}) ON CONFLICT ({conflict}) {action}"


def sql_for_dialect(dialect_name: str, paramstyle: str, tenant_column: str, url: str) -> AggregateSql:
    """Return the statements for an aggregate of ``dialect_name``.

    Raises :class:`MirrorError` for a database or driver the mirror cannot write to.
    """
    if dialect_name == "sqlite" and paramstyle == "qmark":
        return SqliteSql(tenant_column)
    if dialect_name == "postgresql" and paramstyle in ("format", "pyformat"):
        return PostgresqlSql(tenant_column)
    raise MirrorError(
        f"unsupported aggregate database {url!r} (dialect {dialect_name}, parameter style "
        f"{paramstyle}): use a SQLite URL or a PostgreSQL URL with psycopg, such as "
        "'postgresql+psycopg://user@host/db'"
    )
