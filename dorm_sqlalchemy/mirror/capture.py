"""Change capture inside a tenant database: triggers that fill an outbox.

Every mirrored table gets three ``AFTER`` triggers (insert, update, delete)
that append the primary key of the touched row to the ``_dorm_changes``
outbox. The triggers run inside the writer's own transaction, so:

* a write that is rolled back, at any nesting level, leaves no outbox row;
* a committed write and its outbox row are durable together, so a process
  killed right after a commit loses nothing;
* every path that writes the file is covered: ORM flushes, bulk and Core
  statements, raw SQL, the HTTP API, even another program.

The outbox stores keys, not values. The mirror worker reads the current row
for each key when it applies a batch, so the aggregate receives the exact
stored values (generated keys, defaults, ``CURRENT_TIMESTAMP``, ``random()``)
and BLOBs or large integers never pass through a lossy encoding.

When the schema changes (``PRAGMA schema_version`` moves), the triggers are
reconciled: new or altered tables get fresh triggers plus a snapshot entry
(``S``) so rows written before the triggers existed are copied too, and a
dropped table gets an ``X`` entry that removes its rows from the aggregate.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from ..errors import MirrorError

__all__ = [
    "MAX_KEY_COLUMNS",
    "TableShape",
    "ChangeRow",
    "install_capture",
    "read_shape",
    "pending_changes",
    "prune_changes",
    "is_internal_table",
]

logger = logging.getLogger(__name__)

OUTBOX = "_dorm_changes"
META = "_dorm_mirror_meta"
TRIGGER_PREFIX = "_dorm_mirror_"
MAX_KEY_COLUMNS = 4
ROWID_KEY = "_rowid"
"""Key column of the aggregate for tables that have no primary key."""

KEY_CHANGED = "K"
SNAPSHOT = "S"
DROPPED = "X"

_INTERNAL_TABLES = frozenset({"alembic_version", "sqlite_sequence", "sqlite_stat1", "sqlite_stat4"})

# seq is a rowid alias without AUTOINCREMENT, which would rewrite
# sqlite_sequence on every insert. It still never goes backwards because
# pruning always keeps the newest entry (see prune_changes).
_CREATE_OUTBOX = f"""
CREATE TABLE IF NOT EXISTS {OUTBOX} (
    seq INTEGER PRIMARY KEY,
    tbl TEXT NOT NULL,
    op TEXT NOT NULL,
    k1, k2, k3, k4,
    at REAL NOT NULL DEFAULT (julianday('now'))
)"""
_CREATE_META = f"CREATE TABLE IF NOT EXISTS {META} (key TEXT PRIMARY KEY, value)"


@dataclass(frozen=True)
class TableShape:
    """The columns and key of one tenant table, as the mirror uses them."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    """Primary key columns, or ``("_rowid",)`` for a table without one."""

    declared_types: tuple[str, ...] = ()

    @property
    def uses_rowid(self) -> bool:
        return self.key == (ROWID_KEY,)

    def signature(self) -> list[object]:
        return [list(self.columns), list(self.key), list(self.declared_types)]


@dataclass(frozen=True)
class ChangeRow:
    """One outbox entry."""

    seq: int
    table: str
    op: str
    key: tuple[object, ...]


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def is_internal_table(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith(("sqlite_", "_dorm")) or lowered in _INTERNAL_TABLES


def user_tables(connection: sqlite3.Connection) -> list[str]:
    rows = connection.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name"
    ).fetchall()
    return [name for (name,) in rows if not is_internal_table(name)]


def read_shape(connection: sqlite3.Connection, table: str) -> TableShape:
    """Read the columns and primary key of ``table``."""
    rows = connection.execute(
        "SELECT name, type, pk, hidden FROM pragma_table_xinfo(?)", (table,)
    ).fetchall()
    visible = [row for row in rows if row[3] in (0, 2, 3)]
    columns = tuple(row[0] for row in visible)
    types = tuple(row[1] or "" for row in visible)
    key = tuple(row[0] for row in sorted((r for r in visible if r[2] > 0), key=lambda r: r[2]))
    if not key:
        key = (ROWID_KEY,)
    if len(key) > MAX_KEY_COLUMNS:
        raise MirrorError(
            f"table {table!r} has a primary key of {len(key)} columns; the mirror "
            f"supports at most {MAX_KEY_COLUMNS}: exclude the table with mirror_exclude="
        )
    return TableShape(table, columns, key, types)


def _trigger_statements(shape: TableShape) -> list[str]:
    table = quote_identifier(shape.name)
    label = quote_literal(shape.name)
    slots = ", ".join(f"k{index + 1}" for index in range(len(shape.key)))

    def key_of(row: str) -> str:
        if shape.uses_rowid:
            return f"{row}.rowid"
        return ", ".join(f"{row}.{quote_identifier(column)}" for column in shape.key)

    def append(row: str) -> str:
        return (
            f"INSERT INTO {OUTBOX} (tbl, op, {slots}) "
            f"VALUES ({label}, '{KEY_CHANGED}', {key_of(row)});"
        )

    old_differs = " OR ".join(
        f"OLD.{column} IS NOT NEW.{column}"
        for column in (
            ["rowid"] if shape.uses_rowid else [quote_identifier(c) for c in shape.key]
        )
    )
    names = {op: quote_identifier(f"{TRIGGER_PREFIX}{shape.name}_{op}") for op in ("ins", "upd", "del")}
    return [
        f"CREATE TRIGGER {names['ins']} AFTER INSERT ON {table} BEGIN {append('NEW')} END",
        (
            f"CREATE TRIGGER {names['upd']} AFTER UPDATE ON {table} BEGIN "
            f"INSERT INTO {OUTBOX} (tbl, op, {slots}) SELECT {label}, '{KEY_CHANGED}', "
            f"{key_of('OLD')} WHERE {old_differs}; {append('NEW')} END"
        ),
        f"CREATE TRIGGER {names['del']} AFTER DELETE ON {table} BEGIN {append('OLD')} END",
    ]


def _drop_triggers(connection: sqlite3.Connection, table: str) -> None:
    for op in ("ins", "upd", "del"):
        name = quote_identifier(f"{TRIGGER_PREFIX}{table}_{op}")
        connection.execute(f"DROP TRIGGER IF EXISTS {name}")


def _installed_triggers(connection: sqlite3.Connection) -> set[str]:
    rows = connection.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE ? ESCAPE '\\'",
        (TRIGGER_PREFIX.replace("_", "\\_") + "%",),
    ).fetchall()
    return {name for (name,) in rows}


def _meta(connection: sqlite3.Connection, key: str) -> object:
    row = connection.execute(f"SELECT value FROM {META} WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def _set_meta(connection: sqlite3.Connection, key: str, value: object) -> None:
    connection.execute(
        f"INSERT INTO {META} (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def capture_is_current(connection: sqlite3.Connection) -> bool:
    """Tell, without writing, whether the triggers match the current schema."""
    exists = connection.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (META,)
    ).fetchone()
    if not exists:
        return False
    version = connection.execute("PRAGMA schema_version").fetchone()[0]
    return _meta(connection, "schema_version") == version


def incarnation(connection: sqlite3.Connection) -> str | None:
    """Return the random id of this tenant database's capture, or ``None`` before install."""
    exists = connection.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (META,)
    ).fetchone()
    if not exists:
        return None
    value = _meta(connection, "incarnation")
    return None if value is None else str(value)


