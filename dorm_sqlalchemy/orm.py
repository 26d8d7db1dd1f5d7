"""Tenant sessions: ORM sessions that belong to exactly one tenant.

Every session the registry makes (``dorm.session(t)``, ``dorm.sessionmaker()``
and their async forms) is a :class:`TenantSession`. It carries its tenant in
the identity of every object it loads or saves, as SQLAlchemy's horizontal
sharding extension does with its *identity token*, so:

* two rows with the same primary key in two tenants are two objects with two
  identity keys, even if they meet in one session;
* an object of one tenant added or merged into another tenant's session raises
  :class:`~dorm_sqlalchemy.errors.TenantMismatch` instead of being written to
  the wrong database.

A routed session (:class:`RoutedSession`) takes its tenant from
``dorm.tenant(...)`` when it is created, or else when it first needs it, and
keeps it: using it later while another tenant is current raises
:class:`~dorm_sqlalchemy.errors.TenantMismatch`.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import in_greenlet

try:
    from sqlalchemy.util.concurrency import await_
except ImportError:  # SQLAlchemy 2.0 names it await_only
    from sqlalchemy.util.concurrency import await_only as await_

from .connections import engine_with_begin
from .errors import AsyncLazyLoadError, NoCurrentTenant, TenantMismatch
from .get_cache import load_by_primary_key, tenant_load_options
from .naming import TenantName

if TYPE_CHECKING:
    from .registry import Dorm

__all__ = [
    "TenantScope",
    "TenantSession",
    "RoutedSession",
    "AsyncBackedSession",
    "RoutedAsyncBackedSession",
]


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


class TenantSession(Session):
    """A :class:`~sqlalchemy.orm.Session` bound to one tenant, which tags its objects.

    Its ``get()`` reuses one SELECT per mapper (see :mod:`dorm_sqlalchemy.get_cache`).
    """

    def __init__(
        self, bind: Any = None, *, tenant: TenantName | None = None, **options: Any
    ) -> None:
        super().__init__(bind, **options)
        self.tenant: TenantName | None = tenant
        if options.get("execution_options"):
            # SQLAlchemy 2.1 sessions take execution options of their own.
            self._check_session_token(self.execution_options.get("identity_token"))

    def _check_session_token(self, token: object) -> None:
        if token is None:
            return
        if self.tenant is None:
            raise TenantMismatch(
                "(none yet)",
                str(token),
                message=(
                    f"identity_token {str(token)!r} cannot be checked against a routed "
                    "session's tenant before that tenant is known: remove the option, "
                    "since every session already tags its objects with its tenant"
                ),
            )
        if not _is_tenant(token, self.tenant):
            raise TenantMismatch.for_option(self.tenant, str(token))

    def resolve_tenant(self) -> TenantName:
        """Return the session's tenant (raising when it cannot be known)."""
        assert self.tenant is not None
        return self.tenant

    def _check_token(self, token: object, *, option: bool = False) -> None:
        if token is None:
            return
        tenant = self.resolve_tenant()
        if not _is_tenant(token, tenant):
            if option:
                raise TenantMismatch.for_option(tenant, str(token))
            raise TenantMismatch.for_object(tenant, str(token))

    def _execute_internal(
        self,
        statement: Any,
        params: Any = None,
        *,
        execution_options: Any = EMPTY_DICT,
        bind_arguments: Any = None,
        _parent_execute_state: Any = None,
        _add_event: Any = None,
        _scalar_result: bool = False,
    ) -> Any:
        # Every ORM execution passes here: select, get, lazy and refresh
        # loads, DML, flush. get() already put the tenant in its load options,
        # and every other execution gets it here. A do_orm_execute listener
        # could do the same, but SQLAlchemy then builds an ORMExecuteState for
        # each execution, which cost about 8% of a session.get() (measured).
        # The arguments are spelled out because passing them on as **kwargs
        # costs more than the rest of this method.
        token = execution_options.get("identity_token")
        if token is not None:
            self._check_token(token, option=True)
        load_options = execution_options.get("_sa_orm_load_options")
        if load_options is not None and load_options._identity_token is not None:
            if load_options._identity_token is not self.tenant:
                self._check_token(load_options._identity_token, option=True)
        else:
            tenant = self.resolve_tenant()
            statement_options = getattr(statement, "_execution_options", EMPTY_DICT)
            self._check_token(statement_options.get("identity_token"), option=True)
            if load_options is None:
                # Load options also reach the objects that ORM-enabled
                # INSERT, UPDATE and DELETE return. The identity_token option
                # is what those statements use to find the session's objects
                # that they change or delete.
                tagged = {"_sa_orm_load_options": tenant_load_options(tenant)}
                if statement.is_dml:
                    tagged["identity_token"] = tenant
            else:
                tagged = {"identity_token": tenant}
            execution_options = {**execution_options, **tagged}
        return super()._execute_internal(
            statement,
            params,
            execution_options=execution_options,
            bind_arguments=bind_arguments,
            _parent_execute_state=_parent_execute_state,
            _add_event=_add_event,
            _scalar_result=_scalar_result,
        )

    def get(
        self,
        entity: Any,
        ident: Any,
        *,
        options: Any = None,
        populate_existing: bool | None = None,
        with_for_update: Any = None,
        identity_token: Any = None,
        execution_options: Any = EMPTY_DICT,
        bind_arguments: Any = None,
    ) -> Any:
        if identity_token is not None:
            self._check_token(identity_token, option=True)
        return self._get_impl(
            entity,
            ident,
            load_by_primary_key,
            options=options,
            populate_existing=populate_existing,  # type: ignore[arg-type]
            with_for_update=with_for_update,
            identity_token=self.resolve_tenant(),
            execution_options=execution_options,
            bind_arguments=bind_arguments,
        )

    def _identity_lookup(
        self, mapper: Any, primary_key_identity: Any, identity_token: Any = None, **options: Any
    ) -> Any:
        # SQLAlchemy's lazy loader looks a many-to-one target up without a
        # token, and every object of this session carries the tenant's.
        if identity_token is None:
            identity_token = self.tenant
        return super()._identity_lookup(
            mapper, primary_key_identity, identity_token=identity_token, **options
        )

    def _merge(self, state: Any, state_dict: Any, **options: Any) -> Any:
        # merge(load=False) registers the merged object under the given
        # object's identity key, which must carry the tenant so that an object
        # this session already has is found. Cascaded merges pass here too.
        # An object attached to another session keeps its key for that session.
        if state.session is None:
            _adopt(self, state)
        merged = super()._merge(state, state_dict, **options)
        merged_state = inspect(merged)
        if merged_state.key is not None:
            # SQLAlchemy leaves the token unset on an object merged without loading.
            merged_state.identity_token = merged_state.key[2]
        return merged

    def bulk_save_objects(self, objects: Any, *args: Any, **options: Any) -> None:
        # Unlike add(), bulk saves never attach their objects, so nothing
        # else checks that a persistent object belongs to this tenant.
        objects = list(objects)
        for instance in objects:
            key = inspect(instance).key
            if key is not None and key[2] is not None:
                self._check_token(key[2])
        super().bulk_save_objects(objects, *args, **options)

    def get_one(self, entity: Any, ident: Any, **options: Any) -> Any:
        token = options.get("identity_token")
        if token is not None:
            self._check_token(token, option=True)
        options["identity_token"] = self.resolve_tenant()
        return super().get_one(entity, ident, **options)


