"""Migrate many tenants: :func:`migrate_all` upgrades, :func:`status` only reads.

Both run in a thread pool. A tenant at head costs a read-only check of its
version, and those checks run in parallel. Real Alembic upgrades run one at a time, on the
process-wide Alembic lock, because Alembic keeps its running environment in
module globals. Dict migrations need no such lock and upgrade in parallel.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from dorm_sqlalchemy.errors import DormError

from .migrator import Migrator
from .result import MigrationReport, MigrationResult, StatusReport, TenantStatus

__all__ = ["migrate_all", "status"]

logger = logging.getLogger(__name__)

EngineFor = Callable[[str], Engine]
"""Returns the synchronous engine of a tenant; the caller keeps ownership of it."""

# Failures of one tenant that must not stop the others: library errors
# (MigrationError, TenantNotFound, InvalidTenantName), driver errors raised
# while opening the engine, and file system errors.
_TENANT_ERRORS = (DormError, SQLAlchemyError, OSError)


def migrate_all(
    migrator: Migrator,
    tenants: Iterable[str],
    engine_for: EngineFor,
    jobs: int = 4,
    progress: bool | None = None,
) -> MigrationReport:
    """Bring every tenant to head and return a per-tenant report.

    ``jobs`` is the number of worker threads. A failing tenant is recorded in
    ``report.failed`` and does not stop the others. ``progress`` shows a rich
    progress bar on stderr; None shows it when stderr is a terminal.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    names = list(tenants)
    started = time.perf_counter()
    heads = migrator.heads()

    results: dict[int, MigrationResult] = {}
    with _progress_bar(_show_progress(progress), len(names), "upgrading") as advance:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="alembic_ext-migrate") as pool:
            futures = {
                pool.submit(_upgrade_one, migrator, name, engine_for): index
                for index, name in enumerate(names)
            }
            # Advance the bar as tenants finish, in whatever order that is.
            for future in as_completed(futures):
                result = future.result()
                results[futures[future]] = result
                advance(result.error is not None)

    ordered = tuple(results[index] for index in range(len(names)))
    report = MigrationReport(ordered, heads, time.perf_counter() - started)
    logger.info(
        "migrated %d tenant(s) in %.2f s: %d upgraded, %d already at head, %d failed",
        len(ordered),
        report.duration,
        len(report.upgraded),
        len(report.skipped),
        len(report.failed),
    )
    return report


def status(
    migrator: Migrator,
    tenants: Iterable[str],
    engine_for: EngineFor,
    jobs: int = 4,
) -> StatusReport:
    """Read each tenant's revision and compare it with head, without writing."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    names = list(tenants)
    heads = migrator.heads()
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="alembic_ext-status") as pool:
        statuses = tuple(
            pool.map(lambda name: _describe_one(migrator, name, engine_for, heads), names)
        )
    return StatusReport(statuses, heads)


def _upgrade_one(migrator: Migrator, tenant: str, engine_for: EngineFor) -> MigrationResult:
    started = time.perf_counter()
    try:
        return migrator.upgrade(tenant, engine_for(tenant))
    except _TENANT_ERRORS as exc:
        logger.warning("tenant %s: upgrade failed: %s", tenant, exc)
        return MigrationResult(
            tenant,
            from_revision=_current_or_none(migrator, tenant, engine_for),
            to_revision=None,
            duration=time.perf_counter() - started,
            error=str(exc),
        )


def _current_or_none(migrator: Migrator, tenant: str, engine_for: EngineFor) -> str | None:
    try:
        return migrator.current(tenant, engine_for(tenant))
    except _TENANT_ERRORS:
        return None


def _describe_one(
    migrator: Migrator, tenant: str, engine_for: EngineFor, heads: tuple[str, ...]
) -> TenantStatus:
    try:
        engine = engine_for(tenant)
        describe = getattr(migrator, "describe", None)
        if describe is not None:
            return describe(tenant, engine)
        current = migrator.current(tenant, engine)
    except _TENANT_ERRORS as exc:
        return TenantStatus(tenant, None, heads, "error", error=str(exc))

    if set((current or "").split(",")) - {""} == set(heads):
        state = "at head"
    else:
        state = "empty" if current is None else "behind"
    return TenantStatus(tenant, current, heads, state)


def _show_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return sys.stderr.isatty()


@contextmanager
def _progress_bar(show: bool, total: int, label: str) -> Iterator[Callable[[bool], None]]:
    """Yield a function that advances a rich progress bar by one tenant."""
    if not show:
        yield lambda _failed: None
        return

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    failures = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(label, total=total)

        def advance(failed: bool) -> None:
            nonlocal failures
            failures += failed
            description = f"{label} ({failures} failed)" if failures else label
            bar.update(task, advance=1, description=description)

        yield advance
