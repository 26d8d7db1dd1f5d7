"""dorm+http_async: create_async_engine and AsyncSession against a real server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Engine, Integer, String, exc, insert, pool, select, text
from sqlalchemy.dialects import registry
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dorm_sqlalchemy.dialects import dbapi
from dorm_sqlalchemy.dialects.http_async import AsyncAdapt_dorm_ss_cursor

from .conftest import SECRET, TENANT, LiveServer

# The distribution declares these as entry points; the tests must not depend
# on how the package was installed.
registry.register("dorm.http_async", "dorm_sqlalchemy.dialects.http_async", "DormHTTPAsyncDialect")
registry.register("dorm.https_async", "dorm_sqlalchemy.dialects.http_async", "DormHTTPSAsyncDialect")

STREAMED_ROWS = 5_000


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(String)


def async_url(server: LiveServer) -> str:
    return f"dorm+http_async://:{SECRET}@{server.host}:{server.port}/{TENANT}/api/db"


@pytest.fixture
async def async_engine(server: LiveServer) -> AsyncIterator[AsyncEngine]:
    """A dorm+http_async engine on tenant :data:`TENANT`, with table ``notes``; disposed afterwards."""
    engine = create_async_engine(async_url(server))
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


def count_notes(local_engine: Engine) -> int:
    with local_engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM notes")).scalar_one()


# -- the dialect ---------------------------------------------------------------------


def test_async_dialect_uses_async_pool() -> None:
    engine = create_async_engine("dorm+http_async://127.0.0.1:9/acme/api/db")

    assert engine.dialect.is_async is True
    assert isinstance(engine.sync_engine.pool, pool.AsyncAdaptedQueuePool)


@pytest.mark.parametrize(
    ("url", "api_url"),
    [
        ("dorm+http_async://:k@db.example.com:8787/acme/api/db", "http://db.example.com:8787/acme/api/db"),
        ("dorm+https_async://:k@db.example.com/acme/api/db", "https://db.example.com/acme/api/db"),
    ],
)
def test_async_url_maps_to_api_url(url: str, api_url: str) -> None:
    engine = create_async_engine(url)

    _, options = engine.dialect.create_connect_args(engine.url)

    assert options["url"] == api_url
    assert options["secret"] == "k"


# -- Core ----------------------------------------------------------------------------


async def test_async_select(async_engine: AsyncEngine) -> None:
    async with async_engine.connect() as connection:
        value = await connection.scalar(text("SELECT 40 + 2"))

    assert value == 42


async def test_async_insert_returning(async_engine: AsyncEngine, local_engine: Engine) -> None:
    async with async_engine.begin() as connection:
        result = await connection.execute(
            insert(Note).values(body="first").returning(Note.id, Note.body)
        )
        row = result.one()

    assert row.body == "first"
    assert isinstance(row.id, int)
    assert count_notes(local_engine) == 1


async def test_async_rollback_discards_insert(async_engine: AsyncEngine, local_engine: Engine) -> None:
    async with async_engine.connect() as connection:
        await connection.execute(insert(Note).values(body="gone"))
        await connection.rollback()

    assert count_notes(local_engine) == 0


async def test_async_isolation_levels(async_engine: AsyncEngine) -> None:
    async with async_engine.connect() as connection:
        default_level = await connection.get_isolation_level()
    async with async_engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        autocommit_level = await connection.get_isolation_level()

    assert default_level == "SERIALIZABLE"
    assert autocommit_level == "AUTOCOMMIT"


async def test_async_autocommit_keeps_write(async_engine: AsyncEngine, local_engine: Engine) -> None:
    async with async_engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(insert(Note).values(body="kept"))
        await connection.rollback()

    assert count_notes(local_engine) == 1


async def test_async_integrity_error_mapped(async_engine: AsyncEngine) -> None:
    async with async_engine.begin() as connection:
        await connection.execute(insert(Note).values(id=1, body="one"))

    async with async_engine.connect() as connection:
        with pytest.raises(exc.IntegrityError) as raised:
            await connection.execute(insert(Note).values(id=1, body="again"))

    assert isinstance(raised.value.orig, dbapi.IntegrityError)
    assert raised.value.orig.status == 409


async def test_async_statement_leaves_loop_free(async_engine: AsyncEngine) -> None:
    slow_query = text(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000000) "
        "SELECT count(*) FROM n"
    )
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    async with async_engine.connect() as connection:
        total = await connection.scalar(slow_query)
    ticker.cancel()

    assert total == 2_000_000
    assert ticks >= 5


# -- ORM -----------------------------------------------------------------------------


async def test_async_session_commit(async_engine: AsyncEngine, local_engine: Engine) -> None:
    async with AsyncSession(async_engine, expire_on_commit=False) as session:
        note = Note(body="saved")
        session.add(note)
        await session.commit()

    assert note.body == "saved"
    assert isinstance(note.id, int)
    assert count_notes(local_engine) == 1


async def test_async_session_rollback_after_flush(
    async_engine: AsyncEngine, local_engine: Engine
) -> None:
    async with AsyncSession(async_engine) as session:
        session.add_all([Note(body="a"), Note(body="b")])
        await session.flush()
        flushed = await session.scalar(select(Note.id).where(Note.body == "b"))
        await session.rollback()

    assert flushed is not None
    assert count_notes(local_engine) == 0


# -- streaming -----------------------------------------------------------------------


async def fill_notes(engine: AsyncEngine, rows: int) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO notes (id, body) "
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows) "
                "SELECT i, printf('note %d', i) FROM n"
            ),
            {"rows": rows},
        )


async def test_async_stream_reads_all_rows(async_engine: AsyncEngine) -> None:
    await fill_notes(async_engine, STREAMED_ROWS)

    async with async_engine.connect() as connection:
        result = await connection.stream(select(Note.id, Note.body).order_by(Note.id))
        cursor = result._real_result.cursor
        ids = [row.id async for row in result]

    assert isinstance(cursor, AsyncAdapt_dorm_ss_cursor)
    assert len(ids) == STREAMED_ROWS
    assert ids == list(range(1, STREAMED_ROWS + 1))


async def test_async_stream_partitions(async_engine: AsyncEngine) -> None:
    await fill_notes(async_engine, STREAMED_ROWS)

    async with async_engine.connect() as connection:
        result = await connection.stream(select(Note.id))
        sizes = [len(partition) async for partition in result.partitions(2_000)]

    assert sizes == [2_000, 2_000, 1_000]


async def test_async_stream_closed_early(async_engine: AsyncEngine) -> None:
    await fill_notes(async_engine, STREAMED_ROWS)

    async with async_engine.connect() as connection:
        result = await connection.stream(select(Note.id).order_by(Note.id))
        first = await result.fetchmany(10)
        await result.close()
        total = await connection.scalar(text("SELECT count(*) FROM notes"))

    assert [row.id for row in first] == list(range(1, 11))
    assert total == STREAMED_ROWS


async def test_async_orm_stream_scalars(async_engine: AsyncEngine) -> None:
    await fill_notes(async_engine, STREAMED_ROWS)

    async with AsyncSession(async_engine) as session:
        result = await session.stream_scalars(select(Note).execution_options(yield_per=500))
        bodies = [note.body async for note in result]

    assert len(bodies) == STREAMED_ROWS
    assert bodies[-1] == f"note {STREAMED_ROWS}"


# -- shutdown ------------------------------------------------------------------------


def test_async_dispose_no_resource_warning(server: LiveServer) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio

        from sqlalchemy import text
        from sqlalchemy.dialects import registry
        from sqlalchemy.ext.asyncio import create_async_engine

        registry.register(
            "dorm.http_async", "dorm_sqlalchemy.dialects.http_async", "DormHTTPAsyncDialect"
        )

        async def main():
            engine = create_async_engine({async_url(server)!r})
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            async with engine.begin() as connection:
                result = await connection.stream(text("SELECT 1 UNION ALL SELECT 2"))
                await result.fetchmany(1)
            await engine.dispose()

        asyncio.run(main())
        """
    )

    completed = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert completed.returncode == 0, completed.stderr
    assert "ResourceWarning" not in completed.stderr


async def test_waiting_transactions_leave_the_lock_holder_a_thread(
    async_engine: AsyncEngine,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    # A default executor smaller than the number of transactions: those
    # waiting for the tenant's write lock must not take the holder's thread.
    executor = ThreadPoolExecutor(max_workers=2)
    asyncio.get_running_loop().set_default_executor(executor)
    async with async_engine.begin() as connection:
        await connection.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)"))
        await connection.execute(text("INSERT INTO counter VALUES (1, 0)"))

    async def increment() -> None:
        async with async_engine.begin() as connection:
            n = (await connection.execute(text("SELECT n FROM counter"))).scalar_one()
            await connection.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})

    await asyncio.wait_for(asyncio.gather(*[increment() for _ in range(6)]), timeout=4)
    async with async_engine.connect() as connection:
        total = (await connection.execute(text("SELECT n FROM counter"))).scalar_one()

    assert total == 6
