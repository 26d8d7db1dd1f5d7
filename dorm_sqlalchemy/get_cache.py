"""One reusable SELECT per mapper for ``Session.get()`` by primary key.

SQLAlchemy builds a new SELECT for each ``get()`` that misses the identity
map, and then computes its cache key to find the compiled SQL. Computing
the key costs more than the point query itself on SQLite. A statement
object keeps its key once computed, so tenant sessions build the SELECT
once per mapper and reuse it, across sessions, threads and tenants: the
tenant travels in the load options, not in the statement. That makes
``get()`` about 15% faster than plain SQLAlchemy's on SQLite (measured in
``benchmarks/session_steps.py``).

The statement is the one SQLAlchemy's own ``get()`` would build, because
SQLAlchemy's loader builds it (see :func:`_build_statement`); a test
compares their cache keys. A ``get()`` that requests more than a plain
load by primary key (options, ``populate_existing``, ``with_for_update``,
execution options, a ``None`` in the key) goes through SQLAlchemy's own
path.

NOTE: a ``do_orm_execute`` listener that changes ``state.statement`` in
place, through private attributes, changes it for every later ``get()`` of
every tenant. Assigning a new statement, as SQLAlchemy's recipes do, is safe.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from sqlalchemy import Select
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Mapper, Session, loading
from sqlalchemy.orm.context import QueryContext
from sqlalchemy.util import EMPTY_DICT

__all__ = ["load_by_primary_key", "tenant_load_options"]

# SQLAlchemy's loader behind Session.get(): 2.1 names it _load_on_pk_identity,
# and 2.0 load_on_pk_identity.
_load_on_pk_identity = getattr(loading, "_load_on_pk_identity", None) or getattr(
    loading, "load_on_pk_identity"
)


class _GetStatement(NamedTuple):
    criterion: Any
    """The mapper's primary key criterion the statement was built from."""

    statement: Select[Any]
    parameter_names: tuple[str, ...]
    """The bound parameter of each primary key column, in the mapper's order."""


_ATTRIBUTE = "_dorm_get_statement"
"""The mapper attribute that keeps its statement.

On the mapper, the statement goes away with it. A dictionary keyed by
mapper would keep every mapper alive, because the statement refers to it.
"""


def load_by_primary_key(
    session: Session,
    statement: Select[Any],
    primary_key_identity: Any,
    *,
    load_options: Any,
    identity_token: Any,
    execution_options: Any,
    bind_arguments: Any,
) -> Any:
    """Load one object by primary key: the ``db_load_fn`` that ``Session._get_impl`` calls.

    ``statement`` is the fresh ``select(mapper)`` SQLAlchemy made for this
    call, with the caller's options and FOR UPDATE applied.
    """
    if not _is_plain_load(statement, primary_key_identity, load_options, execution_options):
        return _load_on_pk_identity(
            session,
            statement,
            primary_key_identity,
            load_options=load_options,
            identity_token=identity_token,
            execution_options=execution_options,
            bind_arguments=bind_arguments,
        )

    mapper = statement._propagate_attrs["plugin_subject"]
    cached = _get_statement(mapper, statement)
    params = dict(zip(cached.parameter_names, primary_key_identity))
    result = (
        session.execute(
            cached.statement,
            params=params,
            execution_options={"_sa_orm_load_options": tenant_load_options(identity_token)},
            bind_arguments=bind_arguments,
        )
        .unique()
        .scalars()
    )
    try:
        return result.one()
    except NoResultFound:
        return None


def _is_plain_load(
    statement: Select[Any], primary_key_identity: Any, load_options: Any, execution_options: Any
) -> bool:
    return (
        not statement._with_options
        and statement._for_update_arg is None
        and load_options is QueryContext.default_load_options
        and not execution_options
        # SQLAlchemy turns a None in the key into IS NULL.
        and None not in primary_key_identity
    )


def _get_statement(mapper: Mapper[Any], select_mapper: Select[Any]) -> _GetStatement:
    criterion, parameters = mapper._get_clause
    cached = mapper.__dict__.get(_ATTRIBUTE)
    # SQLAlchemy builds the criterion again when the mapper or a subclass of
    # it is configured, and the statement is built again with it.
    if cached is None or cached.criterion is not criterion:
        names = tuple(parameters[column].key for column in mapper.primary_key)
        cached = _GetStatement(criterion, _build_statement(mapper, select_mapper), names)
        setattr(mapper, _ATTRIBUTE, cached)
    return cached


class _StatementBuilt(Exception):
    """Carries the statement out of SQLAlchemy's loader."""

    def __init__(self, statement: Select[Any]) -> None:
        super().__init__()
        self.statement = statement


class _StatementCatcher:
    """Stands in for the session, and stops SQLAlchemy's loader at its execute() call."""

    def execute(self, statement: Select[Any], *args: Any, **options: Any) -> Any:
        raise _StatementBuilt(statement)


def _build_statement(mapper: Mapper[Any], select_mapper: Select[Any]) -> Select[Any]:
    """Return the SELECT that SQLAlchemy's ``get()`` runs for ``mapper``, without running it.

    ``select_mapper`` is the plain ``select(mapper)`` that ``Session.get()``
    made. SQLAlchemy's loader builds the statement from it and hands it to
    the session's ``execute()``. Catching it there, rather than building it
    here, keeps it equal to SQLAlchemy's own in every version.
    """
    # Any key without a None takes the same path; the values only fill params.
    key = [0] * len(mapper.primary_key)
    try:
        _load_on_pk_identity(
            _StatementCatcher(),
            select_mapper,
            key,
            load_options=QueryContext.default_load_options,
            identity_token=None,
            execution_options=EMPTY_DICT,
            bind_arguments=None,
        )
    except _StatementBuilt as built:
        return built.statement
    raise RuntimeError(f"SQLAlchemy's get() loader for {mapper} did not execute a statement")


@functools.lru_cache(maxsize=4096)
def tenant_load_options(tenant: str) -> Any:
    """Return SQLAlchemy's default ORM load options with ``tenant`` as the identity token."""
    return QueryContext.default_load_options + {"_identity_token": tenant}
