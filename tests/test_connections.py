"""Connection setup: pragmas, real transactions, IMMEDIATE writers, busy errors."""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import IntegrityError

from dorm_sqlalchemy import Dorm, TenantBusy
from tests.models import Author, Base, Book, DEFERRED_FOREIGN_KEY_SCHEMA


def pragmas(connection) -> dict[str, object]:
    return {
        name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
        for name in ("foreign_keys", "journal_mode", "busy_timeout")
    }


def test_sync_connection_pragmas(make_dorm) -> None:
    dorm = make_dorm(busy_timeout=2.5)
    with dorm.engine("acme").connect() as connection:
        assert pragmas(connection) == {"foreign_keys": 1, "journal_mode": "wal", "busy_timeout": 2500}


async def test_async_connection_pragmas(make_dorm) -> None:
    dorm = make_dorm(busy_timeout=2.5)
    async with dorm.async_engine("acme").connect() as connection:
        values = await connection.run_sync(lambda sync: pragmas(sync))
    await dorm.aclose()
    assert values == {"foreign_keys": 1, "journal_mode": "wal", "busy_timeout": 2500}


def test_statement_connection_pragmas(dorm: Dorm) -> None:
    values = {
        name: dorm.exec("acme", f"PRAGMA {name}").scalar()
        for name in ("foreign_keys", "journal_mode", "busy_timeout")
    }
    assert values == {"foreign_keys": 1, "journal_mode": "wal", "busy_timeout": 5000}


def test_memory_tenant_pragmas(make_dorm) -> None:
    dorm = make_dorm("sqlite://")
    with dorm.engine("acme").connect() as connection:
        values = pragmas(connection)
    assert values["foreign_keys"] == 1
    assert values["busy_timeout"] == 5000


def add_author_with_book(session_factory) -> None:
    with session_factory() as session, session.begin():
        author = Author(id=1, name="Ursula")
        session.add_all([author, Book(id=1, title="Earthsea", author=author)])


def test_foreign_key_cascade_on_sync_session(dorm: Dorm) -> None:
    Base.metadata.create_all(dorm.engine("acme"))
    add_author_with_book(lambda: dorm.session("acme"))

    with dorm.session("acme") as session, session.begin():
        session.execute(text("DELETE FROM authors WHERE id = 1"))

    assert dorm.exec("acme", "SELECT count(*) FROM books").scalar() == 0


def test_foreign_key_violation_rejected(dorm: Dorm) -> None:
    Base.metadata.create_all(dorm.engine("acme"))
    with pytest.raises(IntegrityError):
        with dorm.session("acme") as session, session.begin():
            session.add(Book(id=1, title="Orphan", author_id=99))


async def test_foreign_key_cascade_on_async_session(make_dorm) -> None:
    dorm = make_dorm()
    Base.metadata.create_all(dorm.engine("acme"))
    add_author_with_book(lambda: dorm.session("acme"))

    async with dorm.async_session("acme") as session:
        await session.execute(text("DELETE FROM authors WHERE id = 1"))
        await session.commit()
    await dorm.aclose()

    dorm = make_dorm()
    assert dorm.exec("acme", "SELECT count(*) FROM books").scalar() == 0


def test_savepoint_rolls_back_inner_work(dorm: Dorm) -> None:
    dorm.exec("acme", "CREATE TABLE t (x INTEGER)")
    with dorm.engine("acme").begin() as connection:
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        savepoint = connection.begin_nested()
        connection.exec_driver_sql("INSERT INTO t VALUES (2)")
        savepoint.rollback()
        connection.exec_driver_sql("INSERT INTO t VALUES (3)")

    rows = [row[0] for row in dorm.exec("acme", "SELECT x FROM t ORDER BY x").raw()]
    assert rows == [1, 3]


def test_session_begin_nested(dorm: Dorm) -> None:
    Base.metadata.create_all(dorm.engine("acme"))
    with dorm.session("acme") as session, session.begin():
        session.add(Author(id=1, name="kept"))
        with pytest.raises(IntegrityError):
            with session.begin_nested():
                session.add(Book(id=1, title="bad", author_id=42))
        session.add(Author(id=2, name="also kept"))

    assert dorm.exec("acme", "SELECT count(*) FROM authors").scalar() == 2
    assert dorm.exec("acme", "SELECT count(*) FROM books").scalar() == 0


def test_transactional_ddl_rolls_back(dorm: Dorm) -> None:
    engine = dorm.engine("acme")
    with pytest.raises(RuntimeError):
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE created_then_rolled_back (x)")
            raise RuntimeError("abort")

    names = dorm.exec("acme", "SELECT name FROM sqlite_schema").raw()
    assert ("created_then_rolled_back",) not in list(names)


def capture_begins(engine: Engine) -> list[str]:
    """Record the BEGIN statements SQLite receives on the engine's new connections."""
    statements: list[str] = []

    @event.listens_for(engine, "connect")
    def trace(dbapi_connection, connection_record) -> None:
        dbapi_connection.set_trace_callback(
            lambda statement: statements.append(statement) if statement.startswith("BEGIN") else None
        )

    return statements


