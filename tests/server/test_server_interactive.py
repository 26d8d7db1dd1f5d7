"""Interactive transactions: POST /transaction, X-Dorm-Transaction, commit, rollback, expiry."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from dorm_sqlalchemy.server import ServerLimits
from dorm_sqlalchemy.server.transactions import TransactionManager, token_hash

from .conftest import LiveServer

HEADER = "X-Dorm-Transaction"


def _begin(server: LiveServer, tenant: str = "acme", **body: Any) -> str:
    response = server.client.post(f"/{tenant}/api/db/transaction", json=body or None)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _in(server: LiveServer, transaction_id: str, sql: str, tenant: str = "acme") -> httpx.Response:
    return server.sql(tenant, sql, headers={HEADER: transaction_id})


@pytest.fixture
def notes(server: LiveServer) -> LiveServer:
    server.rows("acme", "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT UNIQUE)")
    return server


def test_begin_returns_id_and_timeout(notes: LiveServer) -> None:
    response = notes.client.post("/acme/api/db/transaction", json={"idle_timeout": 12})
    assert response.status_code == 201
    assert response.json()["idle_timeout"] == 12
    assert len(response.json()["id"]) >= 20


def test_commit_makes_writes_visible(notes: LiveServer) -> None:
    transaction_id = _begin(notes)
    assert _in(notes, transaction_id, "INSERT INTO notes (body) VALUES ('a')").status_code == 200
    assert _in(notes, transaction_id, "SELECT count(*) FROM notes").json()["result"]["rows"] == [[1]]

    response = notes.client.post(f"/acme/api/db/transaction/{transaction_id}/commit")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert notes.rows("acme", "SELECT body FROM notes") == [["a"]]


def test_rollback_discards_writes(notes: LiveServer) -> None:
    transaction_id = _begin(notes)
    _in(notes, transaction_id, "INSERT INTO notes (body) VALUES ('a')")

    response = notes.client.post(f"/acme/api/db/transaction/{transaction_id}/rollback")
    assert response.status_code == 200
    assert notes.rows("acme", "SELECT count(*) FROM notes") == [[0]]


def test_ended_transaction_is_gone(notes: LiveServer) -> None:
    transaction_id = _begin(notes)
    notes.client.post(f"/acme/api/db/transaction/{transaction_id}/commit")

    statement = _in(notes, transaction_id, "SELECT 1")
    commit = notes.client.post(f"/acme/api/db/transaction/{transaction_id}/commit")
    assert statement.status_code == 410
    assert commit.status_code == 410
    assert "expired or unknown" in statement.json()["error"]


def test_other_token_gets_404(start_server: Any) -> None:
    from dorm_sqlalchemy.server import TokenScope

    server = start_server(tokens={"other-token": TokenScope()})
    transaction_id = _begin(server)
    other = httpx.Client(base_url=server.url, headers={"Authorization": "Bearer other-token"})
    with other:
        response = other.post(
            "/acme/api/db/query/raw", json={"sql": "SELECT 1"}, headers={HEADER: transaction_id}
        )
    assert response.status_code == 404


def test_other_tenant_gets_404(notes: LiveServer) -> None:
    transaction_id = _begin(notes)
    assert _in(notes, transaction_id, "SELECT 1", tenant="globex").status_code == 404


def test_savepoint_rolled_back(notes: LiveServer) -> None:
    transaction_id = _begin(notes)
    _in(notes, transaction_id, "INSERT INTO notes (body) VALUES ('kept')")
    assert _in(notes, transaction_id, "SAVEPOINT inner").status_code == 200
    _in(notes, transaction_id, "INSERT INTO notes (body) VALUES ('undone')")
    assert _in(notes, transaction_id, "ROLLBACK TO inner").status_code == 200
    assert _in(notes, transaction_id, "RELEASE inner").status_code == 200
    notes.client.post(f"/acme/api/db/transaction/{transaction_id}/commit")

    assert notes.rows("acme", "SELECT body FROM notes") == [["kept"]]


@pytest.mark.parametrize("sql", ["BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT _dorm_request"])
def test_transaction_control_denied_inside(notes: LiveServer, sql: str) -> None:
    transaction_id = _begin(notes)
    assert _in(notes, transaction_id, sql).status_code == 403


def test_savepoint_denied_without_header(notes: LiveServer) -> None:
    assert notes.sql("acme", "SAVEPOINT x").status_code == 403


def test_failed_statement_keeps_transaction(notes: LiveServer) -> None:
    transaction_id = _begin(notes)
    _in(notes, transaction_id, "INSERT INTO notes (body) VALUES ('a')")
    failed = notes.client.post(
        "/acme/api/db/query/raw",
        json={"transaction": [
            {"sql": "INSERT INTO notes (body) VALUES ('b')"},
            {"sql": "INSERT INTO notes (body) VALUES ('a')"},
        ]},
        headers={HEADER: transaction_id},
    )
    notes.client.post(f"/acme/api/db/transaction/{transaction_id}/commit")

    assert failed.status_code == 409
    assert notes.rows("acme", "SELECT body FROM notes") == [["a"]]


def test_stream_inside_transaction(notes: LiveServer) -> None:
    transaction_id = _begin(notes)
    _in(notes, transaction_id, "INSERT INTO notes (body) VALUES ('a')")
    response = notes.client.post(
        "/acme/api/db/query/stream",
        json={"sql": "SELECT body FROM notes"},
        headers={HEADER: transaction_id},
    )
    after = _in(notes, transaction_id, "SELECT count(*) FROM notes")
    notes.client.post(f"/acme/api/db/transaction/{transaction_id}/rollback")

    assert response.status_code == 200
    assert '{"row":{"body":"a"}}' in response.text.replace(" ", "")
    assert after.status_code == 200


def test_idle_transaction_expires(notes: LiveServer) -> None:
    transaction_id = _begin(notes, idle_timeout=0.5)
    _in(notes, transaction_id, "INSERT INTO notes (body) VALUES ('a')")
    time.sleep(1.5)

    assert _in(notes, transaction_id, "SELECT 1").status_code == 410
    assert notes.sql("acme", "INSERT INTO notes (body) VALUES ('b')").status_code == 200
    assert notes.rows("acme", "SELECT body FROM notes") == [["b"]]


def test_crashed_client_releases_lock(notes: LiveServer) -> None:
    crashed = httpx.Client(base_url=notes.url, headers=notes.client.headers)
    response = crashed.post("/acme/api/db/transaction", json={"idle_timeout": 1})
    crashed.post(
        "/acme/api/db/query/raw",
        json={"sql": "INSERT INTO notes (body) VALUES ('lost')"},
        headers={HEADER: response.json()["id"]},
    )
    crashed.close()

    started = time.monotonic()
    written = notes.sql("acme", "INSERT INTO notes (body) VALUES ('next')")
    assert written.status_code == 200, written.text
    assert time.monotonic() - started < 4
    assert notes.rows("acme", "SELECT body FROM notes") == [["next"]]


def test_cap_answers_503(start_server: Any) -> None:
    server = start_server(limits=ServerLimits(max_transactions=2))
    _begin(server, "t1", mode="deferred")
    _begin(server, "t2", mode="deferred")

    response = server.client.post("/t3/api/db/transaction")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    "body",
    [{"mode": "exclusive"}, {"idle_timeout": 0}, {"idle_timeout": 301}, {"idle_timeout": True}, {"x": 1}, [1]],
)
def test_begin_rejects_bad_body(notes: LiveServer, body: Any) -> None:
    assert notes.client.post("/acme/api/db/transaction", json=body).status_code == 400


async def test_close_rolls_back_open(dorm: Any) -> None:
    with dorm.raw_connection("acme") as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    manager = TransactionManager(dorm, ServerLimits())
    manager.start()
    record = await manager.begin("acme", token_hash(None), mode="immediate", idle_timeout=30)
    record.connection.execute("INSERT INTO notes (body) VALUES ('a')")

    await manager.close()

    assert record.ended
    with dorm.raw_connection("acme") as connection:
        connection.execute("BEGIN IMMEDIATE")
        count = connection.execute("SELECT count(*) FROM notes").fetchone()[0]
        connection.rollback()
    assert count == 0


@pytest.mark.parametrize("writer", ["insert", "with insert", "deferred transaction"])
def test_busy_tenant_leaves_threads_for_others(
    start_server: Any, make_dorm: Any, writer: str
) -> None:
    import concurrent.futures

    live = start_server(make_dorm(busy_timeout=2))
    for tenant in ("busy", "other"):
        live.sql(tenant, "CREATE TABLE t (x)")
    holder = _begin(live, "busy", mode="immediate")

    # More waiting writers than the server has worker threads (40).
    def write_busy() -> int:
        headers = {}
        if writer == "deferred transaction":
            headers[HEADER] = _begin(live, "busy", mode="deferred")
        sql = "INSERT INTO t VALUES (1)"
        if writer == "with insert":
            sql = "WITH one(x) AS (SELECT 1) INSERT INTO t SELECT x FROM one"
        return live.sql("busy", sql, headers=headers).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=48) as pool:
        waiting = [pool.submit(write_busy) for _ in range(48)]
        time.sleep(0.5)
        started = time.monotonic()
        other = live.sql("other", "INSERT INTO t VALUES (1)")
        other_seconds = time.monotonic() - started
        statuses = [future.result() for future in waiting]
    live.client.post(f"/busy/api/db/transaction/{holder}/rollback")

    assert other.status_code == 200
    assert other_seconds < 1.0
    assert set(statuses) == {503}
