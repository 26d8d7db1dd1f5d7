"""The time of a tenant session's ``get()``, split into the steps that make it up.

    .venv/bin/python benchmarks/session_steps.py [--quick] [--tmp-dir DIR] [--json FILE]

Each case adds one part of the library to the case before it, all on the
same tenant file, from a plain ``Session(engine)`` up to ``dorm.session(t)``:

1. a plain engine (pysqlite's default: no ``BEGIN`` before a read);
2. the same engine with the library's transaction control on its dialect:
   the driver in autocommit mode, ``BEGIN IMMEDIATE`` sent by ``do_begin``,
   ``COMMIT`` and ``ROLLBACK`` through the driver's statement cache;
3. the library's connection setup on that engine: pragmas, the busy-error
   hook and the watch for setting PRAGMAs;
4. the tenant engine itself, ``Session(dorm.engine(t))``, whose pool also
   counts checkouts;
5. the same engine, with ``get(..., identity_token=t)``: what the identity
   token costs inside SQLAlchemy;
6. ``TenantSession``, which sets and checks the identity token and reuses
   one ``get()`` statement per mapper;
7. ``dorm.session(t)``, which also looks the tenant up in the registry.

A last case, apart from the steps, is case 1 with a ``Session`` whose
``get()`` reuses one statement per mapper as ``TenantSession`` does: what
the reuse saves on its own.

The cases run interleaved, as in ``core.py``; each ratio is the median of
the per-round ratios to case 1.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from _common import (
    Figure,
    Loop,
    run_interleaved,
    run_script,
)
from core import (
    MAX_OVERFLOW,
    TENANT,
    Note,
    ReusedGetSession,
    Sizes,
    _key,
    _paired_figure,
    _prepare_tenant,
)
from dorm_sqlalchemy import Dorm
from dorm_sqlalchemy.connections import (
    ConnectionSettings,
    _TransactionControl,
    install_connection_events,
)
from dorm_sqlalchemy.engines import DEFAULT_POOL_SIZE
from dorm_sqlalchemy.orm import TenantSession

__all__ = ["run"]

STEPS = (
    "1 plain Session",
    "2 + transaction control",
    "3 + connection setup",
    "4 tenant engine",
    "5 tenant engine, get with identity_token",
    "6 TenantSession",
    "7 dorm.session(t)",
    "plain Session, reused get statement",
)


def _engine(path: Path, *, control: bool, setup: bool) -> Engine:
    engine = create_engine(
        URL.create("sqlite", database=str(path)),
        pool_size=DEFAULT_POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
    )
    if setup:
        install_connection_events(engine, ConnectionSettings(), tenant=TENANT, in_memory=False)
    elif control:
        _TransactionControl("immediate").install(engine.dialect)

        @event.listens_for(engine, "connect")
        def _autocommit(dbapi_connection: Any, connection_record: Any) -> None:
            dbapi_connection.isolation_level = None

    return engine


def _loop(make_session: Any, **get_options: Any) -> Loop:
    def loop(iterations: int) -> None:
        for index in range(iterations):
            with make_session() as session:
                session.get(Note, _key(index), **get_options)

    return loop


def _cases(dorm: Dorm, engines: list[Engine]) -> dict[str, Loop]:
    plain, controlled, set_up = engines
    tenant_engine = dorm.engine(TENANT)
    loops = [
        _loop(lambda: Session(plain)),
        _loop(lambda: Session(controlled)),
        _loop(lambda: Session(set_up)),
        _loop(lambda: Session(tenant_engine)),
        _loop(lambda: Session(tenant_engine), identity_token=TENANT),
        _loop(lambda: TenantSession(tenant_engine, tenant=TENANT)),
        _loop(lambda: dorm.session(TENANT)),
        _loop(lambda: ReusedGetSession(plain)),
    ]
    return dict(zip(STEPS, loops))


def run(quick: bool, tmp_dir: str | None) -> list[Figure]:
    sizes = Sizes.for_run(quick)
    root = Path(tempfile.mkdtemp(prefix="dorm-steps-", dir=tmp_dir))
    dorm = Dorm(root=root)
    engines: list[Engine] = []
    try:
        _prepare_tenant(dorm)
        path = dorm.path(TENANT)
        engines = [
            _engine(path, control=False, setup=False),
            _engine(path, control=True, setup=False),
            _engine(path, control=True, setup=True),
        ]
        timings = run_interleaved(
            _cases(dorm, engines),
            iterations=sizes.session_iterations,
            rounds=sizes.rounds,
            warmup=sizes.session_iterations // 10,
        )
    finally:
        for engine in engines:
            engine.dispose()
        dorm.close()
        shutil.rmtree(root, ignore_errors=True)

    return [_paired_figure(f"get: {step}", timings, step, STEPS[0]) for step in STEPS]


def main(argv: list[str]) -> int:
    return run_script(argv, __doc__.splitlines()[0], run, title="Session get, step by step")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
