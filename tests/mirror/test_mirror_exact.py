"""The aggregate holds exactly the committed rows of every tenant."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, text, update
from sqlalchemy.exc import IntegrityError

from dorm_sqlalchemy import Dorm, MirrorError
from tests.mirror.helpers import aggregate_rows, tenant_rows
from tests.models import Author, Base, Book, Note

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class ItemBase(DeclarativeBase):
    pass


class Item(ItemBase):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    qty: Mapped[int]


@pytest.fixture
def aggregate_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/aggregate.db"


@pytest.fixture
def mirrored(make_dorm, aggregate_url: str) -> Dorm:
    return make_dorm(mirror=aggregate_url)


def test_bulk_statements_mirrored(mirrored: Dorm, aggregate_url: str) -> None:
    ItemBase.metadata.create_all(mirrored.engine("acme"))
    with mirrored.session("acme") as session, session.begin():
        session.add_all([Item(id=1, qty=1), Item(id=2, qty=2)])
    with mirrored.session("acme") as session, session.begin():
        session.execute(update(Item).values(qty=0))
        session.execute(insert(Item).values(id=3, qty=3))
        session.execute(delete(Item).where(Item.id == 2))
    mirrored.mirror.flush(10)

    assert tenant_rows(mirrored, "acme", "items") == [("acme", 1, 0), ("acme", 3, 3)]
    assert aggregate_rows(aggregate_url, "items") == [("acme", 1, 0), ("acme", 3, 3)]


def test_orm_bulk_insert_of_many_rows(mirrored: Dorm, aggregate_url: str) -> None:
    ItemBase.metadata.create_all(mirrored.engine("acme"))
    with mirrored.session("acme") as session, session.begin():
        session.execute(insert(Item), [{"id": n, "qty": n * 2} for n in range(1, 5001)])
    mirrored.mirror.flush(30)

    rows = aggregate_rows(aggregate_url, "items")
    assert len(rows) == 5000
    assert rows == tenant_rows(mirrored, "acme", "items")


def test_rollback_at_every_level(mirrored: Dorm, aggregate_url: str) -> None:
    ItemBase.metadata.create_all(mirrored.engine("acme"))
    engine = mirrored.engine("acme")

    # Outer transaction rolled back after a flush.
    with mirrored.session("acme") as session:
        session.add(Item(id=100, qty=1))
        session.flush()
        session.rollback()

    # Savepoint rolled back inside a committed transaction.
    with mirrored.session("acme") as session, session.begin():
        session.add(Item(id=1, qty=1))
        nested = session.begin_nested()
        session.add(Item(id=101, qty=1))
        session.flush()
        nested.rollback()
        session.add(Item(id=2, qty=2))

    # Two savepoint levels: the inner rolls back, the outer commits.
    with engine.begin() as connection:
        outer = connection.begin_nested()
        connection.exec_driver_sql("INSERT INTO items VALUES (3, 3)")
        inner = connection.begin_nested()
        connection.exec_driver_sql("INSERT INTO items VALUES (102, 1)")
        inner.rollback()
        outer.commit()

    # Core transaction aborted by an exception.
    with pytest.raises(RuntimeError):
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO items VALUES (103, 1)")
            raise RuntimeError("abort")

    # Failed statement in raw SQL: nothing of it lands.
    with pytest.raises(IntegrityError):
        mirrored.exec("acme", "INSERT INTO items VALUES (1, 9), (104, 1)")

    # Async session rolled back.
    import asyncio

    async def async_rollback() -> None:
        async with mirrored.async_session("acme") as session:
            session.add(Item(id=105, qty=1))
            await session.flush()
            await session.rollback()
        for entry in mirrored._engines._entries.values():
            if entry._async_engine is not None:
                await entry._async_engine.dispose()

    asyncio.run(async_rollback())
    mirrored.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "items") == [
        ("acme", 1, 1),
        ("acme", 2, 2),
        ("acme", 3, 3),
    ]


def test_generated_values_identical(mirrored: Dorm, aggregate_url: str) -> None:
    mirrored.exec(
        "acme",
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "created TEXT DEFAULT CURRENT_TIMESTAMP, token INTEGER DEFAULT (random()), "
        "payload BLOB, big INTEGER, ratio REAL)",
    )
    for _ in range(20):
        mirrored.exec(
            "acme",
            "INSERT INTO events (payload, big, ratio) VALUES (randomblob(16), ?, ?)",
            2**62 + 1,
            0.1 + 0.2,
        )
    mirrored.mirror.flush(10)

    expected = tenant_rows(mirrored, "acme", "events")
    actual = aggregate_rows(aggregate_url, "events")
    assert actual == expected
    assert actual[0][5] == 2**62 + 1
    assert isinstance(actual[0][4], bytes)


def test_every_write_path_mirrored(mirrored: Dorm, aggregate_url: str) -> None:
    Base.metadata.create_all(mirrored.engine("acme"))
    with mirrored.session("acme") as session, session.begin():
        session.add(Note(id=1, body="orm"))
    with mirrored.engine("acme").begin() as connection:
        connection.execute(Note.__table__.insert().values(id=2, body="core"))
    mirrored.exec("acme", "INSERT INTO notes VALUES (3, 'raw')")
    Session = mirrored.sessionmaker()
    with mirrored.tenant("acme"), Session() as session, session.begin():
        session.add(Note(id=4, body="routed"))

    import asyncio

    async def write_async() -> None:
        async with mirrored.async_session("acme") as session:
            session.add(Note(id=5, body="async"))
            await session.commit()
        await mirrored._engines.get("acme").async_engine.dispose()

    asyncio.run(write_async())
    mirrored.mirror.flush(10)

    bodies = [row[2] for row in aggregate_rows(aggregate_url, "notes")]
    assert bodies == ["orm", "core", "raw", "routed", "async"]


def test_writes_of_lost_connections_mirrored(mirrored: Dorm, aggregate_url: str) -> None:
    Base.metadata.create_all(mirrored.engine("acme"))
    engine = mirrored.engine("acme")
    with engine.connect() as connection:
        connection.execute(Note.__table__.insert().values(id=1, body="then invalidated"))
        connection.commit()
        connection.invalidate()
    with engine.connect() as connection:
        connection.execute(Note.__table__.insert().values(id=2, body="then detached"))
        connection.commit()
        connection.connection.detach()
    mirrored.mirror.flush(10)

    bodies = [row[2] for row in aggregate_rows(aggregate_url, "notes")]
    assert bodies == ["then invalidated", "then detached"]


def test_updates_and_deletes_in_order(mirrored: Dorm, aggregate_url: str) -> None:
    mirrored.exec("acme", "CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)")
    mirrored.mirror.flush(10)
    for value in range(50):
        mirrored.exec(
            "acme",
            "INSERT INTO kv VALUES ('a', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            value,
        )
    mirrored.exec("acme", "INSERT INTO kv VALUES ('gone', 1)")
    mirrored.exec("acme", "DELETE FROM kv WHERE k = 'gone'")
    mirrored.exec("acme", "INSERT INTO kv VALUES ('back', 1)")
    mirrored.exec("acme", "DELETE FROM kv WHERE k = 'back'")
    mirrored.exec("acme", "INSERT INTO kv VALUES ('back', 2)")
    mirrored.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "kv") == [("acme", "a", 49), ("acme", "back", 2)]


def test_primary_key_change_moves_row(mirrored: Dorm, aggregate_url: str) -> None:
    mirrored.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    mirrored.exec("acme", "INSERT INTO t VALUES (1, 'x')")
    mirrored.mirror.flush(10)
    mirrored.exec("acme", "UPDATE t SET id = 7 WHERE id = 1")
    mirrored.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "t") == [("acme", 7, "x")]


def test_replace_removes_conflicting_row(mirrored: Dorm, aggregate_url: str) -> None:
    mirrored.exec("acme", "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE)")
    mirrored.exec("acme", "INSERT INTO users VALUES (1, 'a@x'), (2, 'b@x')")
    mirrored.mirror.flush(10)
    mirrored.exec("acme", "INSERT OR REPLACE INTO users VALUES (3, 'a@x')")
    mirrored.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "users") == [("acme", 2, "b@x"), ("acme", 3, "a@x")]


def test_cascade_delete_mirrored(mirrored: Dorm, aggregate_url: str) -> None:
    Base.metadata.create_all(mirrored.engine("acme"))
    with mirrored.session("acme") as session, session.begin():
        author = Author(id=1, name="a")
        session.add_all([author, Book(id=1, title="b", author=author)])
    mirrored.exec("acme", "DELETE FROM authors")
    mirrored.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "books") == []
    assert aggregate_rows(aggregate_url, "authors") == []


def test_table_without_primary_key(mirrored: Dorm, aggregate_url: str) -> None:
    mirrored.exec("acme", "CREATE TABLE log (message TEXT)")
    mirrored.exec("acme", "INSERT INTO log VALUES ('one'), ('one'), ('two')")
    mirrored.exec("acme", "DELETE FROM log WHERE rowid = 2")
    mirrored.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "log") == [("acme", 1, "one"), ("acme", 3, "two")]


def test_without_returning_support(make_dorm, aggregate_url: str) -> None:
    dorm = make_dorm(mirror=aggregate_url)
    engine = dorm.engine("acme")
    engine.dialect.insert_returning = False
    engine.dialect.update_returning = False
    engine.dialect.delete_returning = False
    ItemBase.metadata.create_all(engine)
    with dorm.session("acme") as session, session.begin():
        session.add_all([Item(qty=5), Item(qty=6)])
    dorm.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "items") == [("acme", 1, 5), ("acme", 2, 6)]


def test_many_tenants_tagged(mirrored: Dorm, aggregate_url: str) -> None:
    for tenant in ["acme", "globex", "initech"]:
        Base.metadata.create_all(mirrored.engine(tenant))
        with mirrored.session(tenant) as session, session.begin():
            session.add(Note(id=1, body=tenant))
    mirrored.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "notes") == [
        ("acme", 1, "acme"),
        ("globex", 1, "globex"),
        ("initech", 1, "initech"),
    ]


def test_two_aggregates(make_dorm, tmp_path: Path) -> None:
    urls = [f"sqlite:///{tmp_path}/one.db", f"sqlite:///{tmp_path}/two.db"]
    dorm = make_dorm(mirror=urls)
    dorm.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    dorm.exec("acme", "INSERT INTO t VALUES (1), (2)")
    dorm.mirror.flush(10)

    assert aggregate_rows(urls[0], "t") == [("acme", 1), ("acme", 2)]
    assert aggregate_rows(urls[1], "t") == [("acme", 1), ("acme", 2)]


def test_excluded_table_not_mirrored(make_dorm, aggregate_url: str) -> None:
    dorm = make_dorm(mirror=aggregate_url, mirror_exclude=["secrets"])
    dorm.exec("acme", "CREATE TABLE secrets (id INTEGER PRIMARY KEY, value TEXT)")
    dorm.exec("acme", "CREATE TABLE public (id INTEGER PRIMARY KEY)")
    dorm.exec("acme", "INSERT INTO secrets VALUES (1, 'x')")
    dorm.exec("acme", "INSERT INTO public VALUES (1)")
    dorm.mirror.flush(10)

    aggregate = sqlite3.connect(aggregate_url.removeprefix("sqlite:///"))
    tables = {
        name for (name,) in aggregate.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
    }
    aggregate.close()
    assert "public" in tables
    assert "secrets" not in tables


def test_custom_tenant_column(make_dorm, aggregate_url: str) -> None:
    dorm = make_dorm(mirror=aggregate_url, mirror_tenant_column="account")
    dorm.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    dorm.exec("acme", "INSERT INTO t VALUES (1)")
    dorm.mirror.flush(10)

    aggregate = sqlite3.connect(aggregate_url.removeprefix("sqlite:///"))
    columns = [row[1] for row in aggregate.execute("PRAGMA table_info(t)")]
    aggregate.close()
    assert columns == ["account", "id"]


def test_tenant_column_clash_reported(mirrored: Dorm) -> None:
    mirrored.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, tenant TEXT)")
    mirrored.exec("acme", "INSERT INTO t VALUES (1, 'x')")
    with pytest.raises(MirrorError, match="mirror_tenant_column"):
        mirrored.mirror.flush(1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mirror": "aggregate.db"}, "invalid mirror URL"),
        ({"mirror": ["sqlite:///a.db", 7]}, "invalid mirror URL"),
        ({"mirror": "sqlite:///a.db", "mirror_tenant_column": "bad name"}, "mirror_tenant_column"),
    ],
)
def test_invalid_mirror_options(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Dorm(root=tmp_path, **options)


def test_dropped_tenant_leaves_aggregate(mirrored: Dorm, aggregate_url: str) -> None:
    for tenant in ["acme", "globex"]:
        mirrored.exec(tenant, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
        mirrored.exec(tenant, "INSERT INTO t VALUES (1)")
    mirrored.mirror.flush(10)
    mirrored.drop("globex")
    mirrored.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "t") == [("acme", 1)]


def test_rebuild_repairs_aggregate(mirrored: Dorm, aggregate_url: str) -> None:
    mirrored.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    mirrored.exec("acme", "INSERT INTO t VALUES (1, 'right')")
    mirrored.mirror.flush(10)
    damage = sqlite3.connect(aggregate_url.removeprefix("sqlite:///"))
    damage.execute("UPDATE t SET v = 'wrong'")
    damage.execute("INSERT INTO t VALUES ('ghost', 1, 'x')")
    damage.commit()
    damage.close()

    mirrored.mirror.rebuild(timeout=10)

    assert aggregate_rows(aggregate_url, "t") == [("acme", 1, "right")]


def test_internal_tables_not_mirrored(mirrored: Dorm, aggregate_url: str) -> None:
    mirrored.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT)")
    mirrored.exec("acme", "INSERT INTO t DEFAULT VALUES")
    mirrored.mirror.flush(10)

    aggregate = sqlite3.connect(aggregate_url.removeprefix("sqlite:///"))
    tables = {
        name for (name,) in aggregate.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
    }
    aggregate.close()
    assert tables == {"t", "_dorm_mirror_state"}


def test_more_tenants_than_attach_slots(mirrored: Dorm, aggregate_url: str) -> None:
    # SQLite attaches at most 10 databases to one connection by default, so
    # the worker detaches and attaches tenants as it goes.
    tenants = [f"shop-{index:02d}" for index in range(14)]
    for round_number in range(3):
        for tenant in tenants:
            if round_number == 0:
                mirrored.exec(tenant, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
            mirrored.exec(tenant, "INSERT INTO t (v) VALUES (?)", round_number)
        mirrored.mirror.flush(20)

    rows = aggregate_rows(aggregate_url, "t", order="1, 2")
    expected = [(tenant, n + 1, n) for tenant in tenants for n in range(3)]
    assert rows == expected


def test_recreated_tenant_mirrors_new_rows(mirrored: Dorm, aggregate_url: str) -> None:
    mirrored.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    mirrored.exec("acme", "INSERT INTO t VALUES (1, 'old'), (2, 'old')")
    mirrored.mirror.flush(10)
    mirrored.drop("acme")
    mirrored.mirror.flush(10)
    mirrored.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    mirrored.exec("acme", "INSERT INTO t VALUES (1, 'new')")
    mirrored.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "t") == [("acme", 1, "new")]
