"""The sandbox around SQL from HTTP clients: one statement, one tenant, bounded time.

Three layers keep a request inside its tenant's database:

* :func:`single_statement` cuts the SQL after its first statement and rejects
  the request when anything but comments follows, so ``SELECT 1; DROP TABLE t``
  runs nothing. ``sqlite3`` would raise "You can only execute one statement at
  a time" too, before running anything; this check comes first so the error
  can show where the second statement starts.
* :class:`Authorizer` is a SQLite authorizer callback. SQLite calls it while
  it compiles a statement (and when VACUUM or a table-valued pragma compiles
  its own inner statements), so a denied statement fails before it runs.
  It denies ATTACH and DETACH, which also stops ``VACUUM INTO`` because
  VACUUM attaches its output file. It denies ``load_extension()``, every
  pragma outside a list of read-only introspection pragmas, and databases
  other than ``main`` and ``temp``. It denies temporary objects, which would
  outlive the request on a pooled connection, and BEGIN/COMMIT/SAVEPOINT,
  because each request is one transaction (inside an interactive transaction,
  ``allow_savepoints`` lets SAVEPOINT, RELEASE and ROLLBACK TO through).
  It denies writes to the library's internal tables. A read-only token also loses every write and schema change.
* :class:`Deadline` is a progress handler that interrupts a statement that runs
  past its time limit.

SQLite itself rejects writes to ``sqlite_schema`` while ``writable_schema`` is
off, and the authorizer never lets a client turn it on. SQLite's own schema
changes (CREATE TABLE, and the declaration of table-valued functions such as
``pragma_table_info``) show up in the authorizer as writes to
``sqlite_master``, which is why those are not denied here.

Python's ``sqlite3`` leaves extension loading disabled unless
``enable_load_extension(True)`` is called, which this package never does.
"""

from __future__ import annotations

import re
import sqlite3
import time

from .errors import ApiError

__all__ = [
    "Authorizer",
    "Deadline",
    "INTROSPECTION_PRAGMAS",
    "READABLE_SETTING_PRAGMAS",
    "single_statement",
]

INTROSPECTION_PRAGMAS = frozenset(
    {
        "collation_list",
        "compile_options",
        "database_list",
        "foreign_key_check",
        "foreign_key_list",
        "function_list",
        "index_info",
        "index_list",
        "index_xinfo",
        "integrity_check",
        "module_list",
        "pragma_list",
        "quick_check",
        "table_info",
        "table_list",
        "table_xinfo",
    }
)
"""Pragmas that only read, with or without an argument, as ``PRAGMA x(...)`` or ``pragma_x(...)``."""

READABLE_SETTING_PRAGMAS = frozenset(
    {
        "application_id",
        "auto_vacuum",
        "busy_timeout",
        "cache_size",
        "data_version",
        "encoding",
        "foreign_keys",
        "freelist_count",
        "journal_mode",
        "max_page_count",
        "page_count",
        "page_size",
        "schema_version",
        "synchronous",
        "user_version",
    }
)
"""Settings a client may read (``PRAGMA user_version``) but not change."""

TRANSACTION_SCOPED_PRAGMAS = frozenset({"defer_foreign_keys"})
"""Settings a client may also change, because SQLite resets them at the end of the transaction."""

INTERNAL_TABLE_PREFIXES = ("_dorm", "_alembic", "alembic_version")
"""Names of tables that belong to dorm-sqlalchemy and Alembic; clients may read them, not write."""

VIRTUAL_TABLE_MODULES = frozenset({"fts3", "fts4", "fts5", "rtree", "rtree_i32", "geopoly"})
"""Virtual table modules a client may create tables with; each keeps its data in the database."""

DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})
"""Functions that load code or reach files (the last three exist only in the sqlite3 shell)."""

ALLOWED_DATABASES = frozenset({"main", "temp"})

PROGRESS_STEPS = 1000
"""SQLite virtual machine instructions between two checks of the deadline."""

_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_temp_master"})

_TEMPORARY_MESSAGE = (
    "temporary tables, views, indexes and triggers are not allowed: they would outlive "
    "the request on a shared connection; create an ordinary table instead"
)

_SKIP_TO_SPECIAL = re.compile(r"""['"`\[;]|--|/\*""")
_KEYWORD = re.compile(r"[A-Za-z_]+")
# ALTER TABLE ... RENAME TO reports only the old name to the authorizer.
_RENAME_TO_INTERNAL = re.compile(
    r"\bRENAME\s+TO\s+[\"`\[']?(?:_dorm|_alembic|alembic_version)", re.IGNORECASE
)

