"""Point reads through the library against plain SQLAlchemy and plain sqlite3.

    .venv/bin/python benchmarks/core.py [--quick] [--tmp-dir DIR] [--json FILE]

Two figures, each measured against its baseline in the same process, on the
same database file, with the cases interleaved round by round:

* ORM ``get``: ``with dorm.session(t) as s: s.get(Note, k)`` against
  ``with Session(engine) as s: s.get(Note, k)``, where ``engine`` is a plain
  ``create_engine`` on the tenant's file with the same pool (a ``QueuePool`` of
  the same size). Goal: at most 1.05x.
* raw SQL: ``dorm.exec(t, "SELECT ... WHERE id = ?", k).one()`` against
  ``conn.execute(sql, (k,)).fetchone()`` on a plain ``sqlite3`` connection.
  Goal: at most 1.5x.

Every operation reads one of 1,000 rows, a different key each time. The
session figures also list four reference cases without a goal:

* a plain ``Session`` whose ``get()`` reuses one statement per mapper, as
  tenant sessions do. Against it, the cost of routing shows apart from the
  time that reusing the statement saves.
* a plain engine that begins its transactions with ``BEGIN IMMEDIATE`` as
  the library does (SQLAlchemy's recipe for pysqlite). Against it, the
  library's own overhead shows apart from the cost of the transaction mode.
* the routed ``dorm.sessionmaker()`` under ``dorm.tenant(t)``.
* ``dorm.session(t, begin="deferred")``, the read-only form.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, String, create_engine, event, insert
from sqlalchemy.engine import URL
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from _common import (
    Figure,
    Loop,
    Timings,
    run_interleaved,
    run_script,
)
from dorm_sqlalchemy import Dorm
from dorm_sqlalchemy.engines import DEFAULT_POOL_SIZE
from dorm_sqlalchemy.get_cache import load_by_primary_key

__all__ = ["Sizes", "run"]

TENANT = "bench"
ROWS = 1_000
POINT_QUERY = "SELECT id, body FROM notes WHERE id = ?"

SESSION_GOAL = 1.05
EXEC_GOAL = 1.5

# The library's tenant engines use a QueuePool of DEFAULT_POOL_SIZE with
# max_overflow=16, set in TenantEngines._create_sync_engine. The plain engines
# get the same pool, so the comparison does not measure a pool difference.
MAX_OVERFLOW = 16


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(200))


@dataclass(frozen=True)
class Sizes:
    """Operations per timed run, and timed runs per case."""

    session_iterations: int
    exec_iterations: int
    rounds: int

    @classmethod
    def for_run(cls, quick: bool) -> Sizes:
        if quick:
            return cls(session_iterations=300, exec_iterations=3_000, rounds=3)
        # Many short rounds rather than a few long ones, so the rounds that
        # other processes on the machine disturbed move the median little.
        return cls(session_iterations=500, exec_iterations=5_000, rounds=31)


def _key(index: int) -> int:
    return index % ROWS + 1


def _prepare_tenant(dorm: Dorm) -> None:
    engine = dorm.engine(TENANT)
    Base.metadata.create_all(engine)
    rows = [{"id": key, "body": f"note {key}"} for key in range(1, ROWS + 1)]
    with Session(engine) as session, session.begin():
        session.execute(insert(Note), rows)


def _plain_engine(path: Path, *, begin_immediate: bool) -> Engine:
    engine = create_engine(
        URL.create("sqlite", database=str(path)),
        pool_size=DEFAULT_POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
    )
    if begin_immediate:
        # SQLAlchemy's documented pysqlite recipe: the driver in autocommit
        # mode and an explicit BEGIN, here IMMEDIATE as the library emits it.
        @event.listens_for(engine, "connect")
        def _autocommit(dbapi_connection: Any, connection_record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _paired_figure(
    name: str, timings: Timings, case: str, baseline: str, *, goal: float | None = None
) -> Figure:
    """Build a figure in microseconds per operation, with the median per-round ratio."""
    ratio = timings.ratio(case, baseline)
    return Figure(
        name,
        timings.median(case) * 1e6,
        "µs",
        baseline=timings.median(baseline) * 1e6,
        baseline_name=baseline,
        goal="" if goal is None else f"≤ {goal}x",
        met=None if goal is None else ratio <= goal,
        paired_ratio=ratio,
    )


def _check_same_pool(tenant_engine: Engine, plain: Engine) -> None:
    """Raise AssertionError when the plain engine's pool differs from the tenant engine's.

    The tenant engine's pool is a subclass of the plain one that counts
    checkouts; both hand out connections the same way.
    """
    assert isinstance(tenant_engine.pool, type(plain.pool)), (plain.pool, tenant_engine.pool)
    assert plain.pool.size() == tenant_engine.pool.size(), (  # type: ignore[attr-defined]
        plain.pool.status(),
        tenant_engine.pool.status(),
    )


# -- ORM get ---------------------------------------------------------------


def _dorm_session_loop(dorm: Dorm, **options: Any) -> Loop:
    def loop(iterations: int) -> None:
        for index in range(iterations):
            with dorm.session(TENANT, **options) as session:
                session.get(Note, _key(index))

    return loop


def _routed_session_loop(dorm: Dorm) -> Loop:
    factory = dorm.sessionmaker()

    def loop(iterations: int) -> None:
        with dorm.tenant(TENANT):
            for index in range(iterations):
                with factory() as session:
                    session.get(Note, _key(index))

    return loop


class ReusedGetSession(Session):
    """A plain Session whose ``get()`` reuses one statement per mapper, as tenant sessions do."""

    def get(self, entity: Any, ident: Any, **options: Any) -> Any:
        return self._get_impl(entity, ident, load_by_primary_key, **options)


def _plain_session_loop(engine: Engine, session_class: type[Session] = Session) -> Loop:
    def loop(iterations: int) -> None:
        for index in range(iterations):
            with session_class(engine) as session:
                session.get(Note, _key(index))

    return loop


def measure_session_get(dorm: Dorm, sizes: Sizes) -> tuple[list[Figure], Timings]:
    path = dorm.path(TENANT)
    assert path is not None
    plain = _plain_engine(path, begin_immediate=False)
    plain_immediate = _plain_engine(path, begin_immediate=True)
    _check_same_pool(dorm.engine(TENANT), plain)
    with dorm.session(TENANT) as routed, Session(plain) as direct:
        assert routed.get(Note, 7).body == direct.get(Note, 7).body == "note 7"
    cases = {
        "dorm.session": _dorm_session_loop(dorm),
        "plain Session": _plain_session_loop(plain),
        "plain Session, BEGIN IMMEDIATE": _plain_session_loop(plain_immediate),
        "plain Session, reused get statement": _plain_session_loop(plain, ReusedGetSession),
        "dorm.sessionmaker": _routed_session_loop(dorm),
        "dorm.session, begin=deferred": _dorm_session_loop(dorm, begin="deferred"),
    }
    try:
        timings = run_interleaved(
            cases,
            iterations=sizes.session_iterations,
            rounds=sizes.rounds,
            warmup=sizes.session_iterations // 10,
        )
    finally:
        plain.dispose()
        plain_immediate.dispose()

    figures = [
        _paired_figure(
            "ORM get: dorm.session(t)", timings, "dorm.session", "plain Session",
            goal=SESSION_GOAL,
        ),
        _paired_figure(
            "ORM get: dorm.session(t) vs same get statement", timings, "dorm.session",
            "plain Session, reused get statement",
        ),
        _paired_figure(
            "ORM get: dorm.session(t) vs same BEGIN", timings, "dorm.session",
            "plain Session, BEGIN IMMEDIATE",
        ),
        _paired_figure(
            "ORM get: dorm.sessionmaker() routed", timings, "dorm.sessionmaker",
            "plain Session",
        ),
        _paired_figure(
            "ORM get: dorm.session(t, begin='deferred')", timings,
            "dorm.session, begin=deferred", "plain Session",
        ),
    ]
    return figures, timings


# -- raw SQL ---------------------------------------------------------------


def _dorm_exec_loop(dorm: Dorm) -> Loop:
    def loop(iterations: int) -> None:
        for index in range(iterations):
            dorm.exec(TENANT, POINT_QUERY, _key(index)).one()

    return loop


def _sqlite_loop(connection: sqlite3.Connection) -> Loop:
    def loop(iterations: int) -> None:
        for index in range(iterations):
            connection.execute(POINT_QUERY, (_key(index),)).fetchone()

    return loop


def measure_exec(dorm: Dorm, sizes: Sizes) -> tuple[list[Figure], Timings]:
    path = dorm.path(TENANT)
    assert path is not None
    connection = sqlite3.connect(path)
    expected = connection.execute(POINT_QUERY, (7,)).fetchone()
    assert tuple(dorm.exec(TENANT, POINT_QUERY, 7).one()) == expected == (7, "note 7")
    cases = {"dorm.exec": _dorm_exec_loop(dorm), "sqlite3": _sqlite_loop(connection)}
    try:
        timings = run_interleaved(
            cases,
            iterations=sizes.exec_iterations,
            rounds=sizes.rounds,
            warmup=sizes.exec_iterations // 10,
        )
    finally:
        connection.close()

    figure = _paired_figure(
        "raw SQL: dorm.exec(t, ...).one()", timings, "dorm.exec", "sqlite3", goal=EXEC_GOAL
    )
    return [figure], timings


# -- driver ----------------------------------------------------------------


def _print_rounds(timings: Timings, case: str, baseline: str) -> None:
    ratios = ", ".join(f"{ratio:.2f}" for ratio in timings.round_ratios(case, baseline))
    print(f"  {case} / {baseline}, per round: {ratios}")


def run(quick: bool, tmp_dir: Path | None = None) -> list[Figure]:
    """Measure both point-read figures on a fresh tenant in a temporary directory."""
    sizes = Sizes.for_run(quick)
    root = Path(tempfile.mkdtemp(prefix="dorm-bench-core-", dir=tmp_dir))
    try:
        with Dorm(root=root) as dorm:
            _prepare_tenant(dorm)

            print(f"ORM get: {sizes.rounds} rounds of {sizes.session_iterations} sessions per case")
            session_figures, session_timings = measure_session_get(dorm, sizes)
            _print_rounds(session_timings, "dorm.session", "plain Session")

            print(f"raw SQL: {sizes.rounds} rounds of {sizes.exec_iterations} queries per case")
            exec_figures, exec_timings = measure_exec(dorm, sizes)
            _print_rounds(exec_timings, "dorm.exec", "sqlite3")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return session_figures + exec_figures


def main(argv: list[str]) -> int:
    return run_script(argv, __doc__.splitlines()[0], run, title="Point reads")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
