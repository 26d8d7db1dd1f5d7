"""Mirroring: every committed tenant write copied exactly to aggregate databases.

``Dorm(..., mirror="sqlite:///aggregate.db")`` (or a list of URLs, SQLite or
PostgreSQL) turns it on. Capture triggers inside each tenant database record
the keys of changed rows in the writer's own transaction (see
:mod:`.capture`); a background worker copies the current rows to every
aggregate, tagged with the tenant (see :mod:`.worker`).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import MirrorError
from ..naming import TenantName, canonical_tenant
from . import capture
from .aggregate import Aggregate
from .worker import MirrorWorker

if TYPE_CHECKING:
    from ..registry import Dorm

__all__ = ["Mirror", "MirrorLag", "TenantMirrorStatus"]

logger = logging.getLogger(__name__)

_JULIAN_UNIX_EPOCH = 2440587.5


@dataclass(frozen=True)
class MirrorLag:
    """How far the aggregates are behind the tenants."""

    pending: int
    """Outbox entries not yet applied to every aggregate."""

    oldest_age: float
    """Seconds since the oldest pending change was committed (0 when none)."""

    tenants: tuple[TenantName, ...]
    """Tenants with pending changes."""


@dataclass(frozen=True)
class TenantMirrorStatus:
    """One tenant's mirror state."""

    tenant: TenantName
    pending: int
    oldest_age: float
    positions: tuple[int | None, ...]
    """Last applied outbox entry in each aggregate (None: never mirrored)."""

    last_error: str | None