def _is_tenant(token: object, tenant: TenantName) -> bool:
    # Only the exact string of the tenant passes: a str subclass could claim
    # to be equal to any name.
    return type(token) is str and token == tenant


def _check_attach(session: Session, instance: object) -> None:
    if not isinstance(session, TenantSession):
        return
    _adopt(session, inspect(instance))


def _adopt(session: TenantSession, state: Any) -> None:
    """Check that a persistent object belongs to the session's tenant, or tag it with it."""
    key = state.key
    if key is None:
        return
    if key[2] is not None:
        # Also pins a routed session that had no tenant yet.
        session._check_token(key[2])
        return

    # A persistent object that no tenant session loaded, such as one from
    # make_transient_to_detached(), becomes a row of this tenant, so that
    # get() finds it under the tenant's identity key.
    tenant = session.resolve_tenant()
    state.key = (key[0], key[1], tenant)
    state.identity_token = tenant


def _tag_new_objects(session: Session, flush_context: Any, instances: Any) -> None:
    if not isinstance(session, TenantSession):
        return
    # A new object becomes a row of this tenant, even when make_transient()
    # made it from a row of another tenant.
    tenant = session.resolve_tenant()
    for instance in session.new:
        inspect(instance).identity_token = tenant


event.listen(TenantSession, "before_attach", _check_attach)
event.listen(TenantSession, "before_flush", _tag_new_objects)


