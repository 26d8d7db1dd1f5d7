"""Committed writes reach the aggregate after a crash or an outage."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from dorm_sqlalchemy import MirrorError
from tests.mirror.helpers import aggregate_rows, tenant_rows


def test_killed_process_loses_nothing(make_dorm, tmp_path: Path) -> None:
    root = tmp_path / "tenants"
    aggregate_url = f"sqlite:///{tmp_path}/aggregate.db"
    script = textwrap.dedent(
        f"""
        import itertools, sys
        from dorm_sqlalchemy import Dorm

        dorm = Dorm(root={str(root)!r}, mirror={aggregate_url!r})
        for tenant in ("acme", "globex"):
            dorm.exec(tenant, "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v INTEGER)")
        print("ready", flush=True)
        for n in itertools.count():
            tenant = ("acme", "globex")[n % 2]
            with dorm.engine(tenant).begin() as connection:
                connection.exec_driver_sql("INSERT INTO t (v) VALUES (?)", (n,))
                connection.exec_driver_sql("UPDATE t SET v = v + 1 WHERE id = 1")
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        time.sleep(1.5)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()

    dorm = make_dorm(root=root, mirror=aggregate_url)
    dorm.mirror.flush(30)

    for tenant in ("acme", "globex"):
        rows = tenant_rows(dorm, tenant, "t")
        assert len(rows) > 10
        mirrored = [row for row in aggregate_rows(aggregate_url, "t") if row[0] == tenant]
        assert mirrored == rows


def test_aggregate_down_then_back(make_dorm, tmp_path: Path, caplog) -> None:
    missing = tmp_path / "not-yet"
    aggregate_url = f"sqlite:///{missing}/aggregate.db"
    dorm = make_dorm(mirror=aggregate_url)
    caplog.set_level(logging.WARNING, logger="dorm_sqlalchemy.mirror")

    dorm.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    for n in range(1, 51):
        dorm.exec("acme", "INSERT INTO t VALUES (?)", n)
    with pytest.raises(MirrorError, match="acme"):
        dorm.mirror.flush(0.5)
    lag = dorm.mirror.lag()
    assert lag.pending > 0
    assert lag.tenants == ("acme",)
    assert any("tenant acme" in record.getMessage() for record in caplog.records)

    missing.mkdir()
    dorm.mirror.flush(30)

    assert aggregate_rows(aggregate_url, "t") == [("acme", n) for n in range(1, 51)]
    assert dorm.mirror.lag().pending == 0


def test_new_registry_catches_up_on_old_writes(make_dorm, tmp_path: Path) -> None:
    root = tmp_path / "tenants"
    plain = make_dorm(root=root)
    plain.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    plain.exec("acme", "INSERT INTO t VALUES (1), (2)")
    plain.close()

    aggregate_url = f"sqlite:///{tmp_path}/aggregate.db"
    dorm = make_dorm(root=root, mirror=aggregate_url)
    dorm.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "t") == [("acme", 1), ("acme", 2)]


def test_two_processes_never_duplicate(make_dorm, tmp_path: Path) -> None:
    root = tmp_path / "tenants"
    aggregate_url = f"sqlite:///{tmp_path}/aggregate.db"
    first = make_dorm(root=root, mirror=aggregate_url)
    second = make_dorm(root=root, mirror=aggregate_url)
    first.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
    for n in range(200):
        (first if n % 2 else second).exec("acme", "INSERT INTO t (v) VALUES (?)", n)
    first.mirror.flush(10)
    second.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "t") == tenant_rows(first, "acme", "t")


def test_lag_reports_oldest_age(make_dorm, tmp_path: Path) -> None:
    aggregate_url = f"sqlite:///{tmp_path}/missing/aggregate.db"
    dorm = make_dorm(mirror=aggregate_url)
    dorm.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    dorm.exec("acme", "INSERT INTO t VALUES (1)")
    time.sleep(1.0)

    # The row was written before the table had capture triggers, so its
    # outbox entry dates from the worker's first pass, one batch delay
    # (0.1 s) later. SQLite's julianday('now') has millisecond resolution.
    lag = dorm.mirror.lag()
    assert lag.pending >= 1
    assert 0.7 < lag.oldest_age < 30


