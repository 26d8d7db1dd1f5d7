"""The engine cache: bounded LRU, safe eviction, bounded file descriptors."""

from __future__ import annotations

import os
import resource
import sys
import textwrap
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from dorm_sqlalchemy import Dorm
from dorm_sqlalchemy.errors import InvalidTenantName
from tests.models import Base, Note


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_engine_is_cached(dorm: Dorm) -> None:
    assert dorm.engine("acme") is dorm.engine("ACME")


def test_async_engine_is_cached(dorm: Dorm) -> None:
    assert dorm.async_engine("acme") is dorm.async_engine("acme")


def test_cache_is_bounded(make_dorm) -> None:
    dorm = make_dorm(max_engines=3)
    for index in range(10):
        dorm.exec(f"t{index}", "CREATE TABLE t (x)")

    assert len(dorm._engines) == 3
    assert list(dorm._engines._entries) == ["t7", "t8", "t9"]


def test_recently_used_engine_stays(make_dorm) -> None:
    dorm = make_dorm(max_engines=2)
    first = dorm.engine("a")
    dorm.engine("b")
    dorm.engine("a")
    dorm.engine("c")

    assert dorm.engine("a") is first
    assert "b" not in dorm._engines


def test_names_as_passed_reach_the_same_tenant(dorm: Dorm) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")
    dorm.exec("ACME", "INSERT INTO t VALUES (1)")

    assert dorm.exec("Acme", "SELECT count(*) FROM t").scalar() == 1


def test_name_seen_before_follows_a_recreated_tenant(dorm: Dorm) -> None:
    dorm.exec("Acme", "CREATE TABLE t (x)")
    dorm.drop("acme")
    dorm.exec("acme", "CREATE TABLE fresh (y)")

    tables = dorm.exec("Acme", "SELECT name FROM sqlite_master").all()

    assert [row[0] for row in tables] == ["fresh"]


def test_name_seen_before_follows_eviction(make_dorm) -> None:
    dorm = make_dorm(max_engines=1)
    dorm.exec("Acme", "CREATE TABLE t (x)")
    evicted = dorm._engines.get("acme")
    dorm.exec("globex", "CREATE TABLE t (x)")
    dorm.exec("acme", "INSERT INTO t VALUES (1)")

    entry = dorm._open("Acme")

    assert entry is dorm._engines.get("acme")
    assert entry is not evicted


def test_unhashable_tenant_name_is_refused(dorm: Dorm) -> None:
    with pytest.raises(InvalidTenantName, match="expected a str"):
        dorm.exec(["acme"], "SELECT 1")  # type: ignore[arg-type]


def test_names_as_passed_are_bounded(make_dorm) -> None:
    dorm = make_dorm(max_engines=1)
    for index in range(50):
        dorm.exec("a" * (index + 1), "SELECT 1")
        dorm.exec("A" * (index + 1), "SELECT 1")

    assert len(dorm._engines.aliases) <= 8


def test_default_max_engines_documented() -> None:
    assert Dorm.__init__.__kwdefaults__["max_engines"] == 64


def test_eviction_keeps_open_session_working(make_dorm) -> None:
    dorm = make_dorm(max_engines=1)
    Base.metadata.create_all(dorm.engine("acme"))
    with dorm.session("acme") as session:
        session.begin()
        session.add(Note(id=1, body="before eviction"))
        session.flush()

        dorm.exec("globex", "CREATE TABLE t (x)")  # evicts acme mid-transaction
        assert "acme" not in dorm._engines

        session.add(Note(id=2, body="after eviction"))
        session.commit()
        assert session.execute(text("SELECT count(*) FROM notes")).scalar() == 2

    assert dorm.exec("acme", "SELECT count(*) FROM notes").scalar() == 2


def test_retired_engine_closes_connections_on_checkin(make_dorm) -> None:
    import sqlite3

    import pytest

    dorm = make_dorm(max_engines=1)
    engine = dorm.engine("acme")
    connection = engine.connect()
    connection.exec_driver_sql("SELECT 1")
    dbapi_connection = connection.connection.dbapi_connection
    entry = dorm._engines.get("acme")
    dorm.engine("globex")

    assert entry.retired
    assert entry.checked_out == 1
    dbapi_connection.execute("SELECT 1")  # still open while checked out
    connection.close()
    assert entry.checked_out == 0
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        dbapi_connection.execute("SELECT 1")