class _BindUntilClose(Session):
    """A session that finds its engine at its first statement and keeps it until it closes.

    A closed session may be used again, and then finds the tenant's engine
    anew: the tenant may have been dropped and created again meanwhile.
    """

    _engine: Any = None

    def close(self) -> None:
        super().close()
        self._engine = None

    def reset(self) -> None:
        super().reset()
        self._engine = None


class RoutedSession(_BindUntilClose, TenantSession):
    """A :class:`TenantSession` that takes its tenant from the current ``dorm.tenant(...)``."""

    def __init__(self, *, dorm: Dorm, begin: str | None = None, **options: Any) -> None:
        if options.get("bind") is not None or options.get("binds"):
            raise TypeError(
                "a routed session takes its bind from the current tenant: remove "
                "bind=/binds=, or use dorm.session(tenant) for an explicit tenant"
            )
        options.pop("bind", None)
        options.pop("binds", None)
        self.dorm = dorm
        self.begin_mode = begin
        """The begin mode of this session's transactions, or ``None`` for the registry's default."""
        self._engine: Any = None
        super().__init__(tenant=dorm.current_tenant, **options)

    def resolve_tenant(self) -> TenantName:
        current = self.dorm.current_tenant
        if self.tenant is None:
            if current is None:
                raise NoCurrentTenant()
            self.tenant = current
        elif current is not None and current != self.tenant:
            raise TenantMismatch(self.tenant, current)
        return self.tenant

    def get_bind(self, mapper: Any = None, clause: Any = None, **kw: Any) -> Any:
        tenant = self.resolve_tenant()
        # One engine until the session closes: if the registry evicts the
        # tenant meanwhile, the session keeps using the connection it holds
        # instead of opening a second one that would wait for its own lock.
        if self._engine is None:
            self._engine = self._engine_for(tenant)
        return self._engine

    def _engine_for(self, tenant: TenantName) -> Any:
        return self.dorm._open(tenant).engine_for(self.begin_mode)


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


def _async_engine_off_loop(dorm: Dorm, tenant: TenantName) -> Any:
    """Return the tenant's async engine without blocking the event loop.

    Opening a tenant for the first time may create its file and run its
    migrations; inside an AsyncSession that work goes to a worker thread.
    """
    if in_greenlet():
        return await_(asyncio.to_thread(dorm.async_engine, tenant)).sync_engine
    return dorm.async_engine(tenant).sync_engine


class AsyncBackedSession(_BindUntilClose, TenantSession):
    """The sync session behind a tenant's :class:`~sqlalchemy.ext.asyncio.AsyncSession`."""

    def __init__(self, *, dorm: Dorm | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.dorm = dorm
        self._engine: Any = None

    def get_bind(self, mapper: Any = None, clause: Any = None, **kw: Any) -> Any:
        if self.dorm is None:
            return super().get_bind(mapper, clause=clause, **kw)
        if self._engine is None:
            self._engine = _async_engine_off_loop(self.dorm, self.resolve_tenant())
        return self._engine


class RoutedAsyncBackedSession(RoutedSession):
    """The sync session behind a routed :class:`~sqlalchemy.ext.asyncio.AsyncSession`."""

    def _engine_for(self, tenant: TenantName) -> Any:
        engine = _async_engine_off_loop(self.dorm, tenant)
        if self.begin_mode is None:
            return engine
        return engine_with_begin(engine, self.begin_mode)


event.listen(AsyncBackedSession, "do_orm_execute", _RaiseOnImplicitLoad.check)
event.listen(RoutedAsyncBackedSession, "do_orm_execute", _RaiseOnImplicitLoad.check)
