"""Async sessions: expire_on_commit, clear errors for implicit loads."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.orm import selectinload

from dorm_sqlalchemy import AsyncLazyLoadError, Dorm
from tests.models import Author, Base, Book, DEFERRED_FOREIGN_KEY_SCHEMA


@pytest.fixture
async def dorm(make_dorm):
    dorm = make_dorm()
    Base.metadata.create_all(dorm.engine("acme"))
    yield dorm
    await dorm.aclose()


async def test_attributes_readable_after_commit(dorm: Dorm) -> None:
    async with dorm.async_session("acme") as session:
        author = Author(name="Octavia")
        session.add(author)
        await session.commit()

        assert author.name == "Octavia"
        assert author.id == 1


async def test_expire_on_commit_can_be_turned_on(dorm: Dorm) -> None:
    async with dorm.async_session("acme", expire_on_commit=True) as session:
        assert session.sync_session.expire_on_commit is True


async def test_unloaded_relationship_raises_clear_error(dorm: Dorm) -> None:
    async with dorm.async_session("acme") as session:
        session.add(Author(id=1, name="Octavia", books=[Book(title="Kindred")]))
        await session.commit()

    async with dorm.async_session("acme") as session:
        author = (await session.execute(select(Author))).scalar_one()
        with pytest.raises(AsyncLazyLoadError) as raised:
            author.books

    message = str(raised.value)
    assert "Author" in message
    assert "selectinload" in message
    assert isinstance(raised.value, MissingGreenlet)


async def test_loaded_many_to_one_needs_no_io(dorm: Dorm) -> None:
    async with dorm.async_session("acme") as session, session.begin():
        session.add(Book(id=1, title="Dune", author=Author(id=1, name="Herbert")))

    async with dorm.async_session("acme") as session:
        author = await session.get(Author, 1)
        book = await session.get(Book, 1)

        assert book.author is author


async def test_expired_attribute_raises_clear_error(dorm: Dorm) -> None:
    async with dorm.async_session("acme") as session:
        author = Author(id=1, name="Octavia")
        session.add(author)
        await session.commit()
        session.expire(author)
        with pytest.raises(AsyncLazyLoadError, match="expired or deferred"):
            author.name


async def test_eager_and_awaitable_loads_work(dorm: Dorm) -> None:
    async with dorm.async_session("acme") as session:
        session.add(Author(id=1, name="Octavia", books=[Book(title="Kindred")]))
        await session.commit()

    async with dorm.async_session("acme") as session:
        author = (await session.execute(select(Author).options(selectinload(Author.books)))).scalar_one()
        assert [book.title for book in author.books] == ["Kindred"]

    async with dorm.async_session("acme") as session:
        author = await session.get(Author, 1)
        books = await author.awaitable_attrs.books
        assert len(books) == 1


async def test_routed_async_session_expire_on_commit_default(dorm: Dorm) -> None:
    Session = dorm.async_sessionmaker()
    async with dorm.tenant("acme"), Session() as session:
        author = Author(name="Le Guin")
        session.add(author)
        await session.commit()
        assert author.name == "Le Guin"


async def test_async_session_rollback(dorm: Dorm) -> None:
    async with dorm.async_session("acme") as session:
        session.add(Author(id=1, name="rolled back"))
        await session.flush()
        await session.rollback()

    cursor = await dorm.aexec("acme", "SELECT count(*) FROM authors")
    assert await cursor.scalar() == 0


def test_sync_session_lazy_load_still_works(make_dorm) -> None:
    dorm = make_dorm()
    Base.metadata.create_all(dorm.engine("acme"))
    with dorm.session("acme") as session, session.begin():
        session.add(Author(id=1, name="Octavia", books=[Book(title="Kindred")]))
    with dorm.session("acme") as session:
        assert len(session.get(Author, 1).books) == 1


async def test_first_open_does_not_block_loop(make_dorm) -> None:
    import asyncio

    slow = (
        "CREATE TABLE numbers AS WITH RECURSIVE n(i) AS "
        "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400000) SELECT i FROM n"
    )
    dorm = make_dorm(migrations={1: [slow]})
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.002)
            ticks += 1

    task = asyncio.create_task(ticker())
    async with dorm.async_session("acme") as session:
        count = (await session.execute(select(func.count()).select_from(text("numbers")))).scalar()
    task.cancel()
    await dorm.aclose()

    assert count == 400000
    assert ticks >= 5


async def test_async_session_with_begin_mode(make_dorm) -> None:
    dorm = make_dorm()
    async with dorm.async_session("acme", begin="deferred") as session:
        assert (await session.execute(text("SELECT 1"))).scalar() == 1
    await dorm.aclose()


async def test_drop_inside_event_loop_after_async_use(make_dorm) -> None:
    dorm = make_dorm()
    async with dorm.async_session("acme") as session:
        assert (await session.execute(text("SELECT 1"))).scalar() == 1

    dorm.drop("acme")

    assert not dorm.exists("acme")
    assert "acme" not in dorm._engines
    await dorm.aclose()


async def test_failed_async_commit_releases_write_lock(make_dorm) -> None:
    from sqlalchemy.exc import IntegrityError

    dorm = make_dorm(busy_timeout=0.2)
    for statement in DEFERRED_FOREIGN_KEY_SCHEMA:
        dorm.exec("acme", statement)
    async with dorm.async_session("acme") as session:
        await session.execute(text("INSERT INTO child VALUES (1, 99)"))
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):
            await session.commit()

    async with dorm.async_session("acme") as session:
        await session.execute(text("INSERT INTO parent VALUES (1)"))
        await session.commit()

    assert dorm.exec("acme", "SELECT count(*) FROM parent").scalar() == 1
    await dorm.aclose()


async def test_routed_async_factory_takes_begin_mode(make_dorm) -> None:
    dorm = make_dorm()
    factory = dorm.async_sessionmaker(begin="deferred")
    async with dorm.tenant("acme"):
        async with factory() as session:
            assert (await session.execute(text("SELECT 1"))).scalar() == 1
            connection = await session.connection()
            engine = connection.engine

    assert engine.sync_engine._connection_cls.__name__ == "ConnectionBeginDeferred"
    await dorm.aclose()