def test_transactions_begin_immediate(dorm: Dorm) -> None:
    engine = dorm.engine("acme")
    begins = capture_begins(engine)
    with dorm.session("acme") as session:
        session.execute(text("SELECT 1"))

    assert begins == ["BEGIN IMMEDIATE"]


def test_begin_mode_per_session(dorm: Dorm) -> None:
    begins = capture_begins(dorm.engine("acme"))
    with dorm.session("acme", begin="deferred") as session:
        session.execute(text("SELECT 1"))

    assert begins == ["BEGIN DEFERRED"]


def test_session_begin_mode_stays_with_session(make_dorm) -> None:
    dorm = make_dorm(pool_size=1)
    begins = capture_begins(dorm.engine("acme"))
    for begin in ["deferred", None, "exclusive", None]:
        options = {} if begin is None else {"begin": begin}
        with dorm.session("acme", **options) as session:
            session.execute(text("SELECT 1"))

    assert begins == ["BEGIN DEFERRED", "BEGIN IMMEDIATE", "BEGIN EXCLUSIVE", "BEGIN IMMEDIATE"]


def test_connection_begin_option_beats_session_begin(dorm: Dorm) -> None:
    begins = capture_begins(dorm.engine("acme"))
    with dorm.session("acme", begin="deferred") as session:
        session.connection(execution_options={"dorm_begin": "exclusive"})

    assert begins == ["BEGIN EXCLUSIVE"]


def test_session_begin_mode_is_validated(dorm: Dorm) -> None:
    with pytest.raises(ValueError, match="invalid begin mode 'lazy'"):
        dorm.session("acme", begin="lazy")


def test_autocommit_isolation_emits_no_begin(dorm: Dorm) -> None:
    engine = dorm.engine("acme")
    begins = capture_begins(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("SELECT 1")

    assert begins == []


def test_autocommit_then_transaction_on_same_connection(make_dorm) -> None:
    dorm = make_dorm(pool_size=1)
    engine = dorm.engine("acme")
    begins = capture_begins(engine)
    dorm.exec("acme", "CREATE TABLE t (x)")
    for _ in range(3):
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO t VALUES (2)")
            savepoint = connection.begin_nested()
            connection.exec_driver_sql("INSERT INTO t VALUES (3)")
            savepoint.rollback()

    assert begins == ["BEGIN IMMEDIATE"] * 3
    assert dorm.exec("acme", "SELECT count(*) FROM t").scalar() == 6


def test_begin_mode_option_on_connection(dorm: Dorm) -> None:
    engine = dorm.engine("acme")
    begins = capture_begins(engine)
    with engine.connect().execution_options(dorm_begin="exclusive") as connection:
        connection.exec_driver_sql("SELECT 1")
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")

    assert begins == ["BEGIN EXCLUSIVE", "BEGIN IMMEDIATE"]


def test_read_then_write_under_contention(make_dorm) -> None:
    dorm = make_dorm(busy_timeout=5)
    dorm.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)")
    engine = dorm.engine("acme")
    errors: list[BaseException] = []

    def work() -> None:
        for _ in range(50):
            try:
                with engine.begin() as connection:
                    count = connection.exec_driver_sql("SELECT count(*) FROM t").scalar()
                    connection.exec_driver_sql("INSERT INTO t (n) VALUES (?)", (count,))
            except Exception as error:  # collected and asserted below
                errors.append(error)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(work) for _ in range(8)]:
            future.result()

    assert errors == []
    assert dorm.exec("acme", "SELECT count(*) FROM t").scalar() == 400
    # Each transaction saw every earlier commit, because it held the write lock.
    assert dorm.exec("acme", "SELECT count(DISTINCT n) FROM t").scalar() == 400


