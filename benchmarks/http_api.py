"""The HTTP API of ``dorm serve`` against Datasette and a bare Starlette endpoint, with ``wrk``.

    .venv/bin/python benchmarks/http_api.py [--quick] [--tmp-dir DIR] [--json FILE]
        [--datasette-python PATH] [--duration SECONDS] [--rounds N]

Needs ``wrk`` on the PATH (Debian: ``apt-get install wrk``), ``curl``, and a
separate virtual environment with Datasette (``--datasette-python``, default
``/tmp/datasette-venv/bin/python``; create it with
``python3 -m venv /tmp/datasette-venv && /tmp/datasette-venv/bin/pip install datasette``).
Every server listens on 127.0.0.1 only.

Two parts:

* Point query: ``SELECT * FROM t WHERE id = ?`` with a random id from
  1..10000 on a 10,000-row table, measured with ``wrk`` in requests per
  second against three servers on the same database file, each run by
  uvicorn with one worker and the same settings:

  - ``dorm serve`` with a secret: ``POST /bench/api/db/query/raw``;
  - Datasette: ``GET /bench.json?sql=...&id=N&_shape=array``. Goal: dorm at
    least 4x its rate;
  - ``http_api_baselines.py starlette``: the same body on plain ``sqlite3``,
    run in the thread pool. Goal: dorm at least 0.6x its rate;
  - ``http_api_baselines.py starlette-loop``: the same, run on the event
    loop, which ``dorm serve`` also does for short reads. Held to the same
    0.6x goal, as the stricter ceiling.

  Every round runs ``wrk`` once per server with the order rotated between
  rounds; the ratio is the median of the per-round ratios.

* Stream: ``POST /stream/api/db/query/stream`` of 1,000,000 rows read by
  ``curl`` into a pipe, on a freshly started ``dorm serve``. The figures are
  MB/s (10^6 bytes of response per second) and the server's peak resident
  memory, sampled from ``/proc/<pid>/status`` every 20 ms. Goals: at least
  50 MB/s, and a peak under 100 MB.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx

from _common import Figure, add_common_arguments, print_machine, print_summary, write_json
from dorm_sqlalchemy import Dorm
from dorm_sqlalchemy.server.cli import http_stack

__all__ = ["Settings", "measure_point_query", "measure_stream", "run"]

BENCHMARKS = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"

POINT_TENANT = "bench"
POINT_ROWS = 10_000
POINT_QUERY = "SELECT * FROM t WHERE id = ?"
DATASETTE_QUERY = "SELECT * FROM t WHERE id = :id"

STREAM_TENANT = "stream"
STREAM_QUERY = "SELECT * FROM big"

DATASETTE_GOAL = 4.0
STARLETTE_GOAL = 0.6
STREAM_MB_PER_S_GOAL = 50.0
STREAM_PEAK_RSS_GOAL_MB = 100.0

DORM = "dorm serve"
DATASETTE = "Datasette"
STARLETTE = "bare Starlette"
STARLETTE_LOOP = "bare Starlette on the event loop"

READY_TIMEOUT = 60.0
RSS_SAMPLE_SECONDS = 0.02
STREAM_TIMEOUT = 300.0


@dataclass(frozen=True)
class Settings:
    """Sizes and load settings of one run."""

    duration: int
    rounds: int
    warmup: int
    threads: int
    connections: int
    stream_rows: int
    stream_runs: int

    @classmethod
    def for_run(cls, args: argparse.Namespace) -> Settings:
        if args.quick:
            return cls(duration=3, rounds=1, warmup=1, threads=2, connections=16,
                       stream_rows=100_000, stream_runs=1)
        return cls(duration=args.duration, rounds=args.rounds, warmup=5, threads=2,
                   connections=16, stream_rows=1_000_000, stream_runs=3)


# -- data ------------------------------------------------------------------


def _create_tenants(root: Path, stream_rows: int) -> dict[str, Path]:
    """Create the two tenants through the library, then fill them with plain ``sqlite3``."""
    with Dorm(root=root) as dorm:
        paths = {}
        for tenant in (POINT_TENANT, STREAM_TENANT):
            dorm.create(tenant)
            path = dorm.path(tenant)
            assert path is not None
            paths[tenant] = path

    with sqlite3.connect(paths[POINT_TENANT]) as connection:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, email TEXT, score REAL)")
        connection.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", _people(POINT_ROWS))

    with sqlite3.connect(paths[STREAM_TENANT]) as connection:
        connection.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, name TEXT, email TEXT, score REAL)")
        connection.executemany("INSERT INTO big VALUES (?, ?, ?, ?)", _people(stream_rows))
    return paths


def _people(count: int) -> Iterator[tuple[int, str, str, float]]:
    for key in range(1, count + 1):
        yield key, f"user {key:07d}", f"user{key:07d}@example.com", key * 0.25


# -- servers ---------------------------------------------------------------


@dataclass
class Server:
    """A server process started by this script, with the URL it listens on."""

    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _start(name: str, command: Sequence[str], port: int, log: Path, env: dict[str, str]) -> Server:
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    return Server(name, process, f"http://{HOST}:{port}", log)


def _wait_ready(server: Server, probe: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}: see {server.log}")
        try:
            httpx.get(server.base_url + probe, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not respond within {READY_TIMEOUT:g} s: see {server.log}")


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def _start_dorm(root: Path, secret: str, log: Path) -> Server:
    port = _free_port()
    env = dict(os.environ, DORM_SECRET=secret)
    command = [str(VENV_BIN / "dorm"), "--root", str(root), "serve", "--host", HOST, "--port", str(port)]
    server = _start(DORM, command, port, log, env)
    _wait_ready(server, "/openapi.json")
    return server


def _start_baseline(name: str, python: str, database: Path, log: Path) -> Server:
    port = _free_port()
    kind = {STARLETTE: "starlette", STARLETTE_LOOP: "starlette-loop"}.get(name, "datasette")
    command = [python, str(BENCHMARKS / "http_api_baselines.py"), kind, str(database), str(port)]
    if name != DATASETTE:
        # The same HTTP implementation and event loop as dorm serve; Datasette
        # keeps uvicorn's default in its own environment.
        stack = http_stack()
        command += ["--http", stack["http"], "--loop", stack["loop"]]
    server = _start(name, command, port, log, dict(os.environ))
    _wait_ready(server, "/")
    return server


@contextmanager
def _servers(started: list[Server]) -> Iterator[list[Server]]:
    try:
        yield started
    finally:
        for server in started:
            _stop(server)


# -- point query -----------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The load ``wrk`` sends to one server: the URL and a Lua script that builds each request."""

    url: str
    lua: str