def test_descriptors_bounded_over_many_tenants(make_dorm) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = min(soft, 1024)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    try:
        dorm = make_dorm(max_engines=16)
        baseline = open_descriptors()
        peak = baseline
        for index in range(2 * limit):
            tenant = f"t{index}"
            with dorm.session(tenant) as session, session.begin():
                session.execute(text("CREATE TABLE IF NOT EXISTS t (x)"))
            dorm.exec(tenant, "INSERT INTO t VALUES (1)")
            peak = max(peak, open_descriptors())
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    # 16 engines x (one pooled + two statement connections) x 3 files, plus slack.
    assert peak - baseline <= 16 * 3 * 3 + 8


def test_close_releases_every_descriptor(tmp_path: Path) -> None:
    baseline = open_descriptors()
    dorm = Dorm(root=tmp_path)
    for index in range(20):
        dorm.exec(f"t{index}", "CREATE TABLE t (x)")
        with dorm.engine(f"t{index}").connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    dorm.close()

    assert open_descriptors() == baseline


def test_closed_registry_raises(tmp_path: Path) -> None:
    dorm = Dorm(root=tmp_path)
    dorm.close()
    try:
        dorm.engine("acme")
    except RuntimeError as error:
        assert "closed" in str(error)
    else:
        raise AssertionError("engine() on a closed registry did not raise")


def test_context_manager_closes(tmp_path: Path) -> None:
    with Dorm(root=tmp_path) as dorm:
        dorm.exec("acme", "CREATE TABLE t (x)")
    assert dorm._closed


def test_memory_tenant_survives_eviction(make_dorm) -> None:
    dorm = make_dorm("sqlite://", max_engines=1)
    dorm.exec("acme", "CREATE TABLE t (x)")
    dorm.exec("acme", "INSERT INTO t VALUES (42)")
    dorm.exec("globex", "SELECT 1")

    assert dorm.exec("acme", "SELECT x FROM t").scalar() == 42


def test_memory_tenants_of_two_registries_are_separate(make_dorm) -> None:
    first = make_dorm("sqlite://")
    second = make_dorm("sqlite://")
    first.exec("acme", "CREATE TABLE t (x)")

    tables = second.exec("acme", "SELECT count(*) FROM sqlite_schema").scalar()
    assert tables == 0


def test_memory_tenant_shared_across_threads_and_checkouts(make_dorm) -> None:
    import threading

    dorm = make_dorm("sqlite://")
    with dorm.engine("acme").begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x)")
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
    seen: list[int] = []

    def read() -> None:
        with dorm.engine("acme").connect() as connection:
            seen.append(connection.exec_driver_sql("SELECT count(*) FROM t").scalar())

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert seen == [1, 1, 1, 1]


def test_memory_tenant_visible_to_async_engine(make_dorm) -> None:
    import asyncio

    dorm = make_dorm("sqlite://")
    dorm.exec("acme", "CREATE TABLE t (x)")
    dorm.exec("acme", "INSERT INTO t VALUES (7)")

    async def read() -> int:
        async with dorm.async_engine("acme").connect() as connection:
            result = await connection.exec_driver_sql("SELECT x FROM t")
            value = result.scalar()
        await dorm.aclose()
        return value

    assert asyncio.run(read()) == 7


def test_shutdown_of_async_tenants_is_clean(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio
        from dorm_sqlalchemy import Dorm

        async def main():
            async with Dorm(root={str(tmp_path)!r}) as dorm:
                for name in ("a", "b", "c"):
                    async with dorm.async_engine(name).begin() as connection:
                        await connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x)")
                        await connection.exec_driver_sql("INSERT INTO t VALUES (1)")
                    async with dorm.async_session(name) as session:
                        await session.connection()

        asyncio.run(main())
        print("done")
        """
    )
    completed = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "done"
    assert "Warning" not in completed.stderr


def test_evicted_async_engines_release_descriptors(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, os, resource
        from sqlalchemy import text
        from dorm_sqlalchemy import Dorm

        resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

        async def main():
            dorm = Dorm(root={str(tmp_path)!r}, max_engines=8)
            peak = 0
            for index in range(600):
                async with dorm.async_session(f"t{{index}}") as session:
                    await session.execute(text("SELECT 1"))
                peak = max(peak, len(os.listdir("/proc/self/fd")))
            await dorm.aclose()
            print(peak)

        asyncio.run(main())
        """
    )
    completed = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr
    assert int(completed.stdout) < 100
    assert "ResourceWarning" not in completed.stderr


