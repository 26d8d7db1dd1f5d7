"""Routed sessions: the current tenant, pinning, and no cross-tenant leaks."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import delete, func, inspect, select, text, update
from sqlalchemy.orm import make_transient, make_transient_to_detached, scoped_session

from dorm_sqlalchemy import Dorm, NoCurrentTenant, TenantMismatch
from tests.models import Author, Base, Book, Note


@pytest.fixture
def two_tenants(dorm: Dorm) -> Dorm:
    for tenant in ("acme", "globex"):
        Base.metadata.create_all(dorm.engine(tenant))
        with dorm.session(tenant) as session, session.begin():
            session.add(Note(id=1, body=f"{tenant} secret"))
    return dorm


def test_same_primary_key_in_two_tenants(two_tenants: Dorm) -> None:
    Session = two_tenants.sessionmaker()
    with two_tenants.tenant("acme"), Session() as session:
        acme_note = session.get(Note, 1)
    with two_tenants.tenant("globex"), Session() as session:
        globex_note = session.get(Note, 1)

    assert acme_note is not globex_note
    assert acme_note.body == "acme secret"
    assert globex_note.body == "globex secret"


def test_explicit_sessions_never_share_identity(two_tenants: Dorm) -> None:
    with two_tenants.session("acme") as acme, two_tenants.session("globex") as globex:
        acme_note = acme.get(Note, 1)
        globex_note = globex.get(Note, 1)

        assert acme_note is not globex_note
        assert globex_note.body == "globex secret"


def test_total_over_two_tenants_counts_two(two_tenants: Dorm) -> None:
    rows = two_tenants.fan_out(select(func.count()).select_from(Note))

    assert [row.tenant for row in rows] == ["acme", "globex"]
    assert sum(row[1] for row in rows) == 2


def test_routed_session_without_tenant_raises(two_tenants: Dorm) -> None:
    Session = two_tenants.sessionmaker()
    with Session() as session:
        with pytest.raises(NoCurrentTenant, match="dorm.tenant"):
            session.get(Note, 1)


def test_routed_session_used_under_other_tenant_raises(two_tenants: Dorm) -> None:
    Session = two_tenants.sessionmaker()
    with two_tenants.tenant("acme"):
        session = Session()
        session.get(Note, 1)
    with two_tenants.tenant("globex"):
        with pytest.raises(TenantMismatch) as raised:
            session.get(Note, 2)
    session.close()

    assert raised.value.tenant == "acme"
    assert raised.value.current == "globex"


def test_routed_session_pins_tenant_at_first_use(two_tenants: Dorm) -> None:
    Session = two_tenants.sessionmaker()
    session = Session()
    with two_tenants.tenant("globex"):
        note = session.get(Note, 1)
    assert session.tenant == "globex"
    assert note.body == "globex secret"
    # Outside any tenant block the session keeps its own tenant.
    assert session.get(Note, 1) is note
    session.close()


def test_routed_session_rejects_bind(two_tenants: Dorm) -> None:
    Session = two_tenants.sessionmaker()
    with pytest.raises(TypeError, match="bind"):
        Session(bind=two_tenants.engine("acme"))


def test_scoped_session_with_tenant(two_tenants: Dorm) -> None:
    Session = scoped_session(two_tenants.sessionmaker())
    with two_tenants.tenant("globex"):
        assert Session.get(Note, 1).body == "globex secret"
    Session.remove()


def test_tenant_scope_nests_and_restores(dorm: Dorm) -> None:
    assert dorm.current_tenant is None
    with dorm.tenant("Acme") as outer:
        assert outer == "acme"
        with dorm.tenant("globex"):
            assert dorm.current_tenant == "globex"
        assert dorm.current_tenant == "acme"
    assert dorm.current_tenant is None


def test_tenant_does_not_leak_into_other_threads(dorm: Dorm) -> None:
    seen: list[str | None] = []
    with dorm.tenant("acme"):
        thread = threading.Thread(target=lambda: seen.append(dorm.current_tenant))
        thread.start()
        thread.join()

    assert seen == [None]


def test_two_registries_have_separate_current_tenants(make_dorm) -> None:
    first, second = make_dorm(), make_dorm()
    with first.tenant("acme"):
        assert second.current_tenant is None


async def test_tenant_follows_asyncio_tasks(two_tenants: Dorm) -> None:
    Session = two_tenants.async_sessionmaker()

    async def read(tenant: str) -> str:
        async with two_tenants.tenant(tenant):
            await asyncio.sleep(0.01)
            async with Session() as session:
                note = await session.get(Note, 1)
                return note.body

    bodies = await asyncio.gather(*(read(t) for t in ["acme", "globex", "acme", "globex"]))
    await two_tenants.aclose()

    assert bodies == ["acme secret", "globex secret", "acme secret", "globex secret"]


async def test_async_routed_session_without_tenant_raises(two_tenants: Dorm) -> None:
    Session = two_tenants.async_sessionmaker()
    async with Session() as session:
        with pytest.raises(NoCurrentTenant):
            await session.get(Note, 1)
    await two_tenants.aclose()


def test_tenant_task_inherits_context(two_tenants: Dorm) -> None:
    async def main() -> str | None:
        with two_tenants.tenant("globex"):
            task = asyncio.create_task(asyncio.sleep(0, result=None))
            await task
            return await asyncio.create_task(current())

    async def current() -> str | None:
        return two_tenants.current_tenant

    assert asyncio.run(main()) == "globex"


def test_routed_get_under_other_tenant_raises(two_tenants: Dorm) -> None:
    Session = two_tenants.sessionmaker()
    session = Session()
    with two_tenants.tenant("acme"):
        acme_note = session.get(Note, 1)
    with two_tenants.tenant("globex"):
        with pytest.raises(TenantMismatch):
            session.get(Note, 1)
    session.close()
    assert acme_note.body == "acme secret"


def test_detached_object_cannot_enter_other_tenant(two_tenants: Dorm) -> None:
    Session = two_tenants.sessionmaker()
    with two_tenants.tenant("acme"), Session() as session:
        note = session.get(Note, 1)
    note.body = "written from acme's object"

    with two_tenants.tenant("globex"), Session() as session:
        with pytest.raises(TenantMismatch):
            session.add(note)
    with two_tenants.session("globex") as session:
        with pytest.raises(TenantMismatch):
            session.merge(note)

    assert two_tenants.exec("globex", "SELECT body FROM notes WHERE id = 1").scalar() == "globex secret"


def test_detached_object_returns_to_own_tenant(two_tenants: Dorm) -> None:
    with two_tenants.session("acme") as session:
        note = session.get(Note, 1)
    note.body = "edited while detached"
    with two_tenants.session("acme") as session, session.begin():
        session.add(note)

    assert two_tenants.exec("acme", "SELECT body FROM notes WHERE id = 1").scalar() == "edited while detached"


def test_new_object_tagged_after_flush(two_tenants: Dorm) -> None:
    from sqlalchemy import inspect

    with two_tenants.session("acme") as session, session.begin():
        note = Note(id=2, body="new")
        session.add(note)
    assert inspect(note).identity_token == "acme"
    with two_tenants.session("globex") as session:
        with pytest.raises(TenantMismatch):
            session.merge(note)


def test_identity_map_hit_in_same_tenant(two_tenants: Dorm) -> None:
    with two_tenants.session("acme") as session:
        first = session.get(Note, 1)
        assert session.get(Note, 1) is first


def test_routed_session_survives_eviction(make_dorm) -> None:
    dorm = make_dorm(max_engines=1, busy_timeout=1)
    dorm.exec("acme", "CREATE TABLE t (x)")
    Session = dorm.sessionmaker()
    with dorm.tenant("acme"), Session() as session:
        session.execute(text("INSERT INTO t VALUES (1)"))
        dorm.exec("globex", "SELECT 1")
        session.execute(text("INSERT INTO t VALUES (2)"))
        session.commit()

    assert dorm.exec("acme", "SELECT count(*) FROM t").scalar() == 2


async def test_async_routed_sessions_survive_eviction(make_dorm) -> None:
    dorm = make_dorm(max_engines=3, busy_timeout=2)
    for index in range(10):
        dorm.exec(f"t{index}", "CREATE TABLE t (x)")
    Session = dorm.async_sessionmaker()

    async def write(tenant: str) -> None:
        async with dorm.tenant(tenant), Session() as session:
            await session.execute(text("INSERT INTO t VALUES (1)"))
            await asyncio.sleep(0.01)
            await session.execute(text("INSERT INTO t VALUES (2)"))
            await session.commit()

    await asyncio.gather(*(write(f"t{index}") for index in range(10)))
    await dorm.aclose()

    check = make_dorm()
    assert [check.exec(f"t{i}", "SELECT count(*) FROM t").scalar() for i in range(10)] == [2] * 10


def test_object_mismatch_message_names_both(two_tenants: Dorm) -> None:
    with two_tenants.session("acme") as session:
        note = session.get(Note, 1)
    with two_tenants.session("globex") as session:
        with pytest.raises(TenantMismatch) as raised:
            session.add(note)

    message = str(raised.value)
    assert "loaded from tenant 'acme'" in message
    assert "session of tenant 'globex'" in message


def _load_by_select(session: Any) -> list[object]:
    return list(session.scalars(select(Book)))


def _load_by_get(session: Any) -> list[object]:
    return [session.get(Book, 1)]


def _load_by_query(session: Any) -> list[object]:
    return session.query(Book).all()


def _load_lazily(session: Any) -> list[object]:
    return list(session.get(Author, 1).books)


def _load_by_refresh(session: Any) -> list[object]:
    book = session.get(Book, 1)
    session.expire(book)
    assert book.title == "acme book"
    return [book]


@pytest.mark.parametrize(
    "load", [_load_by_select, _load_by_get, _load_by_query, _load_lazily, _load_by_refresh]
)
@pytest.mark.parametrize("routed", [False, True], ids=["session", "sessionmaker"])
def test_every_load_tags_objects_with_the_tenant(dorm: Dorm, load: Any, routed: bool) -> None:
    Base.metadata.create_all(dorm.engine("acme"))
    with dorm.session("acme") as session, session.begin():
        session.add(Author(id=1, name="acme author", books=[Book(id=1, title="acme book")]))

    if routed:
        with dorm.tenant("acme"), dorm.sessionmaker()() as session:
            objects = load(session)
    else:
        with dorm.session("acme") as session:
            objects = load(session)

    assert [inspect(obj).identity_token for obj in objects] == ["acme"]


def test_statement_with_another_identity_token_is_refused(two_tenants: Dorm) -> None:
    with two_tenants.session("acme") as session:
        with pytest.raises(TenantMismatch):
            session.execute(select(Note), execution_options={"identity_token": "globex"})


@pytest.mark.parametrize("verb", ["update", "insert"])
def test_objects_returned_by_dml_carry_the_tenant(two_tenants: Dorm, verb: str) -> None:
    from sqlalchemy import insert, update

    if verb == "update":
        statement = update(Note).where(Note.id == 1).values(body="acme edited").returning(Note)
    else:
        statement = insert(Note).values(id=2, body="acme new").returning(Note)
    with two_tenants.session("acme") as session, session.begin():
        note = session.scalars(statement).one()

    assert inspect(note).identity_token == "acme"
    with two_tenants.session("globex") as session:
        with pytest.raises(TenantMismatch):
            session.add(note)


class _EqualToAnything(str):
    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


@pytest.mark.parametrize("token", ["globex", _EqualToAnything("globex")], ids=["str", "subclass"])
def test_statement_identity_token_of_another_tenant_is_refused(
    two_tenants: Dorm, token: str
) -> None:
    statement = select(Note).execution_options(identity_token=token)
    with two_tenants.session("acme") as session:
        with pytest.raises(TenantMismatch):
            session.scalars(statement).all()


@pytest.mark.parametrize("method", ["get", "get_one"])
def test_get_with_foreign_token_option_raises(two_tenants: Dorm, method: str) -> None:
    with two_tenants.session("acme") as session:
        with pytest.raises(TenantMismatch, match="identity_token 'globex'"):
            getattr(session, method)(Note, 1, execution_options={"identity_token": "globex"})


def test_refresh_with_foreign_token_option_raises(two_tenants: Dorm) -> None:
    with two_tenants.session("acme") as session:
        session.get(Note, 1)
        with pytest.raises(TenantMismatch):
            session.get(
                Note, 1, populate_existing=True, execution_options={"identity_token": "globex"}
            )


def test_session_with_foreign_token_option_raises(two_tenants: Dorm) -> None:
    if sqlalchemy.__version__.startswith("2.0."):
        pytest.skip("sessions take execution options from SQLAlchemy 2.1 on")
    with pytest.raises(TenantMismatch, match="dorm.session\\('globex'\\)"):
        two_tenants.session("acme", execution_options={"identity_token": "globex"})


def test_own_identity_token_accepted(two_tenants: Dorm) -> None:
    statement = select(Note).execution_options(identity_token="acme")
    with two_tenants.session("acme") as session:
        note = session.scalars(statement).one()

    assert inspect(note).identity_token == "acme"


BULK_CHANGES = {
    "update by primary key": lambda session: session.execute(
        update(Note), [{"id": 1, "body": "changed"}]
    ),
    "update, fetch": lambda session: session.execute(
        update(Note).where(Note.id == 1).values(body="changed"),
        execution_options={"synchronize_session": "fetch"},
    ),
    "update, evaluate": lambda session: session.execute(
        update(Note).where(Note.id == 1).values(body="changed")
    ),
}


@pytest.mark.parametrize("change", BULK_CHANGES.values(), ids=list(BULK_CHANGES))
def test_bulk_update_refreshes_session_objects(two_tenants: Dorm, change: Any) -> None:
    with two_tenants.session("acme") as session:
        note = session.get(Note, 1)
        change(session)

        assert note.body == "changed"


@pytest.mark.parametrize("strategy", ["fetch", "evaluate"])
def test_bulk_delete_removes_session_objects(two_tenants: Dorm, strategy: str) -> None:
    with two_tenants.session("acme") as session:
        note = session.get(Note, 1)
        session.execute(
            delete(Note).where(Note.id == 1),
            execution_options={"synchronize_session": strategy},
        )

        assert inspect(note).deleted
        assert session.get(Note, 1) is None


def test_transient_copy_becomes_row_of_new_tenant(two_tenants: Dorm) -> None:
    with two_tenants.session("acme", expire_on_commit=False) as session:
        note = session.get(Note, 1)
    make_transient(note)
    note.id = 7
    with two_tenants.session("globex", expire_on_commit=False) as session, session.begin():
        session.add(note)

    assert inspect(note).identity_token == "globex"
    with two_tenants.session("acme") as session:
        with pytest.raises(TenantMismatch):
            session.add(note)


@pytest.mark.parametrize("attach", ["add", "merge without load"])
def test_untagged_persistent_object_joins_tenant(two_tenants: Dorm, attach: str) -> None:
    note = Note(id=1, body="globex secret")
    make_transient_to_detached(note)

    with two_tenants.session("globex") as session:
        if attach == "add":
            session.add(note)
        else:
            note = session.merge(note, load=False)
        statements = _record_statements(session)

        assert inspect(note).identity_token == "globex"
        assert session.get(Note, 1) is note
        assert statements == []


def test_merge_without_load_finds_loaded_object(two_tenants: Dorm) -> None:
    copy = Note(id=1, body="globex secret")
    make_transient_to_detached(copy)

    with two_tenants.session("globex") as session:
        loaded = session.get(Note, 1)
        merged = session.merge(copy, load=False)

        assert merged is loaded


def test_merge_from_plain_session_leaves_it_intact(two_tenants: Dorm) -> None:
    plain_engine = sqlalchemy.create_engine(f"sqlite:///{two_tenants.path('globex')}")
    with sqlalchemy.orm.Session(plain_engine) as plain:
        note = plain.get(Note, 1)
        with two_tenants.session("globex") as session:
            merged = session.merge(note, load=False)

            assert inspect(merged).identity_key[2] == "globex"
        assert inspect(note).identity_key[2] is None
        assert plain.get(Note, 1) is note
    plain_engine.dispose()


def test_many_to_one_found_in_identity_map(dorm: Dorm) -> None:
    Base.metadata.create_all(dorm.engine("acme"))
    with dorm.session("acme") as session, session.begin():
        session.add(Book(id=1, title="Dune", author=Author(id=1, name="Herbert")))

    with dorm.session("acme") as session:
        author = session.get(Author, 1)
        book = session.get(Book, 1)
        statements = _record_statements(session)

        assert book.author is author
        assert statements == []


def _record_statements(session: Any) -> list[object]:
    statements: list[object] = []
    sqlalchemy.event.listen(session, "do_orm_execute", statements.append)
    return statements


def test_bulk_save_of_another_tenants_object_raises(two_tenants: Dorm) -> None:
    with two_tenants.session("acme", expire_on_commit=False) as session:
        note = session.get(Note, 1)
    note.body = "acme data"

    with two_tenants.session("globex") as session:
        with pytest.raises(TenantMismatch):
            session.bulk_save_objects([note])
    assert two_tenants.exec("globex", "SELECT body FROM notes WHERE id = 1").scalar() == "globex secret"


def test_routed_factory_with_own_token_works(two_tenants: Dorm) -> None:
    if sqlalchemy.__version__.startswith("2.0."):
        pytest.skip("sessions take execution options from SQLAlchemy 2.1 on")
    factory = two_tenants.sessionmaker(execution_options={"identity_token": "acme"})
    with two_tenants.tenant("acme"), factory() as session:
        note = session.get(Note, 1)

    assert note.body == "acme secret"
    with pytest.raises(TenantMismatch, match="routed session"):
        factory()


def test_routed_factory_takes_begin_mode(two_tenants: Dorm) -> None:
    from sqlalchemy import event

    begins: list[str] = []

    @event.listens_for(two_tenants.engine("acme"), "connect")
    def trace(dbapi_connection, connection_record) -> None:
        dbapi_connection.set_trace_callback(
            lambda statement: begins.append(statement) if statement.startswith("BEGIN") else None
        )

    two_tenants.engine("acme").dispose()
    factory = two_tenants.sessionmaker(begin="deferred")
    with two_tenants.tenant("acme"), factory() as session:
        assert session.get(Note, 1).body == "acme secret"

    assert begins == ["BEGIN DEFERRED"]
    with pytest.raises(ValueError, match="invalid begin mode 'lazy'"):
        two_tenants.sessionmaker(begin="lazy")