_LUA_PRELUDE = """
local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("seed", thread_count)
end
function init(args)
  math.randomseed(os.time() * 1000 + seed * 7919)
end
"""


def _dorm_target(server: Server, secret: str) -> Target:
    lua = _LUA_PRELUDE + f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {secret}"
request = function()
  local body = '{{"sql": "{POINT_QUERY}", "params": [' .. math.random(1, {POINT_ROWS}) .. ']}}'
  return wrk.format(nil, nil, nil, body)
end
"""
    return Target(f"{server.base_url}/{POINT_TENANT}/api/db/query/raw", lua)


def _starlette_target(server: Server) -> Target:
    lua = _LUA_PRELUDE + f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local body = '{{"sql": "{POINT_QUERY}", "params": [' .. math.random(1, {POINT_ROWS}) .. ']}}'
  return wrk.format(nil, nil, nil, body)
end
"""
    return Target(f"{server.base_url}/query", lua)


def _datasette_path(key: int | None) -> str:
    # The id goes last so the Lua script can append it.
    query = urlencode({"sql": DATASETTE_QUERY, "_shape": "array"})
    return f"/{POINT_TENANT}.json?{query}&id=" + ("" if key is None else str(key))


def _datasette_target(server: Server) -> Target:
    lua = _LUA_PRELUDE + f"""
request = function()
  return wrk.format("GET", "{_datasette_path(None)}" .. math.random(1, {POINT_ROWS}))
end
"""
    return Target(server.base_url + "/", lua)


