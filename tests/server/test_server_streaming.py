"""``/query/stream``: NDJSON lines, row formats, errors, disconnects and flat memory."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from dorm_sqlalchemy.server import ServerLimits

from .conftest import SECRET, LiveServer

SERIES = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT {n}) SELECT x FROM c"


def _stream(server: LiveServer, body: dict[str, Any], query: str = "") -> httpx.Response:
    return server.client.post(f"/acme/api/db/query/stream{query}", json=body)


def _lines(response: httpx.Response) -> list[Any]:
    return [json.loads(line) for line in response.text.splitlines()]


def test_stream_lines_in_dorm_format(server: LiveServer) -> None:
    server.sql("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    server.sql("acme", "INSERT INTO t VALUES (1, 'a'), (2, 'b')")

    response = _stream(server, {"sql": "SELECT id, name FROM t ORDER BY id"})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert _lines(response) == [
        {"metadata": {"columnNames": ["id", "name"]}},
        {"row": {"id": 1, "name": "a"}},
        {"row": {"id": 2, "name": "b"}},
        {"metadata": {"rowsRead": 2, "rowsWritten": 0}},
    ]


def test_stream_rows_as_arrays_keep_duplicates(server: LiveServer) -> None:
    response = _stream(server, {"sql": "SELECT 1 AS id, 2 AS id"}, "?rows=array")

    assert _lines(response) == [
        {"metadata": {"columnNames": ["id", "id"]}},
        {"row": [1, 2]},
        {"metadata": {"rowsRead": 1, "rowsWritten": 0}},
    ]


def test_stream_values_use_json_encoding(server: LiveServer) -> None:
    response = _stream(server, {"sql": "SELECT x'01', 9007199254740993, 1.0, NULL"}, "?rows=array")

    assert _lines(response)[1] == {
        "row": [{"$blob": "AQ=="}, {"$int": "9007199254740993"}, 1.0, None]
    }


def test_stream_parameters(server: LiveServer) -> None:
    response = _stream(server, {"sql": "SELECT ? + 1 AS n", "params": [{"$int": "41"}]})

    assert _lines(response)[1] == {"row": {"n": 42}}


def test_stream_write_commits_at_end(server: LiveServer) -> None:
    server.sql("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY)")

    response = _stream(
        server, {"sql": "INSERT INTO t SELECT x FROM (" + SERIES.format(n=5) + ") RETURNING id"}
    )

    assert _lines(response)[-1] == {"metadata": {"rowsRead": 5, "rowsWritten": 5}}
    assert server.rows("acme", "SELECT count(*) FROM t") == [[5]]


@pytest.mark.parametrize(
    ("body", "query", "fragment"),
    [
        ({"sql": "SELEC 1"}, "", "syntax error"),
        ({"sql": "SELECT 1; SELECT 2"}, "", "more than one statement"),
        ({"transaction": [{"sql": "SELECT 1"}]}, "", "one statement"),
        ({"sql": "SELECT 1"}, "?rows=table", "invalid rows"),
    ],
)
def test_stream_errors_before_first_line_are_json(
    server: LiveServer, body: dict[str, Any], query: str, fragment: str
) -> None:
    response = _stream(server, body, query)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert fragment in response.json()["error"]


def test_stream_sandbox_denial_is_403(server: LiveServer) -> None:
    response = _stream(server, {"sql": "ATTACH 'x.db' AS x"})

    assert response.status_code == 403


def test_stream_error_midway_ends_with_error_line(server: LiveServer) -> None:
    sql = (
        "SELECT x, CASE WHEN x = 700 THEN json('not json') ELSE x END FROM ("
        + SERIES.format(n=1000)
        + ")"
    )

    response = _stream(server, {"sql": sql}, "?rows=array")
    lines = _lines(response)

    assert response.status_code == 200
    assert "malformed JSON" in lines[-1]["error"]
    assert all("metadata" not in line for line in lines[1:])
    assert 1 < len(lines) - 1 < 701


def test_stream_error_midway_rolls_back_write(server: LiveServer) -> None:
    server.sql("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    sql = (
        "INSERT INTO t SELECT x FROM ("
        + SERIES.format(n=1000)
        + ") RETURNING id, CASE WHEN id = 900 THEN json('bad') END"
    )

    lines = _lines(_stream(server, {"sql": sql}))

    assert "error" in lines[-1]
    assert server.rows("acme", "SELECT count(*) FROM t") == [[0]]


def test_disconnect_rolls_back_and_releases_lock(server: LiveServer) -> None:
    server.sql("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    sql = "INSERT INTO t SELECT x FROM (" + SERIES.format(n=200_000) + ") RETURNING id"

    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {SECRET}"}, timeout=30
    ) as client:
        with client.stream("POST", "/acme/api/db/query/stream", json={"sql": sql}) as response:
            lines = response.iter_lines()
            first = [next(lines) for _ in range(3)]

    started = time.monotonic()
    write = server.sql("acme", "INSERT INTO t VALUES (-1)")

    assert json.loads(first[0]) == {"metadata": {"columnNames": ["id"]}}
    assert write.status_code == 200
    assert time.monotonic() - started < 4
    assert server.rows("acme", "SELECT count(*) FROM t") == [[1]]


def _open_raw_stream(live: LiveServer, sql: str, receive_buffer: int) -> socket.socket:
    """Send a /query/stream request on a socket with a small receive buffer; return the socket."""
    host, port = live.url.removeprefix("http://").rstrip("/").split(":")
    body = json.dumps({"sql": sql}).encode()
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    client.connect((host, int(port)))
    client.sendall(
        b"POST /acme/api/db/query/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + f"Authorization: Bearer {SECRET}\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return client


def test_stalled_reader_rolls_back_and_releases_lock(start_server: Any) -> None:
    live = start_server(limits=ServerLimits(stream_stall_timeout=1.0))
    live.sql("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    live.sql("acme", "INSERT INTO t SELECT x, printf('%0300d', x) FROM (" + SERIES.format(n=20_000) + ")")

    # A client that reads one chunk, then nothing.
    client = _open_raw_stream(live, "UPDATE t SET v = v || 'x' RETURNING id, v", 4096)
    first = client.recv(100)
    try:
        started = time.monotonic()
        write = live.sql("acme", "INSERT INTO t VALUES (-1, 'other writer')")
        waited = time.monotonic() - started
    finally:
        client.close()

    assert first.startswith(b"HTTP/1.1 200")
    assert write.status_code == 200
    assert waited < 4
    assert live.rows("acme", "SELECT count(*) FROM t WHERE v LIKE '%x'") == [[0]]


def test_slow_steady_reader_gets_whole_stream(start_server: Any) -> None:
    live = start_server(limits=ServerLimits(stream_stall_timeout=1.0))
    live.sql("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    live.sql("acme", "INSERT INTO t SELECT x, printf('%016000d', x) FROM (" + SERIES.format(n=520) + ")")

    # About 2 MB/s: the first batch of 8 MB takes longer than the stall
    # timeout to drain, beyond what the sockets' buffers hold.
    client = _open_raw_stream(live, "SELECT id, v FROM t", 65536)
    received = bytearray()
    try:
        while chunk := client.recv(65536):
            received += chunk
            time.sleep(0.032)
    finally:
        client.close()

    assert received.count(b'{"row":') == 520
    assert b'"rowsRead": 520' in received or b'"rowsRead":520' in received


def test_many_abandoned_streams_keep_server_usable(server: LiveServer) -> None:
    for _ in range(20):
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {SECRET}"}
        ) as client:
            with client.stream(
                "POST", "/acme/api/db/query/stream", json={"sql": SERIES.format(n=100_000)}
            ) as response:
                next(response.iter_lines())

    assert server.rows("acme", "SELECT 42") == [[42]]


# -- memory ----------------------------------------------------------------------------


def _start_subprocess_server(root: Path) -> tuple[subprocess.Popen[str], str, threading.Thread]:
    environment = dict(os.environ, DORM_SECRET=SECRET)
    process = subprocess.Popen(
        [sys.executable, "-m", "dorm_sqlalchemy.server.cli", "--root", str(root), "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 20
    url = None
    while url is None and time.monotonic() < deadline:
        line = process.stderr.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        if match:
            url = match.group(1)
    if url is None:
        process.kill()
        process.wait()
        raise RuntimeError("the server subprocess did not report its URL")
    # Keep draining stderr so the server never blocks on a full pipe.
    drain = threading.Thread(target=process.stderr.read, daemon=True)
    drain.start()
    return process, url, drain


@pytest.mark.timeout(300)
def test_stream_million_rows_in_flat_memory(tmp_path: Path) -> None:
    process, url, drain = _start_subprocess_server(tmp_path / "tenants")
    server_process = psutil.Process(process.pid)
    headers = {"Authorization": f"Bearer {SECRET}"}
    peak = 0
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            warm_up = client.post(
                "/acme/api/db/query/stream", json={"sql": SERIES.format(n=50_000)}
            )
            assert warm_up.status_code == 200
            baseline = server_process.memory_info().rss

            sql = (
                "SELECT x, 'row number ' || x AS label, randomblob(16) AS token FROM ("
                + SERIES.format(n=1_000_000)
                + ")"
            )
            rows = 0
            last: Any = None
            with client.stream("POST", "/acme/api/db/query/stream", json={"sql": sql}) as response:
                for index, line in enumerate(response.iter_lines()):
                    if index % 50_000 == 0:
                        peak = max(peak, server_process.memory_info().rss)
                    if line.startswith('{"row"'):
                        rows += 1
                    last = line
    finally:
        process.terminate()
        process.wait(timeout=30)
        drain.join(timeout=10)
        assert process.stderr is not None
        process.stderr.close()

    growth = peak - baseline
    print(f"server RSS: baseline {baseline / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB")
    assert rows == 1_000_000
    assert json.loads(last) == {"metadata": {"rowsRead": 1_000_000, "rowsWritten": 0}}
    assert growth < 40 * 1024 * 1024, f"server RSS grew by {growth / 2**20:.1f} MiB"
    assert process.returncode is not None