_TEMP_CREATES = {
    sqlite3.SQLITE_CREATE_TEMP_INDEX,
    sqlite3.SQLITE_CREATE_TEMP_TABLE,
    sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
    sqlite3.SQLITE_CREATE_TEMP_VIEW,
}
_DATA_WRITES = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}

# Schema changes, with where each callback puts the names it concerns:
# (object name, table name) positions among (arg1, arg2).
_SCHEMA_CHANGES: dict[int, tuple[str, tuple[int, ...]]] = {
    sqlite3.SQLITE_CREATE_INDEX: ("CREATE INDEX", (0, 1)),
    sqlite3.SQLITE_CREATE_TABLE: ("CREATE TABLE", (0,)),
    sqlite3.SQLITE_CREATE_TRIGGER: ("CREATE TRIGGER", (0, 1)),
    sqlite3.SQLITE_CREATE_VIEW: ("CREATE VIEW", (0,)),
    sqlite3.SQLITE_CREATE_VTABLE: ("CREATE VIRTUAL TABLE", (0,)),
    sqlite3.SQLITE_DROP_INDEX: ("DROP INDEX", (0, 1)),
    sqlite3.SQLITE_DROP_TABLE: ("DROP TABLE", (0,)),
    sqlite3.SQLITE_DROP_TRIGGER: ("DROP TRIGGER", (0, 1)),
    sqlite3.SQLITE_DROP_VIEW: ("DROP VIEW", (0,)),
    sqlite3.SQLITE_DROP_VTABLE: ("DROP VIRTUAL TABLE", (0,)),
    sqlite3.SQLITE_DROP_TEMP_INDEX: ("DROP INDEX", (0, 1)),
    sqlite3.SQLITE_DROP_TEMP_TABLE: ("DROP TABLE", (0,)),
    sqlite3.SQLITE_DROP_TEMP_TRIGGER: ("DROP TRIGGER", (0, 1)),
    sqlite3.SQLITE_DROP_TEMP_VIEW: ("DROP VIEW", (0,)),
    sqlite3.SQLITE_ALTER_TABLE: ("ALTER TABLE", (1,)),
    sqlite3.SQLITE_REINDEX: ("REINDEX", (0,)),
    sqlite3.SQLITE_ANALYZE: ("ANALYZE", (0,)),
}
_WRITE_NAMES = {
    sqlite3.SQLITE_INSERT: "INSERT",
    sqlite3.SQLITE_UPDATE: "UPDATE",
    sqlite3.SQLITE_DELETE: "DELETE",
}


# -- statement text ----------------------------------------------------------------


def single_statement(sql: str) -> str:
    """Return the first statement of ``sql``, or raise :class:`ApiError` if there are more.

    A trailing ``;``, whitespace and comments are allowed and dropped. The
    statement must not be empty and must not be VACUUM.
    """
    if "\x00" in sql:
        raise ApiError(400, "the SQL contains a NUL character: remove it")

    end = _first_statement_end(sql)
    first, rest = sql[:end], sql[end:]
    second = _skip_trivia(rest, 0, semicolons=True)
    if second < len(rest):
        raise ApiError(
            400,
            "the SQL contains more than one statement (the second starts with "
            f'{rest[second : second + 40]!r}): send one statement per "sql", or several '
            'as a "transaction" list, which runs them in one transaction',
        )

    keyword = leading_keyword(first)
    if keyword is None:
        raise ApiError(400, 'the SQL is empty: send the statement to run in "sql"')
    if keyword == "VACUUM":
        raise ApiError(
            403,
            "VACUUM is not allowed through the HTTP API, because VACUUM INTO writes files "
            "outside the tenant: use dorm.backup() or the dorm command on the server",
        )
    if keyword == "ALTER" and _RENAME_TO_INTERNAL.search(first):
        raise ApiError(
            403,
            "renaming to a name that starts with _dorm or _alembic, or to alembic_version, "
            "is not allowed: those names belong to dorm-sqlalchemy and Alembic",
        )
    return first


def leading_keyword(sql: str) -> str | None:
    """Return the first SQL keyword of ``sql`` in upper case, skipping comments, or ``None``."""
    start = _skip_trivia(sql, 0, semicolons=False)
    match = _KEYWORD.match(sql, start)
    if match is None:
        return None if start >= len(sql) else ""
    return match.group(0).upper()


def _skip_trivia(sql: str, position: int, *, semicolons: bool) -> int:
    # Return the position of the first character that is not whitespace, a
    # comment or (with semicolons=True) a semicolon. An unterminated block
    # comment runs to the end, as in SQLite's tokenizer.
    length = len(sql)
    while position < length:
        character = sql[position]
        if character.isspace() or (semicolons and character == ";"):
            position += 1
        elif sql.startswith("--", position):
            newline = sql.find("\n", position)
            position = length if newline < 0 else newline + 1
        elif sql.startswith("/*", position):
            close = sql.find("*/", position + 2)
            position = length if close < 0 else close + 2
        else:
            return position
    return length