def test_close_inside_loop_keeps_registry_usable(tmp_path: Path) -> None:
    import asyncio

    import pytest

    from dorm_sqlalchemy import DormError

    async def main() -> bool:
        dorm = Dorm(root=tmp_path)
        async with dorm.async_engine("acme").connect() as connection:
            await connection.exec_driver_sql("SELECT 1")
        with pytest.raises(DormError, match="aclose"):
            dorm.close()
        open_after_failed_close = not dorm._closed
        await dorm.aclose()
        return open_after_failed_close

    assert asyncio.run(main())


def test_garbage_collection_during_async_engine_creation(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import gc
        from sqlalchemy import text
        from dorm_sqlalchemy import Dorm

        dorm = Dorm(root={str(tmp_path)!r})

        def failing_request():
            connection = dorm.engine("acme").connect()
            connection.execute(text("SELECT 1"))
            raise RuntimeError("boom")

        try:
            failing_request()
        except RuntimeError:
            pass
        gc.set_threshold(340)
        dorm.async_engine("acme")
        print("done")
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "done"


def test_checkouts_counted_under_contention(make_dorm) -> None:
    import threading

    from dorm_sqlalchemy.pool import TenantPool

    # One pooled connection and one overflow for eight threads: checkouts
    # wait, time out and retry inside the pool.
    dorm = make_dorm(pool_size=1, engine_options={"max_overflow": 1, "pool_timeout": 0.05})
    Base.metadata.create_all(dorm.engine("acme"))
    entry = dorm._engines.get("acme")
    counts: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        for _ in range(50):
            try:
                with dorm.session("acme") as session:
                    session.get(Note, 1)
                    counts.append(entry.checked_out)
            except Exception as error:  # a pool timeout; the count must stay right
                errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert isinstance(dorm.engine("acme").pool, TenantPool)
    assert counts
    assert max(counts) <= 2
    assert entry.checked_out == 0
    assert all("QueuePool limit" in str(error) for error in errors)


def test_checkout_after_drop_raises_and_counts_nothing(make_dorm) -> None:
    from dorm_sqlalchemy.errors import TenantNotFound

    dorm = make_dorm()
    engine = dorm.engine("acme")
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
    entry = dorm._engines.get("acme")
    dorm.drop("acme")

    with pytest.raises(TenantNotFound, match="dropped"):
        engine.connect()
    assert entry.checked_out == 0
    assert not dorm.exists("acme")


@pytest.mark.parametrize("poolclass", ["NullPool", "StaticPool"])
def test_chosen_pool_is_counted(make_dorm, poolclass: str) -> None:
    import sqlalchemy.pool

    dorm = make_dorm(engine_options={"poolclass": getattr(sqlalchemy.pool, poolclass)})
    engine = dorm.engine("acme")
    entry = dorm._engines.get("acme")
    first = engine.connect()
    first.exec_driver_sql("SELECT 1")
    first.commit()
    second = engine.connect()

    assert type(engine.pool).__name__ == poolclass
    assert entry.checked_out == 2
    second.close()
    assert entry.checked_out == 1
    first.close()
    if poolclass != "StaticPool":
        # StaticPool hands one entry to both checkouts, so SQLAlchemy checks
        # in only the first of them ("Double checkin attempted").
        assert entry.checked_out == 0


def test_pool_counts_after_dispose(make_dorm) -> None:
    dorm = make_dorm()
    engine = dorm.engine("acme")
    entry = dorm._engines.get("acme")
    first = engine.connect()
    engine.dispose()  # a new pool; the first connection goes back to the old one

    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
        assert entry.checked_out == 2
    first.close()
    assert entry.checked_out == 0


def test_detached_connection_counted_until_closed(make_dorm) -> None:
    from dorm_sqlalchemy import TenantInUse

    dorm = make_dorm()
    engine = dorm.engine("acme")
    entry = dorm._engines.get("acme")
    connection = engine.connect()
    connection.connection.detach()  # leaves the pool; closing the Connection closes it

    assert entry.checked_out == 1
    with pytest.raises(TenantInUse):
        dorm.drop("acme")
    connection.close()
    assert entry.checked_out == 0