def install_capture(
    connection: sqlite3.Connection,
    *,
    tenant: str,
    exclude: Collection[str],
    tenant_column: str,
) -> list[str]:
    """Bring the triggers in line with the schema; return the tables (re)captured.

    ``connection`` must be in autocommit mode; this runs its own
    ``BEGIN IMMEDIATE`` transaction, so the check and the change are atomic
    with respect to other writers.
    """
    if capture_is_current(connection):
        return []

    connection.execute("BEGIN IMMEDIATE")
    try:
        changed = _reconcile(connection, tenant=tenant, exclude=exclude, tenant_column=tenant_column)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return changed


def _reconcile(
    connection: sqlite3.Connection, *, tenant: str, exclude: Collection[str], tenant_column: str
) -> list[str]:
    connection.execute(_CREATE_OUTBOX)
    connection.execute(_CREATE_META)
    if _meta(connection, "incarnation") is None:
        _set_meta(connection, "incarnation", uuid.uuid4().hex)

    recorded: dict[str, list[object]] = json.loads(str(_meta(connection, "tables") or "{}"))
    triggers = _installed_triggers(connection)
    current: dict[str, list[object]] = {}
    changed: list[str] = []

    for table in user_tables(connection):
        if table in exclude:
            _drop_triggers(connection, table)
            continue
        shape = read_shape(connection, table)
        if tenant_column in shape.columns:
            raise MirrorError(
                f"tenant {tenant!r}: table {table!r} has a column named {tenant_column!r}, "
                "which the aggregate uses for the tenant name: pass another "
                "mirror_tenant_column= or rename the column",
                tenant=tenant,
            )
        current[table] = shape.signature()
        expected = {f"{TRIGGER_PREFIX}{table}_{op}" for op in ("ins", "upd", "del")}
        if recorded.get(table) == current[table] and expected <= triggers:
            continue

        _drop_triggers(connection, table)
        for statement in _trigger_statements(shape):
            connection.execute(statement)
        connection.execute(f"INSERT INTO {OUTBOX} (tbl, op) VALUES (?, '{SNAPSHOT}')", (table,))
        changed.append(table)
        if table in recorded:
            _log_shape_change(tenant, table, recorded[table], current[table])

    for table in recorded.keys() - current.keys():
        connection.execute(f"INSERT INTO {OUTBOX} (tbl, op) VALUES (?, '{DROPPED}')", (table,))
        changed.append(table)
        logger.info("tenant %s: table %s is gone; its rows leave the aggregate", tenant, table)

    _set_meta(connection, "tables", json.dumps(current, sort_keys=True))
    # Read last: creating triggers moved the schema version.
    version = connection.execute("PRAGMA schema_version").fetchone()[0]
    _set_meta(connection, "schema_version", version)
    if changed:
        logger.info("tenant %s: mirror capture installed on %s", tenant, ", ".join(changed))
    return changed


