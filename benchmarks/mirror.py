"""Mirroring: write cost, replication lag and catch-up rate with a SQLite aggregate.

    .venv/bin/python benchmarks/mirror.py [--quick] [--tmp-dir DIR] [--json FILE]

Three parts, each in fresh tenant directories of its own:

* Write cost. The same small write transactions, each inserting one row,
  against a registry without ``mirror=`` and against one with a SQLite
  aggregate: ``with dorm.engine(t).begin() as c: c.execute(insert(...))``
  (Core) and ``dorm.session(t)`` + ``add`` + ``commit`` (ORM), on 1 tenant
  and round-robin on 10 tenants. A third registry without ``mirror=`` writes
  to tenants whose capture triggers are installed: it shows the cost of the
  triggers alone, without the worker. The cases run interleaved, round by
  round, as in ``core.py`` (21 rounds of 1,000 commits per case). After each
  timed run of the mirrored registry, ``dorm.mirror.flush()`` is timed apart:
  that is the time the aggregate needs to catch up once the writes stop.
  The CPU time of the worker thread over the run and its flush is read from
  ``/proc`` (Linux). The next case starts only when the worker is idle, so
  it never competes with a case that does not mirror. Goal: at most 1.3x
  the cost of the same write without the mirror.
* Replication lag. A writer thread commits one row at a steady rate across
  10 tenants, round-robin. A prober thread polls the aggregate file with its
  own ``sqlite3`` connection about every millisecond, and for every commit
  (not a sample) records the time from the end of its transaction to the
  poll that first finds the row. The main thread samples ``dorm.mirror.lag()`` twice a
  second. Goal: p99 under 250 ms.
* Catch-up rate. A registry without ``mirror=`` writes 50,000 rows (5,000
  for each of 10 tenants, in transactions of 500 rows) into tenants whose
  capture triggers are installed. The rows wait in the tenants' outboxes,
  as after a stop of the application. Then ``Dorm(mirror=...)`` starts and
  ``flush()`` is timed: rows per second that the worker applies.
  A second burst of the same size is written while the worker runs, and the
  time from the last commit to the end of ``flush()`` is reported.

Every part checks that the aggregate finally holds as many rows per tenant
as the tenant, so a broken mirror cannot pass for a fast one.
"""

from __future__ import annotations

import gc
import itertools
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import String, insert
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from _common import Figure, Loop, Timings, run_script
from dorm_sqlalchemy import Dorm

__all__ = ["Sizes", "run"]

WRITE_GOAL = 1.3
LAG_P99_GOAL = 0.250
FLUSH_TIMEOUT = 120.0
"""Seconds any ``flush()`` of this script may take before the run fails."""

POLL_INTERVAL = 0.001
"""Seconds the lag prober sleeps between two polls of the aggregate."""

LAG_SAMPLE_INTERVAL = 0.5
"""Seconds between two calls of ``dorm.mirror.lag()`` during the lag run."""

BURST_TRANSACTION_ROWS = 500


class Base(DeclarativeBase):
    pass


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int]
    body: Mapped[str] = mapped_column(String(200))


INSERT_EVENT = insert(Event.__table__)


@dataclass(frozen=True)
class Sizes:
    """Sizes of the three parts: commits and rounds, lag run rate and duration, burst rows."""

    write_iterations: int
    write_rounds: int
    lag_rate: float
    lag_seconds: float
    burst_rows: int

    @classmethod
    def for_run(cls, quick: bool) -> Sizes:
        if quick:
            return cls(
                write_iterations=500, write_rounds=3, lag_rate=500.0, lag_seconds=2.0,
                burst_rows=5_000,
            )
        return cls(
            write_iterations=1_000, write_rounds=21, lag_rate=500.0, lag_seconds=10.0,
            burst_rows=50_000,
        )


def _tenant_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{index:02d}" for index in range(count)]


def _event_values(index: int) -> dict[str, Any]:
    return {"kind": "order", "amount": index, "body": f"event {index}"}


def _create_tenants(root: Path, tenants: Sequence[str]) -> None:
    """Create the tenants and their table before a mirrored registry opens them.

    A mirrored registry then installs the capture triggers when it opens a
    tenant and queues every existing tenant at start, so the timed writes
    are captured from the first one.
    """
    with Dorm(root=root) as dorm:
        for tenant in tenants:
            Base.metadata.create_all(dorm.engine(tenant))


