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
from collections.abc import Collection
from dataclasses import dataclass

from ..errors import MirrorError

__all__ = [
    "MAX_KEY_COLUMNS",
    "RowQueries",
    "TableShape",
    "batch_tables",
    "capture_state",
    "install_capture",
    "is_internal_table",
    "prune_changes",
    "read_shape",
    "row_queries",
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


def capture_state(connection: sqlite3.Connection) -> tuple[int | None, str | None]:
    """Return the schema version the triggers were last reconciled with, and the incarnation.

    Only valid once :func:`install_capture` has run on the database.
    """
    row = connection.execute(
        f"SELECT (SELECT value FROM {META} WHERE key = 'schema_version'), "
        f"(SELECT value FROM {META} WHERE key = 'incarnation')"
    ).fetchone()
    version, incarnation_id = row
    return (
        None if version is None else int(version),
        None if incarnation_id is None else str(incarnation_id),
    )


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
    expected_triggers: set[str] = set()

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
        expected_triggers |= expected
        if recorded.get(table) == current[table] and expected <= triggers:
            continue

        _drop_triggers(connection, table)
        for statement in _trigger_statements(shape):
            connection.execute(statement)
        connection.execute(f"INSERT INTO {OUTBOX} (tbl, op) VALUES (?, '{SNAPSHOT}')", (table,))
        changed.append(table)
        if table in recorded:
            _log_shape_change(tenant, table, recorded[table], current[table])

    # ALTER TABLE ... RENAME moves a table's triggers along under their old
    # names, and they would record every write a second time.
    for name in triggers - expected_triggers:
        connection.execute(f"DROP TRIGGER IF EXISTS {quote_identifier(name)}")

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


def batch_tables(
    connection: sqlite3.Connection | sqlite3.Cursor, after_seq: int, limit: int, *, schema: str = "main"
) -> tuple[int, int, dict[str, str]]:
    """Summarise the next ``limit`` outbox entries after ``after_seq``.

    ``schema`` is the name the tenant database has on ``connection``: a
    connection of the aggregate reads it as an attached database.

    Returns the last seq of those entries, their number, and the operation
    each table needs. That is the table's latest whole-table entry
    (:data:`SNAPSHOT` or :data:`DROPPED`), which covers all its key entries,
    or :data:`KEY_CHANGED` when the table has key entries only.
    """
    rows = connection.execute(
        f"SELECT tbl, op, max(seq), count(*) FROM (SELECT seq, tbl, op FROM {quote_identifier(schema)}.{OUTBOX} "
        "WHERE seq > ? ORDER BY seq LIMIT ?) GROUP BY tbl, op",
        (after_seq, limit),
    ).fetchall()
    last_seq, count = after_seq, 0
    latest_whole: dict[str, tuple[int, str]] = {}
    tables: dict[str, str] = {}
    for table, op, seq, entries in rows:
        last_seq = max(last_seq, seq)
        count += entries
        if op == KEY_CHANGED:
            tables.setdefault(table, KEY_CHANGED)
        elif seq > latest_whole.get(table, (0, ""))[0]:
            latest_whole[table] = (seq, op)
    for table, (_, op) in latest_whole.items():
        tables[table] = op
    return last_seq, count, tables


@dataclass(frozen=True)
class RowQueries:
    """Queries of one tenant table's current rows, each row ``(tenant, *values)``.

    The values are the table's columns, after the rowid for a table without
    a primary key: the order of the aggregate table after its tenant column.
    The tenant name is the first parameter of each query and comes back as
    the first value, so rows go to the aggregate without being rebuilt.
    """

    changed: str
    """Rows whose keys have outbox entries in a seq range. Parameters:
    tenant, after seq, last seq, table name."""

    removed: str
    """``(tenant, *key)`` of the keys in the same range whose row is gone. Same parameters."""

    every: str
    """Every row of the table. Parameter: tenant."""


def row_queries(shape: TableShape, schema: str = "main") -> RowQueries:
    """Build the queries of ``shape``'s rows; each joins the outbox keys to the table once.

    ``schema`` is the name of the tenant database on the connection that runs them.
    """
    prefix = quote_identifier(schema)
    table = f"{prefix}.{quote_identifier(shape.name)}"
    columns = ", ".join(f"_dorm_row.{quote_identifier(column)}" for column in shape.columns)
    if shape.uses_rowid:
        key_columns = ["_dorm_row.rowid"]
        select_list = f"_dorm_row.rowid, {columns}"
    else:
        key_columns = [f"_dorm_row.{quote_identifier(column)}" for column in shape.key]
        select_list = columns

    slots = [f"k{index + 1}" for index in range(len(key_columns))]
    # IS instead of = so that a NULL key (possible in a rowid table's
    # non-integer primary key) finds its row; SQLite still uses the index.
    matches = " AND ".join(f"{column} IS _dorm_keys.{slot}" for column, slot in zip(key_columns, slots))
    keys = (
        f"(SELECT DISTINCT {', '.join(slots)} FROM {prefix}.{OUTBOX} WHERE seq > ? AND seq <= ? "
        f"AND tbl = ? AND op = '{KEY_CHANGED}') AS _dorm_keys"
    )
    key_list = ", ".join(f"_dorm_keys.{slot}" for slot in slots)
    return RowQueries(
        changed=f"SELECT ?, {select_list} FROM {keys} JOIN {table} AS _dorm_row ON {matches}",
        removed=(
            f"SELECT ?, {key_list} FROM {keys} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} AS _dorm_row WHERE {matches})"
        ),
        every=f"SELECT ?, {select_list} FROM {table} AS _dorm_row",
    )


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


def entries_pruned_after(
    connection: sqlite3.Connection | sqlite3.Cursor, seq: int, *, schema: str = "main"
) -> bool:
    """Tell whether outbox entries after ``seq`` were pruned, so that ``seq`` cannot be caught up from.

    An aggregate put back from an older copy records such a position.
    """
    prefix = quote_identifier(schema)
    first = connection.execute(f"SELECT min(seq) FROM {prefix}.{OUTBOX}").fetchone()[0]
    return first is not None and int(first) > seq + 1


def prune_changes(connection: sqlite3.Connection, up_to_seq: int) -> None:
    """Delete outbox entries every aggregate has applied, except the newest one.

    Keeping the newest entry keeps the largest rowid in the table, so new
    entries never reuse a seq that an aggregate position already passed.
    """
    connection.execute(f"DELETE FROM {OUTBOX} WHERE seq < ?", (up_to_seq,))
