"""Routed sessions: ORM sessions that pick their tenant from the current context.

A routed session belongs to exactly one tenant, which it takes from
``dorm.tenant(...)`` when it is created, or else when it first needs a
connection. Its identity map therefore never holds objects of two tenants,
so two rows with the same primary key in two tenants are always two objects
in two sessions. Using it later while another tenant is current raises
:class:`~dorm_sqlalchemy.errors.TenantMismatch` instead of mixing them.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.util.concurrency import in_greenlet

from .errors import AsyncLazyLoadError, NoCurrentTenant, TenantMismatch
from .naming import TenantName

if TYPE_CHECKING:
    from .registry import Dorm

__all__ = ["TenantScope", "RoutedSession", "AsyncBackedSession", "RoutedAsyncBackedSession"]


class TenantScope:
    """Context manager (sync and async) that sets the current tenant."""

    def __init__(self, variable: ContextVar[TenantName | None], tenant: TenantName) -> None:
        self._variable = variable
        self.tenant = tenant
        self._tokens: list[Token[TenantName | None]] = []

    def __enter__(self) -> TenantName:
        self._tokens.append(self._variable.set(self.tenant))
        return self.tenant

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._variable.reset(self._tokens.pop())

    async def __aenter__(self) -> TenantName:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)


class RoutedSession(Session):
    """A :class:`~sqlalchemy.orm.Session` bound to the current tenant of a :class:`Dorm`."""

    def __init__(self, *, dorm: Dorm, **options: Any) -> None:
        if options.get("bind") is not None or options.get("binds"):
            raise TypeError(
                "a routed session takes its bind from the current tenant: remove "
                "bind=/binds=, or use dorm.session(tenant) for an explicit tenant"
            )
        options.pop("bind", None)
        options.pop("binds", None)
        super().__init__(**options)
        self.dorm = dorm
        self.tenant: TenantName | None = dorm.current_tenant

    def get_bind(self, mapper: Any = None, clause: Any = None, **kw: Any) -> Any:
        return self.dorm.engine(self._resolve_tenant())

    def _resolve_tenant(self) -> TenantName:
        current = self.dorm.current_tenant
        if self.tenant is None:
            if current is None:
                raise NoCurrentTenant()
            self.tenant = current
        elif current is not None and current != self.tenant:
            raise TenantMismatch(self.tenant, current)
        return self.tenant


class _RaiseOnImplicitLoad:
    """Turns SQLAlchemy's ``MissingGreenlet`` for implicit loads into a clear error."""

    @staticmethod
    def check(state: ORMExecuteState) -> None:
        if in_greenlet():
            return
        if state.is_relationship_load or state.is_column_load:
            loaded_from = state.lazy_loaded_from
            if loaded_from is not None:
                what = f"a relationship of {loaded_from.class_.__name__}"
            else:
                what = "an expired or deferred attribute"
            raise AsyncLazyLoadError(getattr(state.session, "tenant", None), what)


class AsyncBackedSession(Session):
    """The sync session behind a tenant's :class:`~sqlalchemy.ext.asyncio.AsyncSession`."""


class RoutedAsyncBackedSession(RoutedSession):
    """The sync session behind a routed :class:`~sqlalchemy.ext.asyncio.AsyncSession`."""

    def __init__(self, *, dorm: Dorm, **options: Any) -> None:
        super().__init__(dorm=dorm, **options)

    def get_bind(self, mapper: Any = None, clause: Any = None, **kw: Any) -> Any:
        return self.dorm.async_engine(self._resolve_tenant()).sync_engine


event.listen(AsyncBackedSession, "do_orm_execute", _RaiseOnImplicitLoad.check)
event.listen(RoutedAsyncBackedSession, "do_orm_execute", _RaiseOnImplicitLoad.check)