def _open_mirrored(root: Path, aggregate_path: Path, tenants: Sequence[str]) -> Dorm:
    """Open a mirrored registry on existing tenants and wait until the aggregate is current."""
    dorm = Dorm(root=root, mirror=_aggregate_url(aggregate_path))
    try:
        for tenant in tenants:
            _check_capture_installed(dorm, tenant)
        _check_mirrored(dorm, tenants, aggregate_path)
    except BaseException:
        dorm.close()
        raise
    return dorm


def _aggregate_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _flush(dorm: Dorm) -> None:
    assert dorm.mirror is not None
    dorm.mirror.flush(timeout=FLUSH_TIMEOUT)


# -- correctness checks ----------------------------------------------------


def _tenant_row_count(dorm: Dorm, tenant: str) -> int:
    return int(dorm.exec(tenant, "SELECT count(*) FROM events").one()[0])


def _aggregate_row_counts(aggregate_path: Path) -> dict[str, int]:
    connection = sqlite3.connect(aggregate_path)
    try:
        rows = connection.execute("SELECT tenant, count(*) FROM events GROUP BY tenant").fetchall()
    finally:
        connection.close()
    return {tenant: count for tenant, count in rows}


def _check_mirrored(dorm: Dorm, tenants: Sequence[str], aggregate_path: Path) -> None:
    """Raise AssertionError unless the aggregate contains every tenant's rows."""
    _flush(dorm)
    in_aggregate = _aggregate_row_counts(aggregate_path)
    for tenant in tenants:
        in_tenant = _tenant_row_count(dorm, tenant)
        assert in_aggregate.get(tenant, 0) == in_tenant, (tenant, in_tenant, in_aggregate.get(tenant))


def _check_capture_installed(dorm: Dorm, tenant: str) -> None:
    """Raise AssertionError unless ``tenant``'s events table has the capture triggers."""
    triggers = {
        name
        for (name,) in dorm.exec(
            tenant, "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'events'"
        ).all()
    }
    assert len(triggers) == 3, (tenant, sorted(triggers))


# -- write cost ------------------------------------------------------------


def _core_loop(dorm: Dorm, tenants: Sequence[str]) -> Loop:
    counter = itertools.count()

    def loop(iterations: int) -> None:
        for _ in range(iterations):
            index = next(counter)
            with dorm.engine(tenants[index % len(tenants)]).begin() as connection:
                connection.execute(INSERT_EVENT, _event_values(index))

    return loop


def _orm_loop(dorm: Dorm, tenants: Sequence[str]) -> Loop:
    counter = itertools.count()

    def loop(iterations: int) -> None:
        for _ in range(iterations):
            index = next(counter)
            with dorm.session(tenants[index % len(tenants)]) as session:
                session.add(Event(**_event_values(index)))
                session.commit()

    return loop


@dataclass(frozen=True)
class WriteCase:
    """One timed write loop, and the registry whose mirror must catch up after it."""

    loop: Loop
    mirrored: Dorm | None


def _mirror_thread_id() -> int:
    """Return the kernel thread id of the one running mirror worker (named ``dorm-mirror``)."""
    workers = [t for t in threading.enumerate() if t.name == "dorm-mirror" and t.is_alive()]
    assert len(workers) == 1, workers
    native_id = workers[0].native_id
    assert native_id is not None
    return native_id


def _thread_cpu_seconds(native_id: int) -> float:
    """Return the CPU seconds a thread of this process has used, from ``/proc`` (Linux)."""
    with open(f"/proc/self/task/{native_id}/schedstat", encoding="ascii") as schedstat:
        return int(schedstat.read().split()[0]) / 1e9


@dataclass
class WriteTimings:
    """Per-round timings of the write cost, keyed by case name."""

    writes: Timings
    """Seconds per commit."""

    flushes: Timings
    """Seconds of ``flush()`` after each timed run."""

    worker_cpu: Timings
    """CPU seconds of the mirror worker per commit, over the timed run and its flush."""


