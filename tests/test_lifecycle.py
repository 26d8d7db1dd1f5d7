"""Tenant lifecycle: create on first use, create=False, exists, drop, size, backup."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from dorm_sqlalchemy import Dorm, DormError, TenantExists, TenantInUse, TenantNotFound


def test_first_use_creates_tenant(dorm: Dorm) -> None:
    assert not dorm.exists("acme")
    dorm.exec("acme", "CREATE TABLE t (x)")
    assert dorm.exists("acme")
    assert dorm.path("acme").is_file()


def test_engine_alone_creates_no_file(dorm: Dorm) -> None:
    dorm.engine("acme")
    assert not dorm.path("acme").exists()


def test_create_false_raises_for_unknown_tenant(make_dorm, tmp_path: Path) -> None:
    dorm = make_dorm(create=False)
    with pytest.raises(TenantNotFound) as raised:
        dorm.exec("acme", "SELECT 1")
    with pytest.raises(TenantNotFound):
        dorm.session("acme")

    assert raised.value.tenant == "acme"
    assert "dorm.create('acme')" in str(raised.value)
    assert not (tmp_path / "tenants").exists()


def test_create_false_opens_existing_tenant(make_dorm) -> None:
    make_dorm().create("acme")
    dorm = make_dorm(create=False)
    assert dorm.exec("acme", "SELECT 1").scalar() == 1


def test_create_makes_wal_database(make_dorm) -> None:
    dorm = make_dorm(create=False)
    assert dorm.create("Acme") == "acme"
    connection = sqlite3.connect(dorm.path("acme"))
    mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    connection.close()

    assert mode == "wal"


def test_create_existing_raises(dorm: Dorm) -> None:
    dorm.create("acme")
    with pytest.raises(TenantExists, match="exist_ok=True"):
        dorm.create("acme")
    assert dorm.create("acme", exist_ok=True) == "acme"


def test_tenants_lists_without_opening(dorm: Dorm) -> None:
    for name in ["globex", "acme", "initech"]:
        dorm.create(name)
    dorm.close()

    fresh = Dorm(root=dorm.storage.directory)
    assert list(fresh.tenants()) == ["acme", "globex", "initech"]
    assert len(fresh._engines) == 0
    fresh.close()


def test_tenants_of_missing_root_is_empty(make_dorm, tmp_path: Path) -> None:
    dorm = make_dorm(root=tmp_path / "nowhere")
    assert list(dorm.tenants()) == []


def test_drop_removes_database_and_side_files(dorm: Dorm) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")
    dorm.exec("acme", "INSERT INTO t VALUES (1)")
    path = dorm.path("acme")
    assert Path(f"{path}-wal").exists()

    dorm.drop("acme")

    assert not path.exists()
    assert not Path(f"{path}-wal").exists()
    assert not Path(f"{path}-shm").exists()
    assert "acme" not in dorm._engines
    assert list(dorm.tenants()) == []


def test_dropped_tenant_starts_empty(dorm: Dorm) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")
    dorm.drop("acme")
    assert dorm.exec("acme", "SELECT count(*) FROM sqlite_schema").scalar() == 0


def test_drop_missing_raises(dorm: Dorm) -> None:
    with pytest.raises(TenantNotFound):
        dorm.drop("acme")
    dorm.drop("acme", missing_ok=True)


def test_drop_in_use_raises_and_keeps_data(dorm: Dorm) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")
    connection = dorm.engine("acme").connect()
    connection.exec_driver_sql("SELECT 1")
    with pytest.raises(TenantInUse, match="1 connection"):
        dorm.drop("acme")
    connection.close()

    assert dorm.exists("acme")
    dorm.drop("acme")
    assert not dorm.exists("acme")


def test_drop_memory_tenant(make_dorm) -> None:
    dorm = make_dorm("sqlite://")
    dorm.exec("acme", "CREATE TABLE t (x)")
    dorm.drop("acme")

    assert not dorm.exists("acme")
    assert dorm.exec("acme", "SELECT count(*) FROM sqlite_schema").scalar() == 0


def test_size_counts_file_and_wal(dorm: Dorm) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")
    dorm.exec("acme", "INSERT INTO t VALUES (randomblob(100000))")
    path = dorm.path("acme")
    expected = path.stat().st_size + Path(f"{path}-wal").stat().st_size

    assert dorm.size("acme") == expected
    assert dorm.size("acme") > 100000


def test_size_of_memory_tenant(make_dorm) -> None:
    dorm = make_dorm("sqlite://")
    dorm.exec("acme", "CREATE TABLE t (x)")
    dorm.exec("acme", "INSERT INTO t VALUES (randomblob(50000))")
    assert dorm.size("acme") > 50000


def test_size_of_missing_tenant_raises(dorm: Dorm) -> None:
    with pytest.raises(TenantNotFound):
        dorm.size("acme")


def test_backup_is_standalone_copy(dorm: Dorm, tmp_path: Path) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")
    dorm.exec("acme", "INSERT INTO t VALUES (1), (2)")
    target = dorm.backup("acme", tmp_path / "acme-backup.db")

    copy = sqlite3.connect(target)
    assert copy.execute("SELECT count(*) FROM t").fetchone()[0] == 2
    assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    copy.close()
    assert not Path(f"{target}-wal").exists()


def test_backup_refuses_to_overwrite(dorm: Dorm, tmp_path: Path) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")
    target = tmp_path / "copy.db"
    target.write_bytes(b"keep me")
    with pytest.raises(DormError, match="overwrite=True"):
        dorm.backup("acme", target)

    assert target.read_bytes() == b"keep me"
    dorm.backup("acme", target, overwrite=True)
    assert target.read_bytes().startswith(b"SQLite format 3")


def test_backup_of_missing_tenant_creates_nothing(dorm: Dorm, tmp_path: Path) -> None:
    with pytest.raises(TenantNotFound):
        dorm.backup("acme", tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists()
    assert not dorm.exists("acme")


def test_backup_while_writers_run_is_consistent(dorm: Dorm, tmp_path: Path) -> None:
    dorm.exec("acme", "CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER)")
    dorm.exec("acme", "INSERT INTO ledger (amount) VALUES (100)")
    stop = threading.Event()
    errors: list[BaseException] = []

    def transfer() -> None:
        # Each transaction moves 1 between two rows, so the total never changes.
        engine = dorm.engine("acme")
        while not stop.is_set():
            try:
                with engine.begin() as connection:
                    connection.exec_driver_sql("INSERT INTO ledger (amount) VALUES (1)")
                    connection.exec_driver_sql("UPDATE ledger SET amount = amount - 1 WHERE id = 1")
            except Exception as error:  # collected and asserted below
                errors.append(error)
                return

    writers = [threading.Thread(target=transfer) for _ in range(2)]
    for writer in writers:
        writer.start()
    try:
        totals = []
        for index in range(5):
            target = dorm.backup("acme", tmp_path / f"copy-{index}.db")
            copy = sqlite3.connect(target)
            totals.append(copy.execute("SELECT sum(amount) FROM ledger").fetchone()[0])
            assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            copy.close()
    finally:
        stop.set()
        for writer in writers:
            writer.join()

    assert errors == []
    assert totals == [100] * 5


def test_backup_memory_tenant(make_dorm, tmp_path: Path) -> None:
    dorm = make_dorm("sqlite://")
    dorm.exec("acme", "CREATE TABLE t (x)")
    dorm.exec("acme", "INSERT INTO t VALUES (5)")
    target = dorm.backup("acme", tmp_path / "memory-copy.db")

    copy = sqlite3.connect(target)
    assert copy.execute("SELECT x FROM t").fetchone()[0] == 5
    copy.close()


def test_drop_sees_evicted_engine_in_use(make_dorm) -> None:
    from sqlalchemy import text

    dorm = make_dorm(max_engines=1)
    dorm.exec("acme", "CREATE TABLE t (x)")
    with dorm.session("acme") as session:
        session.execute(text("INSERT INTO t VALUES (1)"))
        dorm.exec("globex", "SELECT 1")
        with pytest.raises(TenantInUse):
            dorm.drop("acme")
        session.commit()

    assert dorm.exec("acme", "SELECT count(*) FROM t").scalar() == 1


def test_drop_sees_held_engine_evicted_while_idle(make_dorm) -> None:
    from sqlalchemy import text

    dorm = make_dorm(max_engines=1)
    dorm.exec("acme", "CREATE TABLE t (x)")
    engine = dorm.engine("acme")
    dorm.exec("globex", "SELECT 1")  # evicts acme with nothing checked out

    with engine.connect() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(TenantInUse):
            dorm.drop("acme")
        connection.commit()

    assert dorm.exec("acme", "SELECT count(*) FROM t").scalar() == 1


def test_held_engine_of_dropped_tenant_creates_no_file(make_dorm) -> None:
    dorm = make_dorm(max_engines=1)
    engine = dorm.engine("acme")
    with engine.connect():
        pass
    dorm.exec("globex", "SELECT 1")  # evicts acme
    dorm.drop("acme")

    with pytest.raises(TenantNotFound):
        engine.connect()
    assert not dorm.exists("acme")


def test_session_reused_after_drop_and_create(make_dorm) -> None:
    dorm = make_dorm()
    dorm.exec("acme", "CREATE TABLE t (x INTEGER)")
    explicit = dorm.session("acme")
    routed = dorm.sessionmaker()()
    with dorm.tenant("acme"):
        routed.execute(text("SELECT 1"))
    routed.close()
    explicit.execute(text("SELECT 1"))
    explicit.close()

    dorm.drop("acme")
    dorm.exec("acme", "CREATE TABLE t (x INTEGER)")

    with dorm.tenant("acme"), routed:
        assert routed.execute(text("SELECT count(*) FROM t")).scalar() == 0
    with pytest.raises(TenantNotFound, match="dropped after this session or engine was opened"):
        explicit.execute(text("SELECT 1"))
    assert "dorm.session('acme')" in str(TenantNotFound.dropped("acme"))


def test_drop_during_connect_creates_no_file(make_dorm) -> None:
    from sqlalchemy import event

    dorm = make_dorm()
    engine = dorm.engine("acme")
    with engine.connect():
        pass
    engine.dispose()  # the next checkout opens a new connection

    @event.listens_for(engine, "do_connect")
    def drop_meanwhile(dialect, record, cargs, cparams) -> None:
        dorm.drop("acme")

    with pytest.raises(TenantNotFound):
        engine.connect()
    assert not dorm.exists("acme")


@pytest.mark.parametrize("use", ["session", "exec"])
def test_deleted_file_is_not_recreated_empty(make_dorm, use: str) -> None:
    import os

    from sqlalchemy import text

    dorm = make_dorm()
    dorm.exec("acme", "CREATE TABLE t (x)")
    with dorm.session("acme") as session:
        session.execute(text("SELECT 1"))
    dorm.engine("acme").dispose()
    dorm._engines.get("acme")._close_statement_connections()
    for path in dorm.path("acme").parent.glob("acme.db*"):
        os.unlink(path)  # another process deletes the tenant's files

    with pytest.raises(TenantNotFound, match="database file is gone"):
        if use == "session":
            with dorm.session("acme") as session:
                session.execute(text("SELECT 1"))
        else:
            dorm.exec("acme", "SELECT 1")
    assert not dorm.exists("acme")


def test_drop_racing_with_use_never_breaks(make_dorm) -> None:
    import sqlalchemy.exc

    dorm = make_dorm()
    stop = threading.Event()
    unexpected: list[BaseException] = []

    def use() -> None:
        while not stop.is_set():
            try:
                dorm.exec("acme", "CREATE TABLE IF NOT EXISTS t (x)")
                dorm.exec("acme", "INSERT INTO t VALUES (1)")
            except TenantNotFound:
                pass  # dropped between opening and checking out: the documented error
            except sqlalchemy.exc.OperationalError as error:
                if "no such table" not in str(error):
                    unexpected.append(error)
            except Exception as error:  # collected and asserted below
                unexpected.append(error)

    workers = [threading.Thread(target=use) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        for _ in range(200):
            try:
                dorm.drop("acme", missing_ok=True)
            except TenantInUse:
                pass
    finally:
        stop.set()
        for worker in workers:
            worker.join()

    assert unexpected == []


def test_backup_into_directory_raises(dorm: Dorm, tmp_path: Path) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")
    with pytest.raises(DormError, match="is a directory"):
        dorm.backup("acme", tmp_path)


def test_backup_onto_own_file_raises(dorm: Dorm) -> None:
    dorm.exec("acme", "CREATE TABLE t (x)")
    with pytest.raises(DormError, match="own database file"):
        dorm.backup("acme", dorm.path("acme"), overwrite=True)


def test_create_after_outside_deletion(make_dorm) -> None:
    import os

    dorm = make_dorm()
    dorm.exec("acme", "CREATE TABLE t (x)")
    dorm.engine("acme").dispose()
    dorm._engines.get("acme")._close_statement_connections()
    for path in dorm.path("acme").parent.glob("acme.db*"):
        os.unlink(path)

    dorm.create("acme")

    assert dorm.exists("acme")
    assert dorm.exec("acme", "SELECT count(*) FROM sqlite_schema").scalar() == 0


def test_backup_of_tenant_dropped_meanwhile_raises(dorm: Dorm, tmp_path: Path) -> None:
    from dorm_sqlalchemy import lifecycle

    dorm.exec("acme", "CREATE TABLE t (x)")
    dorm.drop("acme")

    with pytest.raises(TenantNotFound):
        lifecycle._copy_database(dorm, "acme", tmp_path / "copy.db")
    assert not dorm.exists("acme")


def test_creation_log_names_the_file(dorm: Dorm, caplog) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="dorm_sqlalchemy.registry"):
        dorm.exec("acme", "SELECT 1")

    assert f"tenant acme: created ({dorm.path('acme')})" in caplog.text
