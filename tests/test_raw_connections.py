"""Raw sqlite3 connections of a tenant: the blocking and the non-blocking checkout."""

from __future__ import annotations

import sqlite3

import pytest

from dorm_sqlalchemy import Dorm


def test_raw_connection_is_configured(dorm: Dorm) -> None:
    with dorm.raw_connection("acme") as connection:
        assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_idle_raw_connection_never_opens_a_tenant(dorm: Dorm) -> None:
    with dorm.idle_raw_connection("acme") as connection:
        assert connection is None

    assert not dorm.exists("acme")


def test_idle_raw_connection_of_an_open_tenant(dorm: Dorm) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")

    with dorm.idle_raw_connection("ACME") as connection:
        assert connection is not None
        assert connection.execute("SELECT count(*) FROM t").fetchone()[0] == 0


def test_idle_connection_none_when_busy(dorm: Dorm) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")

    with dorm.raw_connection("acme"), dorm.idle_raw_connection("acme") as connection:
        assert connection is None


def test_idle_raw_connection_goes_back_clean(dorm: Dorm) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")
    with dorm.idle_raw_connection("acme") as connection:
        assert connection is not None
        connection.set_authorizer(lambda *args: 1)

    assert dorm.exec("acme", "SELECT count(*) FROM t").scalar() == 0


class CountingReadAuthorizer:
    """Allows reads only and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, action: int, *arguments: object) -> int:
        self.calls += 1
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ):
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY


def _read_with(dorm: Dorm, authorizer: CountingReadAuthorizer) -> list[tuple[object, ...]]:
    with dorm.idle_raw_connection("acme", authorizer=authorizer) as connection:
        assert connection is not None
        return connection.execute("SELECT x FROM t").fetchall()


def test_reader_keeps_its_prepared_statements(dorm: Dorm) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")
    authorizer = CountingReadAuthorizer()
    _read_with(dorm, authorizer)
    calls_after_first_read = authorizer.calls

    _read_with(dorm, authorizer)

    assert calls_after_first_read > 0
    assert authorizer.calls == calls_after_first_read


def test_reader_denies_writes(dorm: Dorm) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")
    with dorm.idle_raw_connection("acme", authorizer=CountingReadAuthorizer()) as connection:
        assert connection is not None
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            connection.execute("INSERT INTO t VALUES (1)")

    assert dorm.exec("acme", "SELECT count(*) FROM t").scalar() == 0


def test_exec_after_a_reader_can_write(dorm: Dorm) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")
    _read_with(dorm, CountingReadAuthorizer())

    dorm.exec("acme", "INSERT INTO t VALUES (1)")

    assert dorm.exec("acme", "SELECT count(*) FROM t").scalar() == 1


def test_readers_closed_when_the_tenant_is_dropped(dorm: Dorm) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")
    with dorm.idle_raw_connection("acme", authorizer=CountingReadAuthorizer()) as connection:
        reader = connection

    dorm.drop("acme")

    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        reader.execute("SELECT 1")  # type: ignore[union-attr]