def run_write_rounds(
    cases: Mapping[str, WriteCase], *, iterations: int, rounds: int, warmup: int
) -> WriteTimings:
    """Time every case once per round, rotating the order, and time each mirror's flush apart.

    A flush follows every mirrored run, so the next case starts with the
    worker idle. The worker's CPU time is read from the kernel around the
    run and its flush, so it shows the mirror's work apart from the 20 ms
    that the worker waits to batch commits.
    """
    worker = _mirror_thread_id()
    for case in cases.values():
        case.loop(warmup)
        if case.mirrored is not None:
            _flush(case.mirrored)

    names = list(cases)
    mirrored_names = [name for name in names if cases[name].mirrored is not None]
    timings = WriteTimings(
        Timings({name: [] for name in names}),
        Timings({name: [] for name in mirrored_names}),
        Timings({name: [] for name in mirrored_names}),
    )
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            case = cases[name]
            gc.collect()
            worker_cpu = _thread_cpu_seconds(worker)
            started = time.perf_counter()
            case.loop(iterations)
            elapsed = time.perf_counter() - started
            timings.writes.per_round[name].append(elapsed / iterations)

            if case.mirrored is not None:
                started = time.perf_counter()
                _flush(case.mirrored)
                timings.flushes.per_round[name].append(time.perf_counter() - started)
                worker_cpu = _thread_cpu_seconds(worker) - worker_cpu
                timings.worker_cpu.per_round[name].append(worker_cpu / iterations)
    return timings


def _write_figures(label: str, timings: WriteTimings, *, iterations: int) -> list[Figure]:
    mirrored, plain = f"{label}, mirror", f"{label}, no mirror"
    capture = f"{label}, capture only"
    write_ratio = timings.writes.ratio(mirrored, plain)
    return [
        Figure(
            f"write {label}: with mirror",
            timings.writes.median(mirrored) * 1e6,
            "µs",
            baseline=timings.writes.median(plain) * 1e6,
            baseline_name="no mirror",
            goal=f"≤ {WRITE_GOAL}x",
            met=write_ratio <= WRITE_GOAL,
            paired_ratio=write_ratio,
        ),
        Figure(
            f"write {label}: capture triggers only, no worker",
            timings.writes.median(capture) * 1e6,
            "µs",
            baseline=timings.writes.median(plain) * 1e6,
            baseline_name="no mirror",
            paired_ratio=timings.writes.ratio(capture, plain),
        ),
        Figure(
            f"write {label}: flush() after {iterations:,} commits",
            timings.flushes.median(mirrored),
            "s",
        ),
        Figure(
            f"write {label}: mirror worker CPU per commit",
            timings.worker_cpu.median(mirrored) * 1e6,
            "µs",
        ),
    ]


SOLO = ["solo"]
SHOPS = _tenant_names("shop", 10)
WRITE_WORKLOADS = (
    ("Core, 1 tenant", SOLO),
    ("Core, 10 tenants", SHOPS),
    ("ORM, 1 tenant", SOLO),
    ("ORM, 10 tenants", SHOPS),
)


