"""Tenant routing: the tenant name read from the path, a header or the subdomain.

The application picks one way with ``tenant_routing(mode)``:

- ``path`` (the default): ``GET /t/acme/invoices``
- ``header``: ``GET /invoices`` with ``X-Tenant: acme``
- ``subdomain``: ``GET /invoices`` with ``Host: acme.example.test``

The resolvers only extract the name. ``dorm.tenant(name)`` validates it and
raises :class:`~dorm_sqlalchemy.InvalidTenantName`, which
:func:`invalid_tenant_name` turns into a 400 response.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Header, HTTPException, Path, Request, status
from fastapi.responses import JSONResponse

__all__ = ["MODES", "TENANT_HEADER", "TenantRouting", "invalid_tenant_name", "tenant_routing"]

MODES = ("path", "header", "subdomain")
TENANT_HEADER = "X-Tenant"


@dataclass(frozen=True)
class TenantRouting:
    """Route prefix and FastAPI dependency that returns the tenant name, for one mode."""

    prefix: str
    resolve: Callable[..., str]


def tenant_routing(mode: str = "path", *, base_domain: str = "example.test") -> TenantRouting:
    """Return the route prefix and tenant dependency for ``mode``: path, header or subdomain."""
    if mode == "path":
        return TenantRouting(prefix="/t/{tenant}", resolve=tenant_from_path)
    if mode == "header":
        return TenantRouting(prefix="", resolve=tenant_from_header)
    if mode == "subdomain":
        return TenantRouting(prefix="", resolve=subdomain_resolver(base_domain))
    raise ValueError(f"unknown tenant routing mode {mode!r}: use one of {', '.join(MODES)}")


def tenant_from_path(tenant: Annotated[str, Path(description="tenant name")]) -> str:
    return tenant


def tenant_from_header(
    x_tenant: Annotated[str | None, Header(description="tenant name")] = None,
) -> str:
    if x_tenant is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"missing {TENANT_HEADER} header: send the tenant name in it",
        )
    return x_tenant


def subdomain_resolver(base_domain: str) -> Callable[[Request], str]:
    """Return a dependency that reads the tenant from a ``<tenant>.<base_domain>`` Host header."""
    suffix = "." + base_domain.lower()

    def tenant_from_subdomain(request: Request) -> str:
        hostname = (request.url.hostname or "").lower()
        if not hostname.endswith(suffix):
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"host {hostname!r} names no tenant: use <tenant>.{base_domain}",
            )
        return hostname.removesuffix(suffix)

    return tenant_from_subdomain


async def invalid_tenant_name(request: Request, exc: Exception) -> JSONResponse:
    """Return a 400 response that gives the reason why the tenant name is invalid."""
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_400_BAD_REQUEST)