def _first_statement_end(sql: str) -> int:
    # Semicolons inside quotes and comments are skipped. Any other semicolon
    # ends the statement unless SQLite's tokenizer reports the statement as
    # still open there (the body of CREATE TRIGGER ... BEGIN ...; END).
    position = 0
    length = len(sql)
    while True:
        match = _SKIP_TO_SPECIAL.search(sql, position)
        if match is None:
            return length
        start = match.start()
        token = match.group(0)
        if token == ";":
            if sqlite3.complete_statement(sql[: start + 1]):
                return start + 1
            position = start + 1
        elif token == "--":
            newline = sql.find("\n", start)
            position = length if newline < 0 else newline + 1
        elif token == "/*":
            close = sql.find("*/", start + 2)
            position = length if close < 0 else close + 2
        elif token == "[":
            close = sql.find("]", start + 1)
            position = length if close < 0 else close + 1
        else:
            position = _end_of_quoted(sql, start, token)


def _end_of_quoted(sql: str, start: int, quote: str) -> int:
    # A doubled quote character stands for one quote inside the literal.
    position = start + 1
    while True:
        close = sql.find(quote, position)
        if close < 0:
            return len(sql)
        if sql.startswith(quote, close + 1):
            position = close + 2
            continue
        return close + 1


# -- authorizer ----------------------------------------------------------------------