def measure_write_cost(base: Path, sizes: Sizes) -> list[Figure]:
    """Time one-row write transactions with and without the mirror, interleaved."""
    aggregate_path = base / "write-aggregate.db"
    tenants = SOLO + SHOPS
    for directory in ("write-plain", "write-capture", "write-mirrored"):
        _create_tenants(base / directory, tenants)
    # Capture triggers without a worker: installed by a mirrored registry,
    # then written through a registry without mirror=, so the outboxes grow.
    _open_mirrored(base / "write-capture", base / "write-capture-aggregate.db", tenants).close()

    with Dorm(root=base / "write-plain") as plain, Dorm(
        root=base / "write-capture"
    ) as capture_only, _open_mirrored(base / "write-mirrored", aggregate_path, tenants) as mirrored:
        cases: dict[str, WriteCase] = {}
        for label, tenant_group in WRITE_WORKLOADS:
            make_loop = _core_loop if label.startswith("Core") else _orm_loop
            cases[f"{label}, no mirror"] = WriteCase(make_loop(plain, tenant_group), None)
            cases[f"{label}, capture only"] = WriteCase(make_loop(capture_only, tenant_group), None)
            cases[f"{label}, mirror"] = WriteCase(make_loop(mirrored, tenant_group), mirrored)

        timings = run_write_rounds(
            cases,
            iterations=sizes.write_iterations,
            rounds=sizes.write_rounds,
            warmup=max(20, sizes.write_iterations // 10),
        )
        _check_mirrored(mirrored, tenants, aggregate_path)

    figures = []
    for label, _ in WRITE_WORKLOADS:
        ratios = timings.writes.round_ratios(f"{label}, mirror", f"{label}, no mirror")
        print(f"  write {label}, mirror / no mirror, per round: " + ", ".join(f"{r:.2f}" for r in ratios))
        figures += _write_figures(label, timings, iterations=sizes.write_iterations)
    return figures


# -- replication lag -------------------------------------------------------


class LagProbe:
    """Commit times written by the writer thread and visibility times seen by the prober."""

    def __init__(self, tenants: Sequence[str]) -> None:
        self.tenants = list(tenants)
        self.committed: dict[str, list[float]] = {tenant: [] for tenant in tenants}
        """Per tenant, the end of the transaction that inserted id ``i + 1``, at index ``i``."""

        self.lags: list[float] = []
        self.writer_done = threading.Event()
        self.commits = 0
        self.write_seconds = 0.0

    def write(self, dorm: Dorm, rate: float, seconds: float) -> None:
        """Commit one row every ``1 / rate`` seconds, round-robin over the tenants."""
        total = int(rate * seconds)
        started = time.perf_counter()
        try:
            for index in range(total):
                due = started + index / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)

                tenant = self.tenants[index % len(self.tenants)]
                row_id = len(self.committed[tenant]) + 1
                with dorm.engine(tenant).begin() as connection:
                    connection.execute(INSERT_EVENT, {"id": row_id, **_event_values(index)})
                self.committed[tenant].append(time.perf_counter())
                self.commits += 1
        finally:
            self.write_seconds = time.perf_counter() - started
            self.writer_done.set()

    def probe(self, aggregate_path: Path, timeout: float) -> None:
        """Poll the aggregate until every committed row is seen, recording each row's lag.

        The aggregate applies each tenant's changes in commit order, one batch
        per transaction, so the highest id visible for a tenant shows which of
        its rows are visible.
        """
        connection = sqlite3.connect(aggregate_path, isolation_level=None)
        seen = {tenant: 0 for tenant in self.tenants}
        deadline: float | None = None
        try:
            while True:
                for tenant in self.tenants:
                    visible = connection.execute(
                        "SELECT max(id) FROM events WHERE tenant = ?", (tenant,)
                    ).fetchone()[0] or 0
                    now = time.perf_counter()
                    # A row can reach the aggregate before the writer has
                    # recorded its commit time, so it is counted on a later poll.
                    committed = self.committed[tenant]
                    newly_seen = committed[seen[tenant] : min(visible, len(committed))]
                    self.lags.extend(now - commit_time for commit_time in newly_seen)
                    seen[tenant] += len(newly_seen)

                if self.writer_done.is_set():
                    if sum(seen.values()) >= self.commits:
                        return
                    deadline = deadline or time.perf_counter() + timeout
                    if time.perf_counter() > deadline:
                        raise TimeoutError(
                            f"lag probe: {self.commits - sum(seen.values())} rows not in the "
                            f"aggregate {timeout:g} s after the last commit"
                        )
                time.sleep(POLL_INTERVAL)
        finally:
            connection.close()


