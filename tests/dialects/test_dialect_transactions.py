"""dorm+http with interactive transactions: commit, rollback, SAVEPOINT, concurrency, expiry."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, Integer, String, exc, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from dorm_sqlalchemy.dialects import dbapi

from .conftest import SECRET, LiveServer


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(String)


@pytest.fixture
def schema(engine: Engine) -> Engine:
    with engine.begin() as connection:
        Base.metadata.create_all(connection)
    return engine


def _count(local_engine: Engine) -> int:
    with local_engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM notes")).scalar_one()


def test_default_isolation_is_serializable(engine: Engine) -> None:
    with engine.connect() as connection:
        assert connection.get_isolation_level() == "SERIALIZABLE"


def test_autocommit_isolation_available(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        assert connection.get_isolation_level() == "AUTOCOMMIT"


def test_session_rollback_after_flush(schema: Engine, local_engine: Engine) -> None:
    with Session(schema) as session:
        session.add_all([Note(body="a"), Note(body="b")])
        session.flush()
        assert session.scalar(select(Note.id).where(Note.body == "b")) is not None
        session.rollback()

    assert _count(local_engine) == 0


def test_session_commit_persists(schema: Engine, local_engine: Engine) -> None:
    with Session(schema) as session:
        session.add(Note(body="a"))
        session.commit()

    assert _count(local_engine) == 1


def test_begin_nested_rolled_back(schema: Engine, local_engine: Engine) -> None:
    with Session(schema) as session:
        session.add(Note(body="kept"))
        savepoint = session.begin_nested()
        session.add(Note(body="undone"))
        session.flush()
        savepoint.rollback()
        session.commit()

    with local_engine.connect() as connection:
        bodies = connection.execute(text("SELECT body FROM notes")).scalars().all()
    assert bodies == ["kept"]


def test_read_then_write_from_threads(schema: Engine, local_engine: Engine) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        for _ in range(25):
            try:
                with schema.begin() as connection:
                    count = connection.execute(text("SELECT count(*) FROM notes")).scalar_one()
                    connection.execute(
                        text("INSERT INTO notes (body) VALUES (:body)"), {"body": str(count)}
                    )
            except BaseException as error:  # noqa: BLE001 - collected for the assert
                errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert _count(local_engine) == 100
    with local_engine.connect() as connection:
        distinct = connection.execute(text("SELECT count(DISTINCT body) FROM notes")).scalar_one()
    assert distinct == 100


def test_crashed_client_lock_released(
    server: LiveServer, schema: Engine, local_engine: Engine
) -> None:
    crashed = httpx.Client(headers={"Authorization": f"Bearer {SECRET}"})
    begin = crashed.post(f"{server.api_url()}/transaction", json={"idle_timeout": 1})
    crashed.post(
        f"{server.api_url()}/query/raw",
        json={"sql": "INSERT INTO notes (body) VALUES ('lost')"},
        headers={"X-Dorm-Transaction": begin.json()["id"]},
    )
    crashed.close()

    started = time.monotonic()
    with schema.begin() as connection:
        connection.execute(text("INSERT INTO notes (body) VALUES ('next')"))

    assert begin.status_code == 201
    assert time.monotonic() - started < 4.5
    with local_engine.connect() as connection:
        bodies = connection.execute(text("SELECT body FROM notes")).scalars().all()
    assert bodies == ["next"]


def test_expired_transaction_is_disconnect(
    server: LiveServer, make_engine: Any, schema: Engine
) -> None:
    engine = make_engine(connect_args={"transaction_idle_timeout": 0.5})
    with engine.connect() as connection:
        connection.execute(text("INSERT INTO notes (body) VALUES ('a')"))
        time.sleep(1.5)
        with pytest.raises(exc.OperationalError) as raised:
            connection.execute(text("SELECT 1"))
        assert raised.value.connection_invalidated
    assert isinstance(raised.value.orig, dbapi.TransactionExpiredError)


def test_dbapi_rollback_undoes_write(server: LiveServer, schema: Engine) -> None:
    connection = dbapi.connect(server.api_url(), secret=SECRET)
    with connection:
        connection.cursor().execute("INSERT INTO notes (body) VALUES ('a')")
        assert connection.in_transaction
        connection.rollback()
        count = connection.cursor().execute("SELECT count(*) FROM notes").fetchone()

    assert count == (0,)


def test_stream_then_statement_in_transaction(server: LiveServer, schema: Engine) -> None:
    connection = dbapi.connect(server.api_url(), secret=SECRET)
    with connection:
        connection.cursor().executemany(
            "INSERT INTO notes (body) VALUES (?)", [(str(i),) for i in range(10)]
        )
        stream = connection.cursor(server_side=True).execute("SELECT body FROM notes")
        first = stream.fetchone()
        count = connection.cursor().execute("SELECT count(*) FROM notes").fetchone()
        rest = stream.fetchall()
        connection.commit()

    assert first == ("0",)
    assert count == (10,)
    assert len(rest) == 9


@pytest.mark.parametrize("sql", ["BEGIN", "COMMIT", "ROLLBACK"])
def test_transaction_sql_still_rejected(server: LiveServer, sql: str) -> None:
    connection = dbapi.connect(server.api_url(), secret=SECRET)
    with connection, pytest.raises(dbapi.NotSupportedError, match="commit"):
        connection.cursor().execute(sql)


@pytest.fixture
def server_without_transactions() -> Any:
    """A real server that serves /query/raw and returns 404 elsewhere, as DORM on Cloudflare does."""
    import socket

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def query_raw(request: Any) -> JSONResponse:
        meta = {"rows_read": 0, "rows_written": 1}
        return JSONResponse({"result": {"columns": [], "rows": [], "meta": meta}})

    app = Starlette(routes=[Route("/acme/api/db/query/raw", query_raw, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not uvicorn_server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/acme/api/db"
    uvicorn_server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_fallback_without_server_transactions(server_without_transactions: str) -> None:
    connection = dbapi.connect(server_without_transactions)
    with connection:
        connection.cursor().execute("CREATE TABLE t (x)")
        supported = connection.transactions_supported
        with pytest.warns(dbapi.RollbackIgnoredWarning):
            connection.rollback()

    assert supported is False


def test_missing_tenant_keeps_transactions(make_dorm: Any) -> None:
    from .conftest import serve

    dorm = make_dorm(create=False)
    with serve(dorm) as live:
        connection = dbapi.connect(live.api_url("late"), secret=SECRET)
        with connection:
            cursor = connection.cursor()
            with pytest.raises(dbapi.OperationalError, match="does not exist"):
                cursor.execute("SELECT 1")
            dorm.create("late")
            cursor.execute("CREATE TABLE t (x)")
            connection.commit()
            cursor.execute("INSERT INTO t VALUES (1)")
            connection.rollback()
            cursor.execute("SELECT count(*) FROM t")

            assert cursor.fetchone()[0] == 0
            assert connection.transactions_supported is True