class Authorizer:
    """A SQLite authorizer callback for the statements of one request.

    Set it with ``connection.set_authorizer(authorizer)``. When it denies an
    action, SQLite fails the statement with "not authorized" and
    :attr:`denial` keeps the reason, so the caller can return 403 with it.
    """

    def __init__(self, *, read_only: bool = False, allow_savepoints: bool = False) -> None:
        self.read_only = read_only
        self.allow_savepoints = allow_savepoints
        self._dropped_tables: set[str] = set()
        """Tables this authorizer let a statement drop, whose triggers go with them."""
        self.denial: str | None = None

    def __call__(
        self,
        action: int,
        arg1: str | None,
        arg2: str | None,
        database: str | None,
        trigger: str | None,
    ) -> int:
        # Reading a column of the tenant's own tables is most of the calls
        # (one per column a statement reads) and always allowed.
        if action == sqlite3.SQLITE_READ and database == "main" and arg1 not in _DENIED_TABLES:
            return sqlite3.SQLITE_OK
        reason = self.check(action, arg1, arg2, database, trigger)
        if reason is None:
            return sqlite3.SQLITE_OK
        if self.denial is None:
            self.denial = reason
        return sqlite3.SQLITE_DENY

    def check(
        self,
        action: int,
        arg1: str | None,
        arg2: str | None,
        database: str | None,
        trigger: str | None,
    ) -> str | None:
        """Return why ``action`` is denied, or ``None`` when it is allowed."""
        if database is not None and database not in ALLOWED_DATABASES:
            return (
                f"database {database!r} is not allowed: a tenant's endpoint reaches only "
                "that tenant's own database, 'main'"
            )

        if action in (sqlite3.SQLITE_READ, sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
            if arg1 in _DENIED_TABLES:
                return _DENIED_TABLES[arg1]
            return None
        if action == sqlite3.SQLITE_PRAGMA:
            return _check_pragma((arg1 or "").lower(), arg2)
        if action == sqlite3.SQLITE_FUNCTION:
            return _check_function((arg2 or "").lower())
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            verb = "ATTACH" if action == sqlite3.SQLITE_ATTACH else "DETACH"
            return (
                f"{verb} is not allowed: a tenant's endpoint reaches only that tenant's "
                "own database"
            )
        if action == sqlite3.SQLITE_SAVEPOINT and self.allow_savepoints:
            return _check_savepoint(arg2)
        if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
            if self.allow_savepoints:
                return (
                    "BEGIN, COMMIT and ROLLBACK are not allowed inside an interactive "
                    "transaction: end it with POST .../transaction/<id>/commit or /rollback; "
                    "SAVEPOINT, RELEASE and ROLLBACK TO are allowed"
                )
            return (
                "BEGIN, COMMIT, ROLLBACK, SAVEPOINT and RELEASE are not allowed: each request "
                "runs in its own transaction; send statements that belong together as one "
                '"transaction" list'
            )
        if action in _TEMP_CREATES or (database == "temp" and action in _SCHEMA_CHANGES):
            return _TEMPORARY_MESSAGE
        if action in _DATA_WRITES:
            if database == "temp" and arg1 not in _SCHEMA_TABLES:
                return _TEMPORARY_MESSAGE
            return self._check_write(action, arg1, trigger)
        if action in _SCHEMA_CHANGES:
            return self._check_schema_change(action, arg1, arg2)
        return f"SQLite action {action} is not allowed through the HTTP API"

    def _check_write(self, action: int, table: str | None, trigger: str | None) -> str | None:
        # SQLite reports its own bookkeeping of schema changes and table-valued
        # functions as writes to sqlite_master; it rejects client writes there itself.
        if table in _SCHEMA_TABLES:
            return None
        verb = _WRITE_NAMES[action]
        if self.read_only:
            return f"this token is read-only: {verb} on {table!r} is not allowed"
        if table is not None and _is_internal(table):
            # The library's own triggers, named _dorm..., may keep its tables up to date.
            if trigger is not None and _is_internal(trigger):
                return None
            return _internal_message(verb, table)
        return None

    def _check_schema_change(self, action: int, arg1: str | None, arg2: str | None) -> str | None:
        verb, positions = _SCHEMA_CHANGES[action]
        if self.read_only:
            return f"this token is read-only: {verb} is not allowed"
        if action == sqlite3.SQLITE_DROP_TRIGGER and (arg2 or "").lower() in self._dropped_tables:
            # DROP TABLE drops the table's triggers with it, the mirror's included.
            return None
        arguments = (arg1, arg2)
        for position in positions:
            name = arguments[position]
            if name is not None and _is_internal(name):
                return _internal_message(verb, name)
        if action == sqlite3.SQLITE_DROP_TABLE and arg1 is not None:
            self._dropped_tables.add(arg1.lower())
        if (
            action == sqlite3.SQLITE_CREATE_VTABLE
            and (arg2 or "").lower() not in VIRTUAL_TABLE_MODULES
        ):
            return (
                f"virtual table module {arg2!r} is not allowed: use one of "
                f"{', '.join(sorted(VIRTUAL_TABLE_MODULES))}"
            )
        return None


def _check_pragma(name: str, argument: str | None) -> str | None:
    if name in INTROSPECTION_PRAGMAS:
        return None
    if name in READABLE_SETTING_PRAGMAS:
        if argument is None:
            return None
        return (
            f"setting PRAGMA {name} is not allowed through the HTTP API: read it with "
            f"PRAGMA {name} (no value), and change it with migrations on the server"
        )
    if name in TRANSACTION_SCOPED_PRAGMAS:
        return None
    return (
        f"PRAGMA {name} is not allowed through the HTTP API: allowed are the read-only "
        f"pragmas {', '.join(sorted(INTROSPECTION_PRAGMAS))}, reading "
        f"{', '.join(sorted(READABLE_SETTING_PRAGMAS))}, and defer_foreign_keys"
    )


_DENIED_TABLES = {
    "sqlite_dbpage": "sqlite_dbpage is not allowed: it reads and writes raw database pages",
    "sqlite_stmt": (
        "sqlite_stmt is not allowed: it lists the statements of the connection, "
        "which other requests and tokens share"
    ),
}


def _check_savepoint(name: str | None) -> str | None:
    # The server wraps each request of an interactive transaction in its own
    # savepoint, named _dorm...; a client must not release or roll back to it.
    if name is not None and _is_internal(name):
        return f"the savepoint name {name!r} is reserved: names starting with _dorm belong to the server"
    return None


def _check_function(name: str) -> str | None:
    if name in DENIED_FUNCTIONS:
        return f"the function {name}() is not allowed: it loads code or reaches files outside the tenant"
    return None


def _is_internal(name: str) -> bool:
    return name.lower().startswith(INTERNAL_TABLE_PREFIXES)


def _internal_message(verb: str, name: str) -> str:
    return (
        f"{verb} on {name!r} is not allowed: names starting with _dorm or _alembic, and "
        "alembic_version, belong to dorm-sqlalchemy and Alembic"
    )


# -- time limit ----------------------------------------------------------------------


class Deadline:
    """A progress handler that interrupts the running statement after a time limit.

    Install it with ``connection.set_progress_handler(deadline, PROGRESS_STEPS)``
    and call :meth:`start` before each period the limit applies to. After an
    interruption, :attr:`expired` is true, so the caller can tell a time-out
    from other errors.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._until = time.monotonic() + seconds

    def start(self) -> None:
        """Give the statement a fresh ``seconds`` from now."""
        self._until = time.monotonic() + self.seconds

    def __call__(self) -> int:
        if time.monotonic() < self._until:
            return 0
        self.expired = True
        return 1