def test_status_lists_positions_and_errors(make_dorm, tmp_path: Path) -> None:
    dorm = make_dorm(mirror=f"sqlite:///{tmp_path}/aggregate.db")
    dorm.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    dorm.exec("acme", "INSERT INTO t VALUES (1)")
    dorm.mirror.flush(10)

    [status] = dorm.mirror.status()
    assert status.tenant == "acme"
    assert status.pending == 0
    assert status.positions[0] is not None
    assert status.last_error is None


def test_status_reports_unreadable_aggregate(make_dorm, tmp_path: Path) -> None:
    aggregate = tmp_path / "aggregate.db"
    dorm = make_dorm(mirror=f"sqlite:///{aggregate}")
    dorm.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    dorm.exec("acme", "INSERT INTO t VALUES (1)")
    dorm.mirror.flush(10)
    dorm.mirror.close(0)
    aggregate.write_bytes(b"not a database" * 1000)

    [status] = dorm.mirror.status(["acme"])

    assert status.positions == (None,)
    assert status.last_error is not None
    assert "could not be read" in status.last_error


def test_deleted_aggregate_file_refilled(make_dorm, tmp_path: Path) -> None:
    aggregate = tmp_path / "aggregate.db"
    url = f"sqlite:///{aggregate}"
    dorm = make_dorm(mirror=url)
    for tenant in ("acme", "globex"):
        dorm.exec(tenant, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
        dorm.exec(tenant, "INSERT INTO t VALUES (1)")
    dorm.mirror.flush(10)

    for suffix in ("", "-wal", "-shm"):
        Path(f"{aggregate}{suffix}").unlink(missing_ok=True)
    dorm.exec("acme", "INSERT INTO t VALUES (2)")
    dorm.mirror.flush(10)

    assert aggregate_rows(url, "t") == tenant_rows(dorm, "acme", "t") + tenant_rows(dorm, "globex", "t")


def _mirrored_with_copy(make_dorm, aggregate: Path, copy_path: Path) -> Any:
    """Return a registry that mirrored one row of tenant acme, with a copy of its aggregate at ``copy_path``."""
    import sqlite3

    dorm = make_dorm(mirror=f"sqlite:///{aggregate}")
    dorm.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    dorm.exec("acme", "INSERT INTO t VALUES (1)")
    dorm.mirror.flush(10)
    copy = sqlite3.connect(copy_path)
    with sqlite3.connect(aggregate) as source:
        source.backup(copy)
    copy.close()
    return dorm


def test_older_aggregate_copy_caught_up(make_dorm, tmp_path: Path, monkeypatch) -> None:
    from dorm_sqlalchemy.mirror import worker

    # Prune after every batch, so the entries the old copy lacks are gone.
    monkeypatch.setattr(worker, "PRUNE_ENTRIES", 0)
    monkeypatch.setattr(worker, "PRUNE_INTERVAL", 0.0)
    aggregate = tmp_path / "aggregate.db"
    url = f"sqlite:///{aggregate}"
    dorm = _mirrored_with_copy(make_dorm, aggregate, tmp_path / "copy.db")
    for key in (2, 3, 4):
        dorm.exec("acme", "INSERT INTO t VALUES (?)", key)
        dorm.mirror.flush(10)
    dorm.close()

    os.replace(tmp_path / "copy.db", aggregate)
    for suffix in ("-wal", "-shm"):
        Path(f"{aggregate}{suffix}").unlink(missing_ok=True)
    dorm = make_dorm(mirror=url)
    dorm.mirror.flush(10)

    assert aggregate_rows(url, "t") == tenant_rows(dorm, "acme", "t")


def test_copy_written_in_place_caught_up(make_dorm, tmp_path: Path) -> None:
    import shutil
    import sqlite3

    aggregate = tmp_path / "aggregate.db"
    url = f"sqlite:///{aggregate}"
    dorm = _mirrored_with_copy(make_dorm, aggregate, tmp_path / "copy.db")
    for key in range(2, 50):
        dorm.exec("acme", "INSERT INTO t VALUES (?)", key)
    dorm.mirror.flush(10)
    with sqlite3.connect(aggregate) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # As cp does it: the aggregate file keeps its inode.
    shutil.copyfile(tmp_path / "copy.db", aggregate)
    dorm.exec("acme", "INSERT INTO t VALUES (50)")
    dorm.mirror.flush(10)

    assert aggregate_rows(url, "t") == tenant_rows(dorm, "acme", "t")