def _log_shape_change(tenant: str, table: str, before: list[object], after: list[object]) -> None:
    dropped = [column for column in before[0] if column not in after[0]]  # type: ignore[union-attr]
    if dropped:
        logger.warning(
            "tenant %s: columns %s of table %s were dropped; the aggregate keeps "
            "them, with NULL in this tenant's rows",
            tenant,
            ", ".join(map(str, dropped)),
            table,
        )


def pending_changes(
    connection: sqlite3.Connection, after_seq: int, limit: int
) -> list[ChangeRow]:
    """Return up to ``limit`` outbox entries with ``seq > after_seq``, oldest first."""
    rows = connection.execute(
        f"SELECT seq, tbl, op, k1, k2, k3, k4 FROM {OUTBOX} WHERE seq > ? ORDER BY seq LIMIT ?",
        (after_seq, limit),
    ).fetchall()
    return [ChangeRow(row[0], row[1], row[2], tuple(row[3:])) for row in rows]


def outbox_state(
    connection: sqlite3.Connection, after_seq: int = 0
) -> tuple[int, int, float | None]:
    """Return (last seq, entries after ``after_seq``, julian day of the oldest of them)."""
    exists = connection.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (OUTBOX,)
    ).fetchone()
    if not exists:
        return 0, 0, None
    count, oldest = connection.execute(
        f"SELECT count(*), min(at) FROM {OUTBOX} WHERE seq > ?", (after_seq,)
    ).fetchone()
    last = connection.execute(f"SELECT max(seq) FROM {OUTBOX}").fetchone()[0]
    return (0 if last is None else int(last)), int(count), oldest


def prune_changes(connection: sqlite3.Connection, up_to_seq: int) -> None:
    """Delete outbox entries every aggregate has applied, except the newest one.

    Keeping the newest entry keeps the largest rowid in the table, so new
    entries never reuse a seq that an aggregate position already passed.
    """
    connection.execute(f"DELETE FROM {OUTBOX} WHERE seq < ?", (up_to_seq,))


def iter_rows(
    connection: sqlite3.Connection, shape: TableShape, keys: Iterator[tuple[object, ...]] | None
) -> Iterator[tuple[tuple[object, ...], tuple[object, ...] | None]]:
    """Yield ``(key, row)`` for each key (``row`` is None when the row is gone).

    With ``keys=None``, yield every row of the table.
    """
    columns = ", ".join(quote_identifier(column) for column in shape.columns)
    table = quote_identifier(shape.name)
    if shape.uses_rowid:
        key_columns = ["rowid"]
        select_list = f"rowid, {columns}"
    else:
        key_columns = [quote_identifier(column) for column in shape.key]
        select_list = columns

    if keys is None:
        for row in connection.execute(f"SELECT {select_list} FROM {table}"):
            if shape.uses_rowid:
                yield (row[0],), row
            else:
                yield tuple(row[shape.columns.index(c)] for c in shape.key), row
        return

    condition = " AND ".join(f"{column} IS ?" for column in key_columns)
    query = f"SELECT {select_list} FROM {table} WHERE {condition}"
    for key in keys:
        row = connection.execute(query, key[: len(key_columns)]).fetchone()
        yield key[: len(key_columns)], row
