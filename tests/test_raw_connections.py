"""Raw sqlite3 connections of a tenant: the blocking and the non-blocking checkout."""

from __future__ import annotations

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


def test_idle_raw_connection_none_while_all_are_checked_out(dorm: Dorm) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")

    with dorm.raw_connection("acme"), dorm.idle_raw_connection("acme") as connection:
        assert connection is None


def test_idle_raw_connection_goes_back_clean(dorm: Dorm) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")
    with dorm.idle_raw_connection("acme") as connection:
        assert connection is not None
        connection.set_authorizer(lambda *args: 1)

    assert dorm.exec("acme", "SELECT count(*) FROM t").scalar() == 0