def _check_answers(
    dorm: Server, starlettes: Sequence[Server], datasette: Server, secret: str
) -> None:
    """Raise AssertionError unless every server returns row 7 for the point query."""
    expected = [7, "user 0000007", "user0000007@example.com", 1.75]
    answer = httpx.post(
        f"{dorm.base_url}/{POINT_TENANT}/api/db/query/raw",
        json={"sql": POINT_QUERY, "params": [7]},
        headers={"Authorization": f"Bearer {secret}"},
    ).json()
    assert answer["result"]["rows"] == [expected], answer

    for starlette in starlettes:
        answer = httpx.post(f"{starlette.base_url}/query", json={"sql": POINT_QUERY, "params": [7]}).json()
        assert answer["result"]["rows"] == [expected], answer

    answer = httpx.get(datasette.base_url + _datasette_path(7)).json()
    assert [list(row.values()) for row in answer] == [expected], answer


@dataclass
class WrkResult:
    requests_per_second: float
    latency_p50_ms: float
    latency_p99_ms: float


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _latency_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {label} latency in the wrk output:\n{text}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def _run_wrk(target: Target, settings: Settings, duration: int, script: Path) -> WrkResult:
    script.write_text(target.lua, encoding="utf-8")
    command = [
        "wrk", f"-t{settings.threads}", f"-c{settings.connections}", f"-d{duration}s",
        "--latency", "--timeout", "10s", "-s", str(script), target.url,
    ]
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=duration + 30
    ).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw failed requests on {target.url}:\n{output}")
    match = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no Requests/sec in the wrk output:\n{output}")
    return WrkResult(float(match.group(1)), _latency_ms(output, "50%"), _latency_ms(output, "99%"))


@dataclass
class PointResults:
    per_round: dict[str, list[WrkResult]] = field(default_factory=dict)

    def median_rate(self, name: str) -> float:
        return statistics.median(result.requests_per_second for result in self.per_round[name])

    def median_latency(self, name: str, attribute: str) -> float:
        return statistics.median(getattr(result, attribute) for result in self.per_round[name])

    def round_ratios(self, name: str, baseline: str) -> list[float]:
        return [
            case.requests_per_second / base.requests_per_second
            for case, base in zip(self.per_round[name], self.per_round[baseline])
        ]


