"""Mirroring into a real PostgreSQL aggregate."""

from __future__ import annotations

import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    DateTime,
    LargeBinary,
    Numeric,
    String,
    create_engine,
    delete,
    insert,
    text,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import pytest

from dorm_sqlalchemy import MirrorError


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    qty: Mapped[int]


class Invoice(Base):
    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(primary_key=True)
    issued: Mapped[datetime.datetime] = mapped_column(DateTime)
    total: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    paid: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(String(50))
    scan: Mapped[bytes | None] = mapped_column(LargeBinary)
    big: Mapped[int | None]


def postgres_rows(url: str, query: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query))]
    finally:
        engine.dispose()


def test_bulk_statements_mirrored_to_postgres(make_dorm, postgres_url: str) -> None:
    dorm = make_dorm(mirror=postgres_url)
    Base.metadata.create_all(dorm.engine("acme"))
    with dorm.session("acme") as session, session.begin():
        session.add_all([Item(id=1, qty=1), Item(id=2, qty=2)])
    with dorm.session("acme") as session, session.begin():
        session.execute(update(Item).values(qty=0))
        session.execute(insert(Item).values(id=3, qty=3))
        session.execute(delete(Item).where(Item.id == 2))
    dorm.mirror.flush(20)

    assert postgres_rows(postgres_url, "SELECT tenant, id, qty FROM items ORDER BY id") == [
        ("acme", 1, 0),
        ("acme", 3, 3),
    ]


def test_typed_values_round_trip_to_postgres(make_dorm, postgres_url: str) -> None:
    dorm = make_dorm(mirror=postgres_url)
    Base.metadata.create_all(dorm.engine("acme"))
    issued = datetime.datetime(2024, 2, 29, 13, 45, 30, 123456)
    with dorm.session("acme") as session, session.begin():
        session.add(
            Invoice(
                id=1,
                issued=issued,
                total=Decimal("2328.60"),
                paid=True,
                note="it's",
                scan=b"\x00\xffbytes",
                big=2**62 + 1,
            )
        )
    dorm.mirror.flush(20)

    [row] = postgres_rows(
        postgres_url, "SELECT tenant, id, issued, total, paid, note, scan, big FROM invoices"
    )
    assert row == ("acme", 1, issued, Decimal("2328.60"), True, "it's", b"\x00\xffbytes", 2**62 + 1)


def test_postgres_down_then_back(make_dorm, postgres, postgres_url: str) -> None:
    dorm = make_dorm(mirror=postgres_url)
    dorm.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    dorm.exec("acme", "INSERT INTO t VALUES (1, 'before')")
    dorm.mirror.flush(20)

    postgres.stop()
    try:
        for n in range(2, 30):
            dorm.exec("acme", "INSERT INTO t VALUES (?, 'during')", n)
        with pytest.raises(MirrorError, match="acme"):
            dorm.mirror.flush(1)
        assert dorm.mirror.lag().pending > 0
    finally:
        postgres.start()
    dorm.mirror.flush(60)

    rows = postgres_rows(postgres_url, "SELECT id FROM t ORDER BY id")
    assert [row[0] for row in rows] == list(range(1, 30))


def test_awkward_names_and_json_to_postgres(make_dorm, postgres_url: str) -> None:
    # A % in a name must survive the drivers' %s parameter syntax.
    dorm = make_dorm(mirror=postgres_url)
    dorm.exec("acme", 'CREATE TABLE "50% off" (id INTEGER PRIMARY KEY, "rate %" REAL, doc JSON)')
    dorm.exec("acme", 'INSERT INTO "50% off" VALUES (1, 0.5, \'{"a": [1, 2]}\'), (2, NULL, NULL)')
    dorm.exec("acme", 'UPDATE "50% off" SET "rate %" = 0.25 WHERE id = 1')
    dorm.exec("acme", 'DELETE FROM "50% off" WHERE id = 2')
    dorm.mirror.flush(20)

    rows = postgres_rows(postgres_url, 'SELECT tenant, id, "rate %", doc FROM "50% off" ORDER BY id')
    assert rows == [("acme", 1, 0.25, {"a": [1, 2]})]
