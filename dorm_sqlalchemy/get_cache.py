"""One reusable SELECT per mapper for ``Session.get()`` by primary key.

SQLAlchemy builds a new SELECT for each ``get()`` that misses the identity
map, and then computes its cache key to find the compiled SQL. Computing
the key costs more than the point query itself on SQLite. A statement
object keeps its key once computed, so tenant sessions build the SELECT
once per mapper and reuse it, across sessions, threads and tenants: the
tenant travels in the load options, not in the statement. That makes
``get()`` about 15% faster than plain SQLAlchemy's on SQLite (measured in
``benchmarks/session_steps.py``).

The statement is the one SQLAlchemy's own ``get()`` would build; a test
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

from sqlalchemy import Select, select
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Mapper, Session, loading
from sqlalchemy.orm import context as orm_context
from sqlalchemy.orm.context import QueryContext

__all__ = ["load_by_primary_key", "tenant_load_options"]

# SQLAlchemy 2.1 names the class _ORMCompileState, and 2.0 ORMCompileState.
_ORM_COMPILE_OPTIONS = getattr(
    orm_context, "_ORMCompileState", getattr(orm_context, "ORMCompileState", None)
).default_compile_options


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
        return loading._load_on_pk_identity(
            session,
            statement,
            primary_key_identity,
            load_options=load_options,
            identity_token=identity_token,
            execution_options=execution_options,
            bind_arguments=bind_arguments,
        )

    mapper = statement._propagate_attrs["plugin_subject"]
    cached = _get_statement(mapper)
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


def _get_statement(mapper: Mapper[Any]) -> _GetStatement:
    criterion, parameters = mapper._get_clause
    cached = mapper.__dict__.get(_ATTRIBUTE)
    # SQLAlchemy builds the criterion again when the mapper or a subclass of
    # it is configured, and the statement is built again with it.
    if cached is None or cached.criterion is not criterion:
        statement = select(mapper)
        statement._where_criteria = (criterion,)
        statement._compile_options = _ORM_COMPILE_OPTIONS
        names = tuple(parameters[column].key for column in mapper.primary_key)
        cached = _GetStatement(criterion, statement, names)
        setattr(mapper, _ATTRIBUTE, cached)
    return cached


@functools.lru_cache(maxsize=4096)
def tenant_load_options(tenant: str) -> Any:
    """Return SQLAlchemy's default ORM load options with ``tenant`` as the identity token."""
    return QueryContext.default_load_options + {"_identity_token": tenant}
