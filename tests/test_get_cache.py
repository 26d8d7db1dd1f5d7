"""Session.get() by primary key through one reusable statement per mapper."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
)
from sqlalchemy.exc import MultipleResultsFound, NoResultFound
from sqlalchemy.ext.declarative import ConcreteBase
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    load_only,
    mapped_column,
    registry,
)

from dorm_sqlalchemy import Dorm


class Base(DeclarativeBase):
    metadata = MetaData()


class Entry(Base):
    __tablename__ = "entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(100))


class Ledger(Base):
    """A composite primary key."""

    __tablename__ = "ledgers"

    year: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(10), primary_key=True, nullable=True)
    total: Mapped[int]


class Party(Base):
    """Joined-table inheritance."""

    __tablename__ = "parties"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "party"}


class Company(Party):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(ForeignKey("parties.id"), primary_key=True)
    vat: Mapped[str] = mapped_column(String(20))
    __mapper_args__ = {"polymorphic_identity": "company"}


@pytest.fixture
def seeded(dorm: Dorm) -> Dorm:
    for tenant in ("acme", "globex"):
        Base.metadata.create_all(dorm.engine(tenant))
        with dorm.session(tenant) as session, session.begin():
            session.add(Entry(id=1, body=f"{tenant} entry"))
            session.add(Ledger(year=2026, code="A", total=len(tenant)))
            session.add(Company(id=1, name=f"{tenant} company", vat="X1"))
    return dorm


@pytest.fixture
def plain_engine(seeded: Dorm) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{seeded.path('acme')}")
    yield engine
    engine.dispose()


def _capture(session: Session) -> list[Any]:
    """Record each statement that ``session`` executes."""
    statements: list[Any] = []

    @event.listens_for(session, "do_orm_execute")
    def _record(state: Any) -> None:
        statements.append(state.statement)

    return statements


def _get(session: Session, entity: type, key: Any, **options: Any) -> tuple[Any, Any]:
    statements = _capture(session)
    found = session.get(entity, key, **options)
    return found, statements[-1] if statements else None


CASES = [
    pytest.param(Entry, 1, id="single-column key"),
    pytest.param(Ledger, (2026, "A"), id="composite key"),
    pytest.param(Party, 1, id="joined inheritance"),
]


@pytest.mark.parametrize(("entity", "key"), CASES)
def test_statement_is_the_one_sqlalchemy_builds(
    seeded: Dorm, plain_engine: Engine, entity: type, key: Any
) -> None:
    with Session(plain_engine) as plain:
        expected, plain_statement = _get(plain, entity, key)
    with seeded.session("acme") as session:
        found, statement = _get(session, entity, key)

        assert statement._generate_cache_key().key == plain_statement._generate_cache_key().key
        assert str(statement.compile(plain_engine)) == str(plain_statement.compile(plain_engine))
        assert type(found) is type(expected)
        assert found is session.get(entity, key)


def test_statement_shared_across_sessions_and_tenants(seeded: Dorm) -> None:
    with seeded.session("acme") as acme, seeded.session("globex") as globex:
        acme_entry, acme_statement = _get(acme, Entry, 1)
        globex_entry, globex_statement = _get(globex, Entry, 1)

        assert acme_statement is globex_statement
        assert acme_entry.body == "acme entry"
        assert globex_entry.body == "globex entry"
        assert acme_entry is not globex_entry


def _cached_statement(dorm: Dorm) -> Any:
    with dorm.session("acme") as session:
        return _get(session, Entry, 1)[1]


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"options": [load_only(Entry.body)]}, id="options"),
        pytest.param({"populate_existing": True}, id="populate_existing"),
        pytest.param({"execution_options": {"populate_existing": True}}, id="execution_options"),
        pytest.param({"with_for_update": True}, id="with_for_update"),
    ],
)
def test_get_with_options_builds_own_statement(
    seeded: Dorm, options: dict[str, Any]
) -> None:
    cached = _cached_statement(seeded)
    with seeded.session("globex") as session:
        found, statement = _get(session, Entry, 1, **options)

        assert statement is not None
        assert statement is not cached
        assert found.body == "globex entry"


@pytest.mark.parametrize(
    "options",
    [{"populate_existing": True}, {"execution_options": {"populate_existing": True}}],
    ids=["argument", "execution option"],
)
def test_populate_existing_as_in_sqlalchemy(
    seeded: Dorm, plain_engine: Engine, options: dict[str, Any]
) -> None:
    bodies = []
    for session in (Session(plain_engine), seeded.session("acme")):
        with session:
            entry = session.get(Entry, 1)
            with session.no_autoflush:
                entry.body = "changed in memory"
                found = session.get(Entry, 1, **options)

            assert found is entry
            bodies.append(entry.body)

    # SQLAlchemy 2.0 ignores the execution option in get().
    assert bodies[1] == bodies[0]
    if "populate_existing" in options:
        assert bodies[1] == "acme entry"


def test_none_in_key_follows_sqlalchemy(seeded: Dorm, plain_engine: Engine) -> None:
    cached = _cached_statement(seeded)
    for session in (Session(plain_engine), seeded.session("acme")):
        with session, session.begin():
            session.add(Ledger(year=2027, code=None, total=7))
    with Session(plain_engine) as plain, seeded.session("acme") as session:
        expected, plain_statement = _get(plain, Ledger, (2027, None))
        found, statement = _get(session, Ledger, (2027, None))

        assert statement is not cached
        assert str(statement.compile(plain_engine)) == str(plain_statement.compile(plain_engine))
        assert (found is None) == (expected is None)


def test_missing_row(seeded: Dorm) -> None:
    with seeded.session("acme") as session:
        assert session.get(Entry, 99) is None
        with pytest.raises(NoResultFound):
            session.get_one(Entry, 99)


def test_subclass_mapped_later_is_loaded(make_dorm: Callable[..., Dorm]) -> None:
    class LateBase(DeclarativeBase):
        metadata = MetaData()

    class Animal(LateBase):
        __tablename__ = "animals"

        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str] = mapped_column(String(20))
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "animal"}

    dorm = make_dorm()
    LateBase.metadata.create_all(dorm.engine("zoo"))
    with dorm.session("zoo") as session, session.begin():
        session.add(Animal(id=1))
        session.add(Animal(id=2))
    with dorm.session("zoo") as session:
        assert type(session.get(Animal, 1)) is Animal

    class Dog(Animal):
        __mapper_args__ = {"polymorphic_identity": "dog"}

    with dorm.session("zoo") as session, session.begin():
        session.get(Animal, 2).kind = "dog"
    with dorm.session("zoo") as session:
        assert type(session.get(Animal, 2)) is Dog

    LateBase.registry.dispose()


def test_threads_read_their_own_tenant(seeded: Dorm) -> None:
    errors: list[str] = []

    def read(tenant: str) -> None:
        for _ in range(200):
            with seeded.session(tenant) as session:
                body = session.get(Entry, 1).body
            if body != f"{tenant} entry":
                errors.append(f"{tenant} read {body!r}")

    threads = [threading.Thread(target=read, args=(tenant,)) for tenant in ("acme", "globex") * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []


def _map_and_get(dorm: Dorm, table: Table) -> weakref.ref[Any]:
    """Return a weak reference to a mapper that served one get() and whose registry is disposed."""

    class Thing:
        pass

    mappers = registry()
    mapper = weakref.ref(mappers.map_imperatively(Thing, table))
    with dorm.session("acme") as session:
        session.get(Thing, 1)
    mappers.dispose()
    return mapper


def test_disposed_mapper_is_freed(make_dorm: Callable[..., Dorm]) -> None:
    table = Table("things", MetaData(), Column("id", Integer, primary_key=True))
    dorm = make_dorm()
    table.metadata.create_all(dorm.engine("acme"))

    mapper = _map_and_get(dorm, table)
    # The engines' compiled caches refer to the mapper as well.
    dorm.close()
    gc.collect()

    assert mapper() is None


class ConcreteModel(DeclarativeBase):
    metadata = MetaData()


class Shape(ConcreteBase, ConcreteModel):
    """Concrete inheritance: each table numbers its own rows."""

    __tablename__ = "shapes"

    id: Mapped[int] = mapped_column(primary_key=True)
    __mapper_args__ = {"polymorphic_identity": "shape", "concrete": True}


class Circle(Shape):
    __tablename__ = "circles"

    id: Mapped[int] = mapped_column(primary_key=True)
    __mapper_args__ = {"polymorphic_identity": "circle", "concrete": True}


def test_two_rows_raise_as_in_sqlalchemy(make_dorm: Callable[..., Dorm]) -> None:
    # A shape and a circle both have id 1, so get(Shape, 1) finds two rows.
    dorm = make_dorm()
    ConcreteModel.metadata.create_all(dorm.engine("acme"))
    with dorm.session("acme") as session, session.begin():
        session.add_all([Shape(id=1), Circle(id=1)])
    plain = create_engine(f"sqlite:///{dorm.path('acme')}")

    messages = []
    for session in (Session(plain), dorm.session("acme")):
        with session, pytest.raises(MultipleResultsFound) as raised:
            session.get(Shape, 1)
        messages.append(str(raised.value))
    plain.dispose()

    assert messages[1] == messages[0]
