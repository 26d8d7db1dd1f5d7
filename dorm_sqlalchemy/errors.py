"""Exceptions raised by dorm-sqlalchemy.

Every error derives from :class:`DormError`. Errors that concern one tenant
carry its canonical name in ``tenant`` and state what to do next. Driver errors
are chained with ``raise ... from``, never swallowed.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

__all__ = [
    "DormError",
    "InvalidTenantName",
    "TenantNotFound",
    "TenantExists",
    "TenantBusy",
    "TenantInUse",
    "NoCurrentTenant",
    "RegistryClosed",
    "TenantMismatch",
    "AsyncLazyLoadError",
    "MigrationError",
    "MirrorError",
]


class DormError(Exception):
    """Base class of every dorm-sqlalchemy error."""

    tenant: str | None = None

    def __init__(self, message: str, *, tenant: str | None = None) -> None:
        super().__init__(message)
        self.tenant = tenant


class InvalidTenantName(DormError, ValueError):
    """A tenant name that breaks the naming rule; raised before any file is touched."""

    def __init__(self, name: object, reason: str) -> None:
        super().__init__(
            f"invalid tenant name {name!r}: {reason}. Tenant names are 1 to 63 "
            "characters of ASCII letters, digits, '-' and '_', starting with a "
            "letter or digit; letters are folded to lower case"
        )
        self.name = name
        self.reason = reason


class TenantNotFound(DormError, LookupError):
    """The tenant has no database and the registry does not create one."""

    def __init__(self, tenant: str, hint: str | None = None, *, message: str | None = None) -> None:
        if message is None:
            hint = hint or (
                f"create it with dorm.create({tenant!r}), or build the registry "
                "with create=True to create tenants on first use"
            )
            message = f"tenant {tenant!r} does not exist: {hint}"
        super().__init__(message, tenant=tenant)

    @classmethod
    def dropped(cls, tenant: str) -> TenantNotFound:
        """Return the error for a session or engine used after its tenant was dropped."""
        return cls(
            tenant,
            message=(
                f"tenant {tenant!r} was dropped after this session or engine was "
                f"opened: open a new one with dorm.session({tenant!r}) or "
                f"dorm.engine({tenant!r}), which sees the tenant as it is now"
            ),
        )


class TenantExists(DormError):
    """``create()`` was asked for a tenant that already has a database."""

    def __init__(self, tenant: str) -> None:
        super().__init__(
            f"tenant {tenant!r} already exists: pass exist_ok=True to accept "
            "an existing tenant, or drop it first",
            tenant=tenant,
        )


class TenantBusy(DormError):
    """A lock on the tenant's database could not be had within the busy timeout.

    The transaction was rolled back and can be retried as a whole.
    """

    retryable = True

    def __init__(self, tenant: str, timeout: float) -> None:
        super().__init__(
            f"tenant {tenant!r} is locked by another writer and the lock was "
            f"not released within the busy timeout of {timeout:g} s: retry the "
            "transaction, keep write transactions short, or raise busy_timeout "
            "(a session holds the lock from its first statement until it ends, "
            'even if it only reads; use begin="deferred" for read-only sessions)',
            tenant=tenant,
        )
        self.timeout = timeout


class TenantInUse(DormError):
    """The tenant still has connections checked out, so it cannot be dropped."""

    def __init__(self, tenant: str, checked_out: int) -> None:
        super().__init__(
            f"tenant {tenant!r} has {checked_out} connection(s) checked out: "
            "close its sessions and cursors before dropping it",
            tenant=tenant,
        )
        self.checked_out = checked_out


class RegistryClosed(DormError, RuntimeError):
    """The registry was closed; create a new :class:`~dorm_sqlalchemy.Dorm` to go on."""

    def __init__(self) -> None:
        super().__init__("this Dorm registry is closed: create a new one")


class NoCurrentTenant(DormError, LookupError):
    """A routed session was used with no current tenant set."""

    def __init__(self) -> None:
        super().__init__(
            "no current tenant: wrap the code in `with dorm.tenant(name):` "
            "(or `async with`), or use dorm.session(name) for an explicit tenant"
        )


class TenantMismatch(DormError):
    """A session of one tenant met another tenant: the current one, or an object's."""

    def __init__(self, pinned: str, current: str, *, message: str | None = None) -> None:
        super().__init__(
            message
            or (
                f"this session belongs to tenant {pinned!r} but the current tenant "
                f"is {current!r}: open a new session inside `with dorm.tenant"
                f"({current!r}):` so objects of one tenant never reach another"
            ),
            tenant=pinned,
        )
        self.current = current

    @classmethod
    def for_object(cls, session_tenant: str, object_tenant: str) -> TenantMismatch:
        """Return the error for an object of ``object_tenant`` entering a session of ``session_tenant``."""
        return cls(
            session_tenant,
            object_tenant,
            message=(
                f"an object loaded from tenant {object_tenant!r} cannot be added to or "
                f"merged into a session of tenant {session_tenant!r}: copy its values "
                "into a new object to move data between tenants"
            ),
        )


    @classmethod
    def for_option(cls, session_tenant: str, token: str) -> TenantMismatch:
        """Return the error for an ``identity_token`` option that names another tenant."""
        return cls(
            session_tenant,
            token,
            message=(
                f"identity_token {token!r} does not match this session's tenant "
                f"{session_tenant!r}: a session loads only its own tenant's rows, so "
                f"remove the option, or open dorm.session({token!r}) for that tenant"
            ),
        )


class AsyncLazyLoadError(DormError, sa_exc.MissingGreenlet):
    """An async session tried to load an attribute implicitly, which needs I/O."""

    def __init__(self, tenant: str | None, what: str) -> None:
        DormError.__init__(
            self,
            f"{what} is not loaded and an AsyncSession cannot load it on "
            "attribute access: load it eagerly in the query (for example "
            "options(selectinload(...))), use `await obj.awaitable_attrs.<name>` "
            "(models with the AsyncAttrs mixin), "
            "or `await session.refresh(obj, [...])`",
            tenant=tenant,
        )


class MigrationError(DormError):
    """Bringing a tenant to the head revision failed; the tenant is unchanged."""

    def __init__(
        self, message: str, *, tenant: str | None = None, revision: str | None = None
    ) -> None:
        super().__init__(message, tenant=tenant)
        self.revision = revision


class MirrorError(DormError):
    """Mirroring tenant writes to an aggregate database failed."""
