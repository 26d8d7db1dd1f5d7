"""The DB-API driver under the dorm+http dialect, against a real server."""

from __future__ import annotations

import math
import socket
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from dorm_sqlalchemy.dialects import dbapi
from dorm_sqlalchemy.errors import DormError

from .conftest import SECRET, LiveServer


@pytest.fixture
def connection(server: LiveServer) -> Iterator[dbapi.Connection]:
    connection = dbapi.connect(server.api_url(), secret=SECRET)
    cursor = connection.cursor()
    cursor.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, v)")
    connection.commit()
    yield connection
    connection.close()


def test_module_globals_follow_pep249() -> None:
    assert dbapi.apilevel == "2.0"
    assert dbapi.paramstyle == "qmark"
    assert dbapi.threadsafety == 1


def test_errors_derive_from_dorm_error() -> None:
    assert issubclass(dbapi.Error, DormError)
    assert issubclass(dbapi.IntegrityError, dbapi.DatabaseError)
    assert issubclass(dbapi.AuthenticationError, dbapi.OperationalError)
    assert issubclass(dbapi.NetworkError, dbapi.OperationalError)


def test_execute_select_sets_description(connection: dbapi.Connection) -> None:
    cursor = connection.cursor().execute("SELECT 1 AS one, 'x' AS two")

    assert [column[0] for column in cursor.description] == ["one", "two"]
    assert cursor.fetchall() == [(1, "x")]
    assert cursor.rowcount == -1


def test_execute_insert_sets_rowcount_and_lastrowid(connection: dbapi.Connection) -> None:
    cursor = connection.cursor()
    cursor.execute("INSERT INTO items (name) VALUES (?)", ("a",))
    cursor.execute("INSERT INTO items (name) VALUES (?)", ("b",))

    assert cursor.rowcount == 1
    assert cursor.lastrowid == 2
    assert cursor.description is None


def test_update_rowcount_excludes_trigger_writes(connection: dbapi.Connection) -> None:
    cursor = connection.cursor()
    cursor.execute("CREATE TABLE log (name TEXT)")
    cursor.execute(
        "CREATE TRIGGER items_log AFTER UPDATE ON items BEGIN "
        "INSERT INTO log VALUES (NEW.name); INSERT INTO log VALUES (NEW.name); END"
    )
    cursor.executemany("INSERT INTO items (name) VALUES (?)", [("a",), ("b",)])

    cursor.execute("UPDATE items SET v = 1")

    assert cursor.rowcount == 2


def test_insert_or_ignore_keeps_lastrowid(connection: dbapi.Connection) -> None:
    cursor = connection.cursor()
    cursor.execute("INSERT INTO items (name) VALUES ('a')")
    cursor.execute("INSERT OR IGNORE INTO items (name) VALUES ('a')")

    assert cursor.rowcount == 0
    assert cursor.lastrowid == 1


def test_returning_rows_are_fetched(connection: dbapi.Connection) -> None:
    cursor = connection.cursor()
    cursor.execute("INSERT INTO items (name) VALUES (?), (?) RETURNING id, name", ("a", "b"))

    assert sorted(cursor.fetchall()) == [(1, "a"), (2, "b")]
    assert cursor.rowcount == 2


def test_named_parameters_bind(connection: dbapi.Connection) -> None:
    cursor = connection.cursor()
    cursor.execute("SELECT :a + :b", {"a": 2, "b": 3})

    assert cursor.fetchone() == (5,)


def test_fetchmany_and_fetchone_walk_rows(connection: dbapi.Connection) -> None:
    cursor = connection.cursor()
    cursor.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT i FROM n")

    assert cursor.fetchone() == (1,)
    assert cursor.fetchmany(2) == [(2,), (3,)]
    assert list(cursor) == [(4,), (5,)]
    assert cursor.fetchone() is None


def test_executemany_inserts_all_rows(connection: dbapi.Connection) -> None:
    cursor = connection.cursor()
    cursor.executemany("INSERT INTO items (name) VALUES (?)", [("a",), ("b",), ("c",)])

    assert cursor.rowcount == 3
    assert cursor.execute("SELECT count(*) FROM items").fetchone() == (3,)


def test_executemany_is_atomic(connection: dbapi.Connection) -> None:
    cursor = connection.cursor()
    with pytest.raises(dbapi.IntegrityError):
        cursor.executemany("INSERT INTO items (name) VALUES (?)", [("a",), ("b",), ("a",)])

    assert cursor.execute("SELECT count(*) FROM items").fetchone() == (0,)


def test_executemany_rejects_select(connection: dbapi.Connection) -> None:
    with pytest.raises(dbapi.ProgrammingError):
        connection.cursor().executemany("SELECT ?", [(1,)])