class Mirror:
    """The mirror of one registry: ``dorm.mirror``."""

    def __init__(
        self,
        dorm: Dorm,
        urls: Sequence[str],
        *,
        exclude: Sequence[str] = (),
        tenant_column: str = "tenant",
    ) -> None:
        if not urls:
            raise ValueError("mirror= needs at least one aggregate database URL")
        for url in urls:
            check_aggregate_url(url)
        self._dorm = dorm
        self.tenant_column = tenant_column
        self.exclude = tuple(exclude)
        self.aggregates = [Aggregate(url, tenant_column=tenant_column) for url in urls]
        self._worker = MirrorWorker(
            self.aggregates,
            self._connect,
            dorm.storage.exists,
            self._identify,
            dorm.path,
            dorm.tenants,
            exclude=self.exclude,
            tenant_column=tenant_column,
        )
        self._closed = False

    def _connect(self, tenant: TenantName, *, create: bool = False) -> sqlite3.Connection:
        # The worker never creates a tenant: one dropped meanwhile stays dropped.
        connection = self._dorm.storage.connect(tenant, create=create)
        connection.execute(f"PRAGMA busy_timeout = {self._dorm.settings.busy_timeout_ms:d}")
        connection.execute("PRAGMA recursive_triggers = ON")
        return connection

    def _identify(self, tenant: TenantName) -> object | None:
        # A dropped and recreated tenant is a new file: a new inode.
        path = self._dorm.path(tenant)
        if path is None:
            return None
        try:
            status = os.stat(path)
        except FileNotFoundError:
            return None
        return (status.st_dev, status.st_ino)

    def start(self) -> None:
        """Start the worker and queue every existing tenant, to catch up on old writes."""
        self._worker.start()
        for tenant in self._dorm.tenants():
            self._worker.notify(tenant)

    def notify(self, tenant: TenantName) -> None:
        """Tell the worker that ``tenant`` committed writes."""
        self._worker.notify(tenant)

    def install(self, tenant: TenantName) -> None:
        """Install the capture triggers on ``tenant`` now, in the caller's thread.

        The registry calls this when it opens a tenant, which creates the
        database if it is new.
        """
        connection = self._connect(tenant, create=True)
        try:
            capture.install_capture(
                connection, tenant=tenant, exclude=self.exclude, tenant_column=self.tenant_column
            )
        finally:
            connection.close()

    def forget(self, tenant: TenantName) -> None:
        """Queue the removal of a dropped tenant's rows from every aggregate."""
        self._worker.forget(tenant)

    # -- observability ---------------------------------------------------------

    def flush(self, timeout: float | None = 30.0) -> None:
        """Wait until every aggregate contains every committed change.

        Raises :class:`MirrorError` naming the failing tenants when
        ``timeout`` seconds pass first.
        """
        if self._worker.wait_idle(timeout):
            return
        failing = {t: p.last_error for t, p in self._worker.pending().items()}
        details = "; ".join(
            f"{tenant}: {error or 'pending'}" for tenant, error in sorted(failing.items())
        )
        raise MirrorError(
            f"mirror not current after {timeout:g} s; {len(failing)} tenant(s) pending "
            f"({details}). Check that the aggregate is reachable; the worker keeps retrying"
        )

    def lag(self) -> MirrorLag:
        """Return the pending changes and the age of the oldest one."""
        pending_tenants = sorted(self._worker.pending())
        total = 0
        oldest: float | None = None
        behind = []
        for tenant in pending_tenants:
            _, count, oldest_day = self._outbox_state(tenant, self._worker.applied.get(tenant, 0))
            if count:
                behind.append(tenant)
                total += count
                if oldest_day is not None:
                    oldest = oldest_day if oldest is None else min(oldest, oldest_day)
        return MirrorLag(total, _age(oldest), tuple(behind))

    def status(self, tenants: Sequence[str] | None = None) -> list[TenantMirrorStatus]:
        """Return each tenant's pending changes and aggregate positions.

        An aggregate that cannot be read (locked, down) does not make this
        raise: its positions are ``None``, the pending changes are counted
        from what this process applied, and ``last_error`` names the failure.
        """
        names = list(self._dorm.tenants()) if tenants is None else [canonical_tenant(t) for t in tenants]
        reads = [aggregate.read_positions() for aggregate in self.aggregates]
        positions = [table for table, _ in reads]
        read_error = next((error for _, error in reads if error is not None), None)
        pending = self._worker.pending()
        rows = []
        for tenant in names:
            applied = [self._applied_in(table, tenant) for table in positions]
            _, count, oldest_day = self._outbox_state(tenant, min(applied, default=0))
            last_error = pending[tenant].last_error if tenant in pending else None
            rows.append(
                TenantMirrorStatus(
                    tenant=tenant,
                    pending=count,
                    oldest_age=_age(oldest_day),
                    positions=tuple(
                        table[tenant][1] if table is not None and tenant in table else None
                        for table in positions
                    ),
                    last_error=last_error or read_error,
                )
            )
        return rows

    def _applied_in(self, positions: dict[str, tuple[str, int]] | None, tenant: str) -> int:
        """Return the last entry of ``tenant`` applied to an aggregate, given its positions."""
        if positions is None:
            # The aggregate could not be read, so count from what this process applied.
            return self._worker.applied.get(tenant, 0)
        if tenant in positions:
            return positions[tenant][1]
        return 0

    def rebuild(self, tenants: Sequence[str] | None = None, *, timeout: float | None = None) -> None:
        """Recompute the aggregates from the tenants, then wait until done.

        Without ``tenants``, rows of tenants that no longer exist are removed too.
        """
        existing = set(self._dorm.tenants())
        names = sorted(existing) if tenants is None else [canonical_tenant(t) for t in tenants]
        for tenant in names:
            if tenant not in existing:
                raise MirrorError(f"cannot rebuild tenant {tenant!r}: it does not exist", tenant=tenant)
        for aggregate in self.aggregates:
            mirrored = set(aggregate.tenants())
            for tenant in names:
                self._worker.invalidate(tenant)
                if tenant in mirrored:
                    aggregate.forget(tenant)
            if tenants is None:
                for tenant in mirrored - existing:
                    aggregate.forget(tenant)
        for tenant in names:
            self._worker.notify(tenant)
        self.flush(timeout)

    def _outbox_state(self, tenant: TenantName, after_seq: int) -> tuple[int, int, float | None]:
        try:
            connection = self._connect(tenant)
        except sqlite3.OperationalError:
            if self._dorm.storage.exists(tenant):
                raise
            return 0, 0, None
        try:
            return capture.outbox_state(connection, after_seq)
        finally:
            connection.close()

    def close(self, timeout: float | None = 10.0) -> None:
        """Apply what is pending (up to ``timeout`` seconds), then stop the worker."""
        if self._closed:
            return
        self._closed = True
        if not self._worker.wait_idle(timeout, skip_failing=True) or self._worker.pending():
            logger.warning(
                "mirror: stopped with pending changes for %s; they are kept in the "
                "tenants' outboxes and applied when a mirror starts again",
                ", ".join(sorted(self._worker.pending())),
            )
        self._worker.stop(timeout)
        for aggregate in self.aggregates:
            aggregate.dispose()


def check_aggregate_url(url: object) -> None:
    """Raise ``ValueError`` unless ``url`` is a database URL SQLAlchemy can parse."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    hint = "give a database URL such as 'sqlite:///aggregate.db' or 'postgresql+psycopg://user@host/db'"
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"invalid mirror URL {url!r}: {hint}")
    try:
        make_url(url)
    except ArgumentError as error:
        raise ValueError(f"invalid mirror URL {url!r}: {error}; {hint}") from error


def _age(julian_day: float | None) -> float:
    if julian_day is None:
        return 0.0
    committed = (julian_day - _JULIAN_UNIX_EPOCH) * 86400.0
    return max(0.0, time.time() - committed)
