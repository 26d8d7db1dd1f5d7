"""Server-side cursors of the dorm+http dialect: rows read from /query/stream as they arrive."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, exc, func, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from dorm_sqlalchemy.dialects import dbapi

from .conftest import SECRET, LiveServer

RAW_ROW_LIMIT = 10_000  # ServerLimits.max_result_rows, the default of /query/raw


def fill(engine: Engine, rows: int, width: int = 10) -> None:
    """Create table ``big`` with ``rows`` rows of ``width``-character text, in one statement."""
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE big (id INTEGER PRIMARY KEY, body TEXT, data BLOB)")
        connection.execute(
            text(
                "INSERT INTO big (id, body, data) "
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows) "
                "SELECT i, printf('%0' || :width || 'd', i), randomblob(8) FROM n"
            ),
            {"rows": rows, "width": width},
        )


def test_plain_execution_stops_at_raw_limit(engine: Engine) -> None:
    fill(engine, RAW_ROW_LIMIT + 1)

    with engine.connect() as connection:
        with pytest.raises(exc.OperationalError, match="/query/stream"):
            connection.execute(text("SELECT id FROM big")).all()


def test_stream_results_reads_past_raw_limit(engine: Engine) -> None:
    fill(engine, RAW_ROW_LIMIT + 1)

    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True).execute(
            text("SELECT id, body, data FROM big ORDER BY id")
        )
        rows = result.all()

    assert len(rows) == RAW_ROW_LIMIT + 1
    assert rows[-1].id == RAW_ROW_LIMIT + 1
    assert isinstance(rows[-1].data, bytes)


def test_stream_results_equals_local_engine(engine: Engine, local_engine: Engine) -> None:
    fill(engine, 1200)
    query = text("SELECT id, body, data, id * 2.5 AS real_value FROM big ORDER BY id")

    with engine.connect() as connection:
        remote_rows = connection.execution_options(stream_results=True).execute(query).all()
    with local_engine.connect() as connection:
        local_rows = connection.execute(query).all()

    assert remote_rows == local_rows


def test_yield_per_partitions_past_raw_limit(engine: Engine) -> None:
    fill(engine, RAW_ROW_LIMIT + 500)

    with engine.connect() as connection:
        result = connection.execution_options(yield_per=4000).execute(text("SELECT id FROM big"))
        sizes = [len(partition) for partition in result.partitions(4000)]

    assert sizes == [4000, 4000, 2500]


class Base(DeclarativeBase):
    pass


class Big(Base):
    __tablename__ = "big"

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    data: Mapped[bytes]


def test_orm_yield_per_reads_all_objects(engine: Engine) -> None:
    fill(engine, RAW_ROW_LIMIT + 5)

    with Session(engine) as session:
        total = sum(1 for _ in session.scalars(select(Big).execution_options(yield_per=500)))
        expected = session.scalar(select(func.count()).select_from(Big))

    assert total == RAW_ROW_LIMIT + 5
    assert expected == total


def test_stream_error_before_first_row_raises(engine: Engine) -> None:
    with engine.connect() as connection:
        with pytest.raises(exc.OperationalError, match="no such table"):
            connection.execution_options(stream_results=True).execute(text("SELECT * FROM missing"))


def test_streamed_returning_commits_at_end(engine: Engine, local_engine: Engine) -> None:
    fill(engine, 3)

    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True).execute(
            text("UPDATE big SET body = 'x' RETURNING id")
        )
        updated = result.all()
        connection.commit()
    with local_engine.connect() as connection:
        bodies = connection.execute(text("SELECT DISTINCT body FROM big")).scalars().all()

    assert len(updated) == 3
    assert bodies == ["x"]


@pytest.fixture
def streaming_cursor(server: LiveServer) -> Iterator[dbapi.Cursor]:
    with dbapi.connect(server.api_url(), secret=SECRET) as connection:
        yield connection.cursor(server_side=True)


def test_closing_stream_early_rolls_back_write(
    engine: Engine, local_engine: Engine, streaming_cursor: dbapi.Cursor
) -> None:
    fill(engine, 2000)

    streaming_cursor.execute("UPDATE big SET body = 'x' RETURNING id")
    first = streaming_cursor.fetchone()
    streaming_cursor.close()
    # The write belongs to the connection's transaction until it ends.
    streaming_cursor.connection.rollback()
    with local_engine.connect() as connection:
        changed = connection.execute(text("SELECT count(*) FROM big WHERE body = 'x'")).scalar_one()

    assert first is not None
    assert changed == 0


def test_streaming_cursor_sets_rowcount_at_end(engine: Engine, streaming_cursor: dbapi.Cursor) -> None:
    fill(engine, 5)

    streaming_cursor.execute("DELETE FROM big WHERE id > 2 RETURNING id")
    rows = streaming_cursor.fetchall()

    assert sorted(rows) == [(3,), (4,), (5,)]
    assert streaming_cursor.rowcount == 3


def test_stream_memory_stays_bounded(engine: Engine) -> None:
    rows, width = 60_000, 300
    fill(engine, rows, width)
    # Holding every row would take well over rows * width = 18 MB.
    limit = 6 * 1024 * 1024

    gc.collect()
    tracemalloc.start()
    try:
        count = 0
        with engine.connect() as connection:
            result = connection.execution_options(stream_results=True, max_row_buffer=200).execute(
                text("SELECT id, body FROM big")
            )
            for _ in result:
                count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count == rows
    assert peak < limit, f"peak traced memory {peak} bytes"