VALUES = [
    None,
    0,
    -1,
    2**53 - 1,
    2**53 + 1,
    -(2**63),
    2**63 - 1,
    1.0,
    -0.5,
    2.5e20,
    1e-300,
    math.inf,
    -math.inf,
    "",
    "text with 'quotes' and \u00e9\u4e2d\U0001f600",
    b"",
    b"\x00\x01\xff" * 100,
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_value_roundtrips_through_table(connection: dbapi.Connection, value: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("INSERT INTO items (name, v) VALUES ('x', ?)", (value,))
    cursor.execute("SELECT v, typeof(v) FROM items")

    stored, storage_class = cursor.fetchone()

    assert stored == value
    assert type(stored) is type(value)
    assert cursor.execute("SELECT count(*) FROM items WHERE v IS ?", (value,)).fetchone() == (1,)
    assert storage_class == {type(None): "null", int: "integer", float: "real", str: "text", bytes: "blob"}[type(value)]


def test_float_with_integral_value_stays_real(connection: dbapi.Connection) -> None:
    cursor = connection.cursor().execute("SELECT typeof(?), typeof(?)", (3.0, 3))

    assert cursor.fetchone() == ("real", "integer")


def test_nan_binds_as_null(connection: dbapi.Connection) -> None:
    cursor = connection.cursor().execute("SELECT ? IS NULL", (math.nan,))

    assert cursor.fetchone() == (1,)


def test_integer_beyond_64_bits_raises_data_error(connection: dbapi.Connection) -> None:
    with pytest.raises(dbapi.DataError, match="64-bit"):
        connection.cursor().execute("SELECT ?", (2**63,))


def test_unsupported_parameter_type_raises(connection: dbapi.Connection) -> None:
    with pytest.raises(dbapi.ProgrammingError, match="set"):
        connection.cursor().execute("SELECT ?", ({1},))


@pytest.mark.parametrize(
    "sql",
    ["BEGIN", "begin immediate", "COMMIT", "END", "ROLLBACK", "  -- comment\n  /* block */ BEGIN"],
)
def test_transaction_control_raises_not_supported(connection: dbapi.Connection, sql: str) -> None:
    with pytest.raises(dbapi.NotSupportedError, match="executemany"):
        connection.cursor().execute(sql)


def test_rollback_after_commit_is_silent(connection: dbapi.Connection) -> None:
    connection.cursor().execute("INSERT INTO items (name) VALUES ('a')")
    connection.commit()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        connection.rollback()


def test_rollback_after_reads_is_silent(connection: dbapi.Connection) -> None:
    connection.cursor().execute("SELECT * FROM items")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        connection.rollback()


def test_closed_connection_raises(connection: dbapi.Connection) -> None:
    cursor = connection.cursor()
    connection.close()

    with pytest.raises(dbapi.ProgrammingError, match="closed"):
        cursor.execute("SELECT 1")


def test_closed_cursor_raises(connection: dbapi.Connection) -> None:
    cursor = connection.cursor()
    cursor.close()

    with pytest.raises(dbapi.ProgrammingError, match="closed"):
        cursor.execute("SELECT 1")


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "error_class", "status"),
    [
        ("INSERT INTO items (id, name) VALUES (1, 'a')", dbapi.IntegrityError, 409),
        ("INSERT INTO items (name) VALUES (NULL)", dbapi.IntegrityError, 422),
        ("SELEC 1", dbapi.OperationalError, 400),
        ("SELECT * FROM no_such_table", dbapi.OperationalError, 400),
        ("ATTACH 'other.db' AS other", dbapi.PermissionDeniedError, 403),
        ("SELECT 1; SELECT 2", dbapi.OperationalError, 400),
    ],
)
def test_server_error_maps_to_dbapi_error(
    connection: dbapi.Connection, sql: str, error_class: type[dbapi.Error], status: int
) -> None:
    connection.cursor().execute("INSERT INTO items (id, name) VALUES (1, 'a')")

    with pytest.raises(error_class) as caught:
        connection.cursor().execute(sql)

    assert caught.value.status == status
    assert caught.value.tenant == "acme"


@pytest.mark.parametrize("secret", [None, "wrong"])
def test_bad_secret_raises_authentication_error(server: LiveServer, secret: str | None) -> None:
    with dbapi.connect(server.api_url(), secret=secret) as connection:
        with pytest.raises(dbapi.AuthenticationError, match="secret") as caught:
            connection.cursor().execute("SELECT 1")

    assert caught.value.status == 401


def test_wrong_path_raises_with_hint(server: LiveServer) -> None:
    url = f"http://{server.host}:{server.port}/acme/api"
    with dbapi.connect(url, secret=SECRET) as connection:
        with pytest.raises(dbapi.OperationalError, match="TENANT/api/db"):
            connection.cursor().execute("SELECT 1")


def test_unreachable_server_raises_network_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with dbapi.connect(f"http://127.0.0.1:{port}/acme/api/db", timeout=2) as connection:
        with pytest.raises(dbapi.NetworkError, match="reachable"):
            connection.cursor().execute("SELECT 1")


@pytest.mark.parametrize("url", ["ftp://host/acme/api/db", "127.0.0.1:8787/acme/api/db", "http:///x"])
def test_invalid_api_url_raises(url: str) -> None:
    with pytest.raises(dbapi.InterfaceError, match="invalid API URL"):
        dbapi.connect(url)
