"""Settings of the HTTP API: the limits of one request and the scope of each token."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..naming import TenantName, canonical_tenant

__all__ = ["ServerLimits", "TokenScope", "FULL_ACCESS"]

MIB = 1024 * 1024


@dataclass(frozen=True)
class TokenScope:
    """The scope of one bearer token: its tenants, and whether it may write.

    ``tenants=None`` grants every tenant. Names are canonicalised, so
    ``TokenScope(tenants=["Acme"])`` grants tenant ``acme``.
    """

    tenants: frozenset[TenantName] | None = None
    read_only: bool = False

    def __init__(self, tenants: Iterable[str] | None = None, read_only: bool = False) -> None:
        if isinstance(tenants, str):
            raise TypeError(
                f"TokenScope(tenants={tenants!r}): give a list of tenant names, not one string"
            )
        names = None if tenants is None else frozenset(canonical_tenant(name) for name in tenants)
        object.__setattr__(self, "tenants", names)
        object.__setattr__(self, "read_only", bool(read_only))

    def allows(self, tenant: TenantName) -> bool:
        """Tell whether the token grants ``tenant`` (a canonical name)."""
        return self.tenants is None or tenant in self.tenants


FULL_ACCESS = TokenScope()
"""The scope of the server secret, and of every request when the server has no secret."""


@dataclass(frozen=True)
class ServerLimits:
    """Bounds on one request; each exceeded bound gives a 4xx error that names it."""

    max_body_bytes: int = 1 * MIB
    """Largest request body accepted, in bytes (413 above it)."""

    statement_timeout: float = 5.0
    """Seconds the SQL of one ``/query/raw`` request may run: one statement, or a whole
    transaction array. For ``/query/stream`` it bounds the time to produce each batch
    of rows, so a long stream runs as long as rows keep coming."""

    max_result_rows: int = 10_000
    """Most rows one ``/query/raw`` request may return, over all its statements."""

    max_result_bytes: int = 16 * MIB
    """Most bytes of values one ``/query/raw`` request may return (an estimate of the
    JSON size: text and BLOB lengths, and a few bytes per number)."""

    stream_batch_rows: int = 500
    """Rows ``/query/stream`` fetches from SQLite per worker-thread hop."""

    stream_stall_timeout: float = 30.0
    """Seconds a ``/query/stream`` response waits for the client to take its next batch.

    A client that stops reading would otherwise keep the stream's transaction
    open, and with it the tenant's write lock for a statement that writes.
    After this time the stream is closed and its transaction rolled back."""

    max_transactions: int = 64
    """Maximum interactive transactions open at once on the server, over all tenants.

    Each one keeps a SQLite connection; a begin request above the limit gets
    503 with ``Retry-After``."""

    def __post_init__(self) -> None:
        for name in (
            "max_body_bytes",
            "max_result_rows",
            "max_result_bytes",
            "stream_batch_rows",
            "max_transactions",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"invalid {name} {value!r}: give an integer >= 1")
        for name in ("statement_timeout", "stream_stall_timeout"):
            timeout = getattr(self, name)
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
                raise ValueError(f"invalid {name} {timeout!r}: give the seconds as a number > 0")