def _percentile(values: Sequence[float], percent: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def measure_lag(base: Path, sizes: Sizes) -> list[Figure]:
    """Measure commit-to-aggregate lag under a steady write rate across 10 tenants."""
    aggregate_path = base / "lag-aggregate.db"
    tenants = _tenant_names("live", 10)
    _create_tenants(base / "lag", tenants)
    with _open_mirrored(base / "lag", aggregate_path, tenants) as dorm:
        assert dorm.mirror is not None
        probe = LagProbe(tenants)
        errors: list[Exception] = []

        def run_writer() -> None:
            try:
                probe.write(dorm, sizes.lag_rate, sizes.lag_seconds)
            except Exception as error:  # re-raised in the main thread
                errors.append(error)

        def run_prober() -> None:
            try:
                probe.probe(aggregate_path, FLUSH_TIMEOUT)
            except Exception as error:  # re-raised in the main thread
                errors.append(error)

        writer = threading.Thread(target=run_writer, name="lag-writer")
        prober = threading.Thread(target=run_prober, name="lag-prober")
        prober.start()
        writer.start()

        # Sample what dorm.mirror.lag() reports while the writer runs.
        pending, oldest = [], []
        while not probe.writer_done.wait(LAG_SAMPLE_INTERVAL):
            lag = dorm.mirror.lag()
            pending.append(lag.pending)
            oldest.append(lag.oldest_age)
        writer.join()
        prober.join()
        if errors:
            raise errors[0]
        _check_mirrored(dorm, tenants, aggregate_path)

    lags = probe.lags
    assert len(lags) == probe.commits, (len(lags), probe.commits)
    achieved = probe.commits / probe.write_seconds
    p99 = _percentile(lags, 99)
    print(
        f"  lag: {probe.commits} commits in {probe.write_seconds:.1f} s ({achieved:.0f}/s); "
        f"dorm.mirror.lag() during the run: pending at most {max(pending, default=0)}, "
        f"oldest_age at most {max(oldest, default=0.0) * 1000:.0f} ms"
    )
    label = f"lag at {sizes.lag_rate:.0f} commits/s, 10 tenants"
    return [
        Figure(f"{label}: achieved write rate", achieved, "commits/s"),
        Figure(f"{label}: p50", statistics.median(lags), "s"),
        Figure(f"{label}: p95", _percentile(lags, 95), "s"),
        Figure(
            f"{label}: p99", p99, "s", goal=f"< {LAG_P99_GOAL * 1000:.0f} ms",
            met=p99 < LAG_P99_GOAL,
        ),
        Figure(f"{label}: max", max(lags), "s"),
        Figure(f"{label}: lag().pending, max of samples", max(pending, default=0), "entries"),
    ]


# -- catch-up rate ---------------------------------------------------------


def _write_burst(dorm: Dorm, tenants: Sequence[str], rows: int) -> None:
    """Insert ``rows`` rows spread evenly over ``tenants``, in transactions of up to 500 rows."""
    per_tenant = rows // len(tenants)
    for start in range(0, per_tenant, BURST_TRANSACTION_ROWS):
        count = min(BURST_TRANSACTION_ROWS, per_tenant - start)
        for tenant in tenants:
            with dorm.engine(tenant).begin() as connection:
                connection.execute(INSERT_EVENT, [_event_values(start + i) for i in range(count)])


def _outbox_entries(dorm: Dorm, tenants: Sequence[str]) -> int:
    return sum(int(dorm.exec(t, "SELECT count(*) FROM _dorm_changes").one()[0]) for t in tenants)


def measure_catch_up(base: Path, sizes: Sizes) -> list[Figure]:
    """Time the worker applying a backlog of rows, and catching up after a live burst."""
    root = base / "burst"
    aggregate_path = base / "burst-aggregate.db"
    tenants = _tenant_names("burst", 10)
    rows = sizes.burst_rows - sizes.burst_rows % len(tenants)

    # Tenants with capture triggers and an aggregate that is current.
    _create_tenants(root, tenants)
    _open_mirrored(root, aggregate_path, tenants).close()

    # The backlog: writes while no registry mirrors, kept in the outboxes.
    with Dorm(root=root) as dorm:
        _write_burst(dorm, tenants, rows)
        backlog = _outbox_entries(dorm, tenants)
    assert backlog >= rows, (backlog, rows)

    started = time.perf_counter()
    with Dorm(root=root, mirror=_aggregate_url(aggregate_path)) as dorm:
        _flush(dorm)
        backlog_seconds = time.perf_counter() - started
        _check_mirrored(dorm, tenants, aggregate_path)

        # A live burst: the worker runs while the rows are written.
        started = time.perf_counter()
        _write_burst(dorm, tenants, rows)
        written = time.perf_counter()
        _flush(dorm)
        flushed = time.perf_counter()
        _check_mirrored(dorm, tenants, aggregate_path)

    live_seconds = flushed - started
    print(
        f"  catch-up: backlog of {backlog:,} outbox entries applied in {backlog_seconds:.2f} s; "
        f"live burst written in {written - started:.2f} s, flush() took {flushed - written:.2f} s"
    )
    return [
        Figure(f"catch-up: backlog of {rows:,} rows, Dorm() to flush() done", rows / backlog_seconds, "rows/s"),
        Figure(f"catch-up: live burst of {rows:,} rows, first commit to flush() done", rows / live_seconds, "rows/s"),
        Figure(f"catch-up: live burst of {rows:,} rows, flush() after the last commit", flushed - written, "s"),
    ]


# -- driver ----------------------------------------------------------------


def run(quick: bool, tmp_dir: Path | None = None) -> list[Figure]:
    """Measure the write cost, the lag and the catch-up rate in a temporary directory."""
    sizes = Sizes.for_run(quick)
    base = Path(tempfile.mkdtemp(prefix="dorm-bench-mirror-", dir=tmp_dir))
    try:
        print(
            f"mirror write cost: {sizes.write_rounds} rounds of {sizes.write_iterations} "
            "commits per case"
        )
        figures = measure_write_cost(base, sizes)
        print(
            f"mirror lag: {sizes.lag_rate:.0f} commits/s for {sizes.lag_seconds:g} s "
            "across 10 tenants"
        )
        figures += measure_lag(base, sizes)
        print(f"mirror catch-up: {sizes.burst_rows:,} rows across 10 tenants")
        figures += measure_catch_up(base, sizes)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return figures


def main(argv: list[str]) -> int:
    return run_script(argv, __doc__.splitlines()[0], run, title="Mirroring to a SQLite aggregate")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
