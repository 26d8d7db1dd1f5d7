"""Results of upgrading tenants: one tenant, a whole run, and a status listing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "MigrationResult",
    "MigrationReport",
    "TenantStatus",
    "StatusReport",
    "format_revisions",
]


def format_revisions(revisions: Sequence[str] | None) -> str | None:
    """Join revision ids into one string, or return None for a database at base.

    A database on several branches has several current revisions; they are
    sorted and joined with ``,`` so that two equal sets always format equally.
    """
    if not revisions:
        return None
    return ",".join(sorted(revisions))


@dataclass(frozen=True)
class MigrationResult:
    """Outcome of bringing one tenant to head.

    ``from_revision`` and ``to_revision`` are None at base. ``duration`` is in
    seconds. ``skipped`` is true when the tenant was already at head and
    nothing ran. ``error`` is set only in reports of :func:`migrate_all`;
    :meth:`Migrator.upgrade` raises ``MigrationError`` instead.
    """

    tenant: str
    from_revision: str | None
    to_revision: str | None
    duration: float
    error: str | None = None
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        """Return a one-line summary such as ``upgraded base -> 3f2a``."""
        start = self.from_revision or "base"
        if self.error is not None:
            return f"failed at {start}: {self.error}"
        if self.skipped:
            return f"at head {start}"
        return f"upgraded {start} -> {self.to_revision or 'base'}"


@dataclass(frozen=True)
class MigrationReport:
    """Per-tenant results of :func:`migrate_all`, in the order tenants were given."""

    results: tuple[MigrationResult, ...]
    heads: tuple[str, ...]
    duration: float

    @property
    def failed(self) -> list[MigrationResult]:
        return [result for result in self.results if result.error is not None]

    @property
    def upgraded(self) -> list[MigrationResult]:
        return [
            result
            for result in self.results
            if result.error is None and not result.skipped
        ]

    @property
    def skipped(self) -> list[MigrationResult]:
        return [result for result in self.results if result.skipped]

    @property
    def ok(self) -> bool:
        return not self.failed

    def render(self) -> str:
        """Return the report as plain text: one line per tenant, then a summary."""
        width = max([len("tenant"), *(len(result.tenant) for result in self.results)])
        lines = [f"{'tenant':<{width}}  {'seconds':>8}  result"]
        for result in self.results:
            lines.append(
                f"{result.tenant:<{width}}  {result.duration:>8.3f}  {result.describe()}"
            )
        lines.append(
            f"{len(self.results)} tenant(s) in {self.duration:.2f} s: "
            f"{len(self.upgraded)} upgraded, {len(self.skipped)} already at head, "
            f"{len(self.failed)} failed; head is {format_revisions(self.heads) or 'base'}"
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class TenantStatus:
    """Revision of one tenant compared with head, read without writing.

    ``state`` is one of:

    * ``"at head"`` and ``"behind"``;
    * ``"empty"``: no tables and no revision;
    * ``"unversioned"``: tables but no version table;
    * ``"unknown revision"``: a revision that this code does not contain;
    * ``"error"``: the database could not be read, and ``error`` contains the reason.
    """

    tenant: str
    current: str | None
    heads: tuple[str, ...]
    state: str
    error: str | None = None

    @property
    def at_head(self) -> bool:
        return self.state == "at head"


@dataclass(frozen=True)
class StatusReport:
    """Statuses of :func:`status`, in the order tenants were given."""

    statuses: tuple[TenantStatus, ...]
    heads: tuple[str, ...]

    @property
    def behind(self) -> list[TenantStatus]:
        return [status for status in self.statuses if not status.at_head]

    def render(self) -> str:
        """Return the statuses as plain text: one line per tenant, then a summary."""
        width = max([len("tenant"), *(len(status.tenant) for status in self.statuses)])
        lines = [f"{'tenant':<{width}}  {'revision':<16}  state"]
        for status in self.statuses:
            state = status.state if status.error is None else f"error: {status.error}"
            lines.append(f"{status.tenant:<{width}}  {status.current or 'base':<16}  {state}")
        lines.append(
            f"{len(self.statuses)} tenant(s): {len(self.statuses) - len(self.behind)} "
            f"at head, {len(self.behind)} not at head; head is "
            f"{format_revisions(self.heads) or 'base'}"
        )
        return "\n".join(lines)
