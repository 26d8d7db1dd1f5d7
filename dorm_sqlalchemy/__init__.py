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
    RegistryClosed,
    TenantBusy,
    TenantExists,
    TenantInUse,
    TenantMismatch,
    TenantNotFound,
)
from .json_schema import (
    ExactDecimal,
    JsonSchemaError,
    json_schema_to_sql,
    json_schema_to_table,
    json_schemas_to_metadata,
    table_to_json_schema,
)
from .mirror import Mirror, MirrorLag, TenantMirrorStatus
from .naming import TenantName, canonical_tenant, is_valid_tenant
from .orm import RoutedSession, TenantSession
from .registry import Dorm

__all__ = [
    "AsyncCursor",
    "AsyncLazyLoadError",
    "Cursor",
    "Dorm",
    "DormError",
    "ExactDecimal",
    "InvalidTenantName",
    "JsonSchemaError",
    "MigrationError",
    "Mirror",
    "MirrorError",
    "MirrorLag",
    "NoCurrentTenant",
    "RegistryClosed",
    "RoutedSession",
    "Row",
    "TenantBusy",
    "TenantExists",
    "TenantInUse",
    "TenantMirrorStatus",
    "TenantMismatch",
    "TenantName",
    "TenantNotFound",
    "TenantSession",
    "canonical_tenant",
    "is_valid_tenant",
    "json_schema_to_sql",
    "json_schema_to_table",
    "json_schemas_to_metadata",
    "table_to_json_schema",
]

__version__ = "0.1.0"