def measure_point_query(
    root: Path, database: Path, settings: Settings, datasette_python: str, work: Path
) -> tuple[list[Figure], PointResults]:
    """Run the point query against the three servers, round by round, and build the figures."""
    secret = secrets.token_urlsafe(32)
    started: list[Server] = []
    with _servers(started):
        started.append(_start_dorm(root, secret, work / "dorm-point.log"))
        started.append(_start_baseline(STARLETTE, sys.executable, database, work / "starlette.log"))
        started.append(_start_baseline(DATASETTE, datasette_python, database, work / "datasette.log"))
        started.append(
            _start_baseline(STARLETTE_LOOP, sys.executable, database, work / "starlette-loop.log")
        )
        dorm, starlette, datasette, starlette_loop = started
        _check_answers(dorm, [starlette, starlette_loop], datasette, secret)
        targets = {
            DORM: _dorm_target(dorm, secret),
            DATASETTE: _datasette_target(datasette),
            STARLETTE: _starlette_target(starlette),
            STARLETTE_LOOP: _starlette_target(starlette_loop),
        }
        script = work / "request.lua"

        for target in targets.values():
            _run_wrk(target, settings, settings.warmup, script)

        results = PointResults({name: [] for name in targets})
        names = list(targets)
        for round_index in range(settings.rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                result = _run_wrk(targets[name], settings, settings.duration, script)
                results.per_round[name].append(result)
                print(
                    f"  round {round_index + 1} {name}: {result.requests_per_second:,.0f} req/s, "
                    f"p50 {result.latency_p50_ms:.2f} ms, p99 {result.latency_p99_ms:.2f} ms"
                )

    figures = [
        _rate_figure(results, DATASETTE, goal=DATASETTE_GOAL),
        _rate_figure(results, STARLETTE, goal=STARLETTE_GOAL),
        _rate_figure(results, STARLETTE_LOOP, goal=STARLETTE_GOAL),
    ]
    return figures, results


def _rate_figure(results: PointResults, baseline: str, *, goal: float) -> Figure:
    ratio = statistics.median(results.round_ratios(DORM, baseline))
    return Figure(
        f"point query: {DORM} vs {baseline}",
        results.median_rate(DORM),
        "req/s",
        baseline=results.median_rate(baseline),
        baseline_name=baseline,
        goal=f"≥ {goal}x",
        met=ratio >= goal,
        paired_ratio=ratio,
    )


# -- stream ----------------------------------------------------------------


def _status_kib(pid: int, field_name: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
    raise RuntimeError(f"{field_name} not found in /proc/{pid}/status")


def _mb(kib: int) -> float:
    return kib * 1024 / 1e6


class RssSampler:
    """Samples a process's ``VmRSS`` in a thread until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.samples.append(_status_kib(self.pid, "VmRSS"))
            self._stop.wait(RSS_SAMPLE_SECONDS)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class StreamRun:
    bytes_read: int
    seconds: float
    rss_before_mb: float
    rss_peak_mb: float
    rss_first_tenth_mb: float
    rss_last_tenth_mb: float
    hwm_after_mb: float

    @property
    def mb_per_second(self) -> float:
        return self.bytes_read / self.seconds / 1e6


def _stream_once(server: Server, secret: str, expected_rows: int) -> StreamRun:
    pid = server.process.pid
    rss_before = _status_kib(pid, "VmRSS")
    command = [
        "curl", "-sS", "--fail", "--max-time", str(int(STREAM_TIMEOUT)),
        "-H", f"Authorization: Bearer {secret}", "-H", "Content-Type: application/json",
        "--data-binary", f'{{"sql": "{STREAM_QUERY}"}}',
        f"{server.base_url}/{STREAM_TENANT}/api/db/query/stream",
    ]
    bytes_read = 0
    lines = 0
    tail = b""
    with RssSampler(pid) as sampler:
        started = time.perf_counter()
        with subprocess.Popen(command, stdout=subprocess.PIPE) as curl:
            assert curl.stdout is not None
            while chunk := curl.stdout.read(1 << 20):
                bytes_read += len(chunk)
                lines += chunk.count(b"\n")
                tail = (tail + chunk)[-200:]
        elapsed = time.perf_counter() - started
    if curl.returncode != 0:
        raise RuntimeError(f"curl failed with {curl.returncode} on the stream")

    closing = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    assert closing == f'{{"metadata":{{"rowsRead":{expected_rows},"rowsWritten":0}}}}'.encode(), closing
    assert lines == expected_rows + 2, lines

    samples = sampler.samples
    tenth = max(1, len(samples) // 10)
    return StreamRun(
        bytes_read=bytes_read,
        seconds=elapsed,
        rss_before_mb=_mb(rss_before),
        rss_peak_mb=_mb(max(samples)),
        rss_first_tenth_mb=_mb(max(samples[:tenth])),
        rss_last_tenth_mb=_mb(max(samples[-tenth:])),
        hwm_after_mb=_mb(_status_kib(pid, "VmHWM")),
    )


def measure_stream(root: Path, settings: Settings, work: Path) -> tuple[list[Figure], list[StreamRun]]:
    """Stream the big table from a fresh ``dorm serve`` and build the throughput and memory figures."""
    secret = secrets.token_urlsafe(32)
    runs = []
    started: list[Server] = []
    with _servers(started):
        started.append(_start_dorm(root, secret, work / "dorm-stream.log"))
        server = started[0]
        for index in range(settings.stream_runs):
            run = _stream_once(server, secret, settings.stream_rows)
            runs.append(run)
            print(
                f"  stream {index + 1}: {run.bytes_read / 1e6:.1f} MB in {run.seconds:.2f} s = "
                f"{run.mb_per_second:.1f} MB/s, {settings.stream_rows / run.seconds:,.0f} rows/s; "
                f"RSS before {run.rss_before_mb:.1f} MB, first tenth {run.rss_first_tenth_mb:.1f} MB, "
                f"last tenth {run.rss_last_tenth_mb:.1f} MB, peak {run.rss_peak_mb:.1f} MB, "
                f"VmHWM {run.hwm_after_mb:.1f} MB"
            )

    rate = statistics.median(run.mb_per_second for run in runs)
    peak = max(max(run.rss_peak_mb, run.hwm_after_mb) for run in runs)
    figures = [
        Figure(
            f"stream {settings.stream_rows:,} rows: throughput", rate, "MB/s",
            goal=f"≥ {STREAM_MB_PER_S_GOAL:g} MB/s", met=rate >= STREAM_MB_PER_S_GOAL,
        ),
        Figure(
            f"stream {settings.stream_rows:,} rows: server peak RSS", peak, "MB",
            baseline=runs[0].rss_before_mb, baseline_name="before the first stream",
            goal=f"< {STREAM_PEAK_RSS_GOAL_MB:g} MB", met=peak < STREAM_PEAK_RSS_GOAL_MB,
        ),
    ]
    return figures, runs


# -- driver ----------------------------------------------------------------


def run(args: argparse.Namespace) -> tuple[list[Figure], dict[str, object]]:
    """Create the tenants in a temporary directory, measure both parts and delete the directory."""
    settings = Settings.for_run(args)
    root = Path(tempfile.mkdtemp(prefix="dorm-bench-http-", dir=args.tmp_dir))
    work = root / "work"
    work.mkdir()
    try:
        paths = _create_tenants(root, settings.stream_rows)
        print(
            f"point query: {settings.rounds} rounds of wrk -t{settings.threads} "
            f"-c{settings.connections} -d{settings.duration}s per server"
        )
        point_figures, point_results = measure_point_query(
            root, paths[POINT_TENANT], settings, args.datasette_python, work
        )
        for baseline in (DATASETTE, STARLETTE, STARLETTE_LOOP):
            ratios = ", ".join(f"{ratio:.2f}" for ratio in point_results.round_ratios(DORM, baseline))
            print(f"  {DORM} / {baseline}, per round: {ratios}")
        for name in point_results.per_round:
            print(
                f"  {name}: median p50 {point_results.median_latency(name, 'latency_p50_ms'):.2f} ms, "
                f"p99 {point_results.median_latency(name, 'latency_p99_ms'):.2f} ms"
            )

        print(f"stream: {settings.stream_runs} runs of {settings.stream_rows:,} rows")
        stream_figures, stream_runs = measure_stream(root, settings, work)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    extra = {
        "point_query": {name: [vars(result) for result in results]
                        for name, results in point_results.per_round.items()},
        "stream": [vars(run) for run in stream_runs],
    }
    return point_figures + stream_figures, extra


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--datasette-python", default="/tmp/datasette-venv/bin/python",
        help="Python of a virtual environment with Datasette (default: /tmp/datasette-venv/bin/python)",
    )
    parser.add_argument("--duration", type=int, default=15, help="seconds of each wrk run (default: 15)")
    parser.add_argument("--rounds", type=int, default=5, help="wrk runs per server (default: 5)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None or shutil.which("curl") is None:
        parser.error("wrk and curl must be on the PATH (Debian: apt-get install wrk curl)")

    machine = print_machine()
    figures, extra = run(args)
    print_summary(figures, title="HTTP API")
    if args.json is not None:
        write_json(args.json, figures, machine, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
