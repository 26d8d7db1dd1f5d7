"""Benchmark the ``dorm+http`` remote dialect against the local engine.

    .venv/bin/python benchmarks/remote.py [--quick] [--json FILE]

Figures, each with its baseline in the same run:

1. A point query (``SELECT ... WHERE id = ?``) through a ``dorm+http``
   engine against the same query through ``dorm.engine(t)`` on the same
   file: the round trip the HTTP layer adds.
2. Streaming 1,000,000 rows with ``stream_results=True`` through
   ``dorm+http``: rows per second, and the client's peak resident memory,
   measured in a child process so the server and the loading of the rows do
   not count.

The server is ``python -m dorm_sqlalchemy.server.cli`` on 127.0.0.1 with a
random port and secret, stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _common import Figure, add_common_arguments, print_machine, print_summary, run_interleaved, write_json
from sqlalchemy import create_engine, text

from dorm_sqlalchemy import Dorm

TENANT = "bench"
ROWS = 10_000


def start_server(root: Path, secret: str) -> tuple[subprocess.Popen[str], int]:
    """Start ``dorm serve`` on a free port and return the process and its port."""
    environment = {**os.environ, "DORM_SECRET": secret}
    process = subprocess.Popen(
        [sys.executable, "-m", "dorm_sqlalchemy.server.cli", "--root", str(root), "--host", "127.0.0.1", "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=environment,
    )
    deadline = time.monotonic() + 30
    assert process.stderr is not None
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if match:
            return process, int(match.group(1))
        if process.poll() is not None:
            break
    process.kill()
    raise RuntimeError("dorm serve did not report its port within 30 s")


def stop_server(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stderr is not None:
        process.stderr.close()


def point_queries(root: Path, url: str, iterations: int, rounds: int) -> list[Figure]:
    dorm = Dorm(root=root)
    local = dorm.engine(TENANT)
    remote = create_engine(url, isolation_level="AUTOCOMMIT")
    query = text("SELECT id, name FROM items WHERE id = :id")
    local_connection = local.connect()
    remote_connection = remote.connect()

    def run_local(count: int) -> None:
        for index in range(count):
            local_connection.execute(query, {"id": index % ROWS + 1}).one()

    def run_remote(count: int) -> None:
        for index in range(count):
            remote_connection.execute(query, {"id": index % ROWS + 1}).one()

    try:
        timings = run_interleaved(
            {"local": run_local, "remote": run_remote}, iterations=iterations, rounds=rounds, warmup=50
        )
    finally:
        local_connection.close()
        remote_connection.close()
        remote.dispose()
        dorm.close()

    return [
        Figure(
            "point query: dorm+http engine",
            timings.median("remote") * 1e6,
            "µs",
            baseline=timings.median("local") * 1e6,
            baseline_name="dorm.engine(t), same file",
            paired_ratio=timings.ratio("remote", "local"),
        )
    ]


STREAM_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from sqlalchemy import create_engine, text

    def hwm_kib():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    engine = create_engine(sys.argv[1], isolation_level="AUTOCOMMIT")
    before = hwm_kib()
    started = time.perf_counter()
    count = 0
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True).execute(
            text("SELECT id, name FROM big")
        )
        for _ in result:
            count += 1
    elapsed = time.perf_counter() - started
    print(json.dumps({"rows": count, "seconds": elapsed, "hwm_before_kib": before, "hwm_kib": hwm_kib()}))
    """
)


def stream(url: str, rows: int) -> list[Figure]:
    completed = subprocess.run(
        [sys.executable, "-c", STREAM_CHILD, url], capture_output=True, text=True, timeout=900, check=True
    )
    result = json.loads(completed.stdout)
    if result["rows"] != rows:
        raise RuntimeError(f"streamed {result['rows']} rows, expected {rows}")
    return [
        Figure(f"stream {rows:,} rows: rate", rows / result["seconds"], "rows/s"),
        Figure(
            f"stream {rows:,} rows: client peak RSS",
            result["hwm_kib"] / 1024,
            "MiB",
            baseline=result["hwm_before_kib"] / 1024,
            baseline_name="before the query",
        ),
    ]


def prepare(root: Path, stream_rows: int) -> None:
    with Dorm(root=root) as dorm:
        dorm.exec(TENANT, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        with dorm.engine(TENANT).begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO items WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                f"WHERE i < {ROWS}) SELECT i, printf('item %06d', i) FROM n"
            )
            connection.exec_driver_sql("CREATE TABLE big (id INTEGER PRIMARY KEY, name TEXT)")
            connection.exec_driver_sql(
                "INSERT INTO big WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                f"WHERE i < {stream_rows}) SELECT i, printf('row %08d with some text', i) FROM n"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    args = parser.parse_args(argv)

    machine = print_machine()
    iterations, rounds, stream_rows = (200, 3, 50_000) if args.quick else (1000, 11, 1_000_000)
    workdir = Path(tempfile.mkdtemp(prefix="dorm-remote-", dir=args.tmp_dir))
    root = workdir / "tenants"
    secret = secrets.token_urlsafe(16)
    try:
        prepare(root, stream_rows)
        process, port = start_server(root, secret)
        url = f"dorm+http://:{secret}@127.0.0.1:{port}/{TENANT}/api/db"
        try:
            figures = point_queries(root, url, iterations, rounds)
            figures += stream(url, stream_rows)
        finally:
            stop_server(process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print_summary(figures, title="Remote dialect")
    if args.json:
        write_json(args.json, figures, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
