"""dorm-sqlalchemy: one SQLite database per tenant, with ordinary SQLAlchemy.

>>> from dorm_sqlalchemy import Dorm
>>> with Dorm("sqlite://") as dorm:
...     dorm.exec("acme", "SELECT 1 + 1 AS two").one()["two"]
2
"""

from __future__ import annotations

from .cursor import AsyncCursor, Cursor, Row
from .errors import (
    AsyncLazyLoadError,
    DormError,
    InvalidTenantName,
    MigrationError,
    MirrorError,
    NoCurrentTenant,
    TenantBusy,
    TenantExists,
    TenantInUse,
    TenantMismatch,
    TenantNotFound,
)
from .naming import TenantName, canonical_tenant, is_valid_tenant
from .orm import RoutedSession
from .registry import Dorm

__all__ = [
    "AsyncCursor",
    "AsyncLazyLoadError",
    "Cursor",
    "Dorm",
    "DormError",
    "InvalidTenantName",
    "MigrationError",
    "MirrorError",
    "NoCurrentTenant",
    "RoutedSession",
    "Row",
    "TenantBusy",
    "TenantExists",
    "TenantInUse",
    "TenantMismatch",
    "TenantName",
    "TenantNotFound",
    "canonical_tenant",
    "is_valid_tenant",
]

__version__ = "0.1.0"
