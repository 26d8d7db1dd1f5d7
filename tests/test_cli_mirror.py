"""The dorm mirror commands."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dorm_sqlalchemy.cli import main


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "tenants"
    assert main(["--root", str(root), "create", "acme", "globex"]) == 0
    for tenant in ("acme", "globex"):
        assert main(["--root", str(root), "sql", tenant, "CREATE TABLE t (id INTEGER PRIMARY KEY)"]) == 0
        assert main(["--root", str(root), "sql", tenant, "INSERT INTO t VALUES (1), (2)"]) == 0
    return root


def test_rebuild_fills_aggregate(root: Path, tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path}/aggregate.db"
    assert main(["--root", str(root), "mirror", "rebuild", "--aggregate", url]) == 0

    aggregate = sqlite3.connect(tmp_path / "aggregate.db")
    rows = aggregate.execute("SELECT * FROM t ORDER BY 1, 2").fetchall()
    aggregate.close()
    assert rows == [("acme", 1), ("acme", 2), ("globex", 1), ("globex", 2)]
    assert "rebuilt the aggregates from 2 tenant(s)" in capsys.readouterr().err


def test_status_lists_positions(root: Path, tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path}/aggregate.db"
    main(["--root", str(root), "mirror", "rebuild", "--aggregate", url])
    capsys.readouterr()

    assert main(["--root", str(root), "mirror", "status", "--aggregate", url, "acme"]) == 0
    output = capsys.readouterr().out
    assert "acme" in output
    assert "globex" not in output


def test_status_names_unreadable_aggregate(root: Path, tmp_path: Path, capsys) -> None:
    aggregate = tmp_path / "aggregate.db"
    url = f"sqlite:///{aggregate}"
    main(["--root", str(root), "mirror", "rebuild", "--aggregate", url])
    aggregate.write_bytes(b"not a database" * 1000)
    capsys.readouterr()

    assert main(["--root", str(root), "mirror", "status", "--aggregate", url, "acme"]) == 0
    captured = capsys.readouterr()
    assert "acme" in captured.out
    assert "could not be read" in captured.err


def test_status_reads_environment(root: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("DORM_MIRROR", f"sqlite:///{tmp_path}/aggregate.db")
    assert main(["--root", str(root), "mirror", "status"]) == 0
    assert "globex" in capsys.readouterr().out


def test_missing_aggregate_is_usage_error(root: Path, capsys) -> None:
    assert main(["--root", str(root), "mirror", "status"]) == 2
    assert "--aggregate URL" in capsys.readouterr().err


def test_unknown_tenant_rejected(root: Path, tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path}/aggregate.db"
    assert main(["--root", str(root), "mirror", "rebuild", "--aggregate", url, "ghost"]) == 1
    assert "ghost" in capsys.readouterr().err
    assert not (root / "ghost.db").exists()


def test_invalid_aggregate_url_is_usage_error(root: Path, capsys) -> None:
    assert main(["--root", str(root), "mirror", "status", "--aggregate", "nota-url"]) == 2
    assert "invalid mirror URL" in capsys.readouterr().err