def test_locked_tenant_raises_tenant_busy(make_dorm) -> None:
    dorm = make_dorm(busy_timeout=0.2)
    dorm.exec("acme", "CREATE TABLE t (x)")
    blocker = sqlite3.connect(dorm.path("acme"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(TenantBusy) as raised:
            with dorm.session("acme") as session, session.begin():
                session.execute(text("INSERT INTO t VALUES (1)"))
        waited = time.monotonic() - started
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    assert raised.value.tenant == "acme"
    assert raised.value.retryable is True
    assert waited >= 0.15
    assert "busy timeout of 0.2 s" in str(raised.value)
    assert 'begin="deferred"' in str(raised.value)


def test_locked_tenant_raises_tenant_busy_from_exec(make_dorm) -> None:
    dorm = make_dorm(busy_timeout=0.1)
    dorm.exec("acme", "CREATE TABLE t (x)")
    blocker = sqlite3.connect(dorm.path("acme"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(TenantBusy):
            dorm.exec("acme", "INSERT INTO t VALUES (1)")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_commit_over_unread_returning_is_not_busy(dorm: Dorm) -> None:
    from sqlalchemy.exc import OperationalError

    dorm.exec("acme", "CREATE TABLE t (x)")
    with dorm.engine("acme").connect() as connection:
        result = connection.exec_driver_sql("INSERT INTO t VALUES (1), (2) RETURNING x")
        result.fetchone()
        with pytest.raises(OperationalError, match="statements in progress") as raised:
            connection.commit()

    assert not isinstance(raised.value, TenantBusy)


def test_writer_waits_for_lock_within_timeout(make_dorm) -> None:
    dorm = make_dorm(busy_timeout=5)
    dorm.exec("acme", "CREATE TABLE t (x)")
    blocker = sqlite3.connect(dorm.path("acme"), isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(0.3, lambda: blocker.execute("COMMIT"))
    timer.start()
    try:
        dorm.exec("acme", "INSERT INTO t VALUES (1)")
    finally:
        timer.join()
        blocker.close()

    assert dorm.exec("acme", "SELECT count(*) FROM t").scalar() == 1


def test_long_write_on_one_tenant_does_not_block_another(make_dorm) -> None:
    dorm = make_dorm(busy_timeout=0.1)
    dorm.exec("acme", "CREATE TABLE t (x)")
    dorm.exec("globex", "CREATE TABLE t (x)")
    with dorm.engine("acme").begin() as connection:
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        dorm.exec("globex", "INSERT INTO t VALUES (2)")
        with dorm.session("globex") as session, session.begin():
            session.execute(text("INSERT INTO t VALUES (3)"))

    assert dorm.exec("globex", "SELECT count(*) FROM t").scalar() == 2


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("busy_timeout", -1, "busy_timeout"),
        ("busy_timeout", "5", "busy_timeout"),
        ("begin", "eventually", "begin"),
        ("synchronous", "sometimes", "synchronous"),
        ("max_engines", 0, "max_engines"),
        ("pool_size", 0, "pool_size"),
        ("pragmas", {"cache_size; DROP TABLE t": 1}, "pragma name"),
        ("pragmas", {"cache_size": "1; DROP TABLE t"}, "pragma cache_size"),
    ],
)
def test_invalid_option_raises(tmp_path, option: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Dorm(root=tmp_path, **{option: value})


def test_unknown_option_raises_type_error(tmp_path) -> None:
    with pytest.raises(TypeError, match="max_engine"):
        Dorm(root=tmp_path, max_engine=5)  # type: ignore[call-arg]


def test_extra_pragmas_applied(make_dorm) -> None:
    dorm = make_dorm(pragmas={"cache_size": -4000})
    with dorm.engine("acme").connect() as connection:
        assert connection.exec_driver_sql("PRAGMA cache_size").scalar() == -4000


@pytest.mark.parametrize("name", ["foreign_keys", "journal_mode", "busy_timeout", "synchronous"])
def test_managed_pragmas_rejected(tmp_path, name: str) -> None:
    with pytest.raises(ValueError, match=f"pragma {name} cannot be set"):
        Dorm(root=tmp_path, pragmas={name: 0})


def test_engine_options_with_null_pool(make_dorm) -> None:
    from sqlalchemy.pool import NullPool

    dorm = make_dorm(engine_options={"poolclass": NullPool})
    with dorm.session("acme") as session:
        assert session.execute(text("SELECT 1")).scalar() == 1
    assert isinstance(dorm.engine("acme").pool, NullPool)


def test_driver_pragma_does_not_persist(make_dorm) -> None:
    dorm = make_dorm()
    engine = dorm.engine("acme")
    with engine.connect() as connection:
        connection.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")

    for _ in range(5):
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_pooled_connection_kept_after_reflection(make_dorm) -> None:
    from sqlalchemy import inspect

    dorm = make_dorm()
    engine = dorm.engine("acme")
    dorm.exec("acme", "CREATE TABLE t (x INTEGER PRIMARY KEY)")
    with engine.connect() as connection:
        first = connection.connection.driver_connection
        inspect(connection).get_columns("t")
        connection.exec_driver_sql("PRAGMA foreign_keys")

    with engine.connect() as connection:
        assert connection.connection.driver_connection is first


def test_pooled_connection_closed_after_a_setting_pragma(make_dorm) -> None:
    dorm = make_dorm()
    engine = dorm.engine("acme")
    with engine.connect() as connection:
        first = connection.connection.driver_connection
        connection.exec_driver_sql("PRAGMA cache_size = 10")

    with engine.connect() as connection:
        assert connection.connection.driver_connection is not first


def test_failed_commit_releases_write_lock(make_dorm) -> None:
    from sqlalchemy.exc import IntegrityError

    dorm = make_dorm(busy_timeout=0.2)
    for statement in DEFERRED_FOREIGN_KEY_SCHEMA:
        dorm.exec("acme", statement)
    with dorm.session("acme") as session:
        session.execute(text("INSERT INTO child VALUES (1, 99)"))
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):
            session.commit()

    with dorm.session("acme") as session:
        session.execute(text("INSERT INTO parent VALUES (1)"))
        session.commit()

    assert dorm.exec("acme", "SELECT count(*) FROM parent").scalar() == 1
    assert dorm.exec("acme", "SELECT count(*) FROM child").scalar() == 0
