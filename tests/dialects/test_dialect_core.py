"""Core, ORM and reflection through dorm+http engines, compared with the registry's local engine."""

from __future__ import annotations

import datetime
import decimal
import warnings
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    create_engine,
    delete,
    exc,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from dorm_sqlalchemy.dialects import dbapi
from dorm_sqlalchemy.dialects.http import DormHTTPDialect, DormHTTPSDialect

from .conftest import LiveServer

metadata = MetaData()

authors = Table(
    "authors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False, unique=True),
)

books = Table(
    "books",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("author_id", ForeignKey("authors.id", ondelete="CASCADE"), nullable=False),
    Column("title", Text, nullable=False),
    Column("isbn", BigInteger),
    Column("price", Numeric(10, 2)),
    Column("rating", Float),
    Column("cover", LargeBinary),
    Column("published", Date),
    Column("updated_at", DateTime),
    UniqueConstraint("author_id", "title", name="uq_books_author_title"),
    Index("ix_books_published", "published"),
)

BOOK = {
    "id": 1,
    "author_id": 1,
    "title": "Notes",
    "isbn": 2**62 + 12345,
    "price": decimal.Decimal("19.99"),
    "rating": 4.25,
    "cover": bytes(range(256)),
    "published": datetime.date(1843, 10, 1),
    "updated_at": datetime.datetime(2024, 2, 29, 23, 59, 58, 123456),
}


@pytest.fixture
def schema(engine: Engine) -> Engine:
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(authors), [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}])
    return engine


def test_dialect_is_sqlite_with_transactions(engine: Engine) -> None:
    with engine.connect() as connection:
        level = connection.get_isolation_level()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        autocommit_level = connection.get_isolation_level()

    assert engine.dialect.name == "sqlite"
    assert engine.dialect.driver == "http"
    assert level == "SERIALIZABLE"
    assert autocommit_level == "AUTOCOMMIT"


def test_server_version_comes_from_server(engine: Engine, local_engine: Engine) -> None:
    with engine.connect():
        pass
    with local_engine.connect() as connection:
        local_version = connection.exec_driver_sql("SELECT sqlite_version()").scalar()

    assert ".".join(map(str, engine.dialect.server_version_info)) == local_version


def test_create_all_is_visible_locally(schema: Engine, local_engine: Engine) -> None:
    assert set(inspect(local_engine).get_table_names()) >= {"authors", "books"}


def test_core_crud_matches_local_engine(schema: Engine, local_engine: Engine) -> None:
    with schema.begin() as connection:
        connection.execute(insert(books), [BOOK])
        connection.execute(update(books).where(books.c.id == 1).values(rating=4.5))
        connection.execute(
            insert(books), [{**BOOK, "id": 2, "title": "Compilers", "author_id": 2}]
        )
        connection.execute(delete(books).where(books.c.id == 2))
        remote_rows = connection.execute(select(books).order_by(books.c.id)).all()

    with local_engine.connect() as connection:
        local_rows = connection.execute(select(books).order_by(books.c.id)).all()

    assert remote_rows == local_rows
    assert remote_rows == [tuple({**BOOK, "rating": 4.5}.values())]


@pytest.mark.parametrize("column", list(BOOK))
def test_typed_value_roundtrips(schema: Engine, local_engine: Engine, column: str) -> None:
    with schema.begin() as connection:
        connection.execute(insert(books), [BOOK])
        remote_value = connection.execute(select(books.c[column])).scalar_one()
    with local_engine.connect() as connection:
        local_value = connection.execute(select(books.c[column])).scalar_one()

    assert remote_value == BOOK[column]
    assert remote_value == local_value


def test_big_integer_written_locally_reads_exactly(schema: Engine, local_engine: Engine) -> None:
    with local_engine.begin() as connection:
        connection.execute(insert(books), [{**BOOK, "isbn": 2**53 + 1}])

    with schema.connect() as connection:
        isbn = connection.execute(select(books.c.isbn)).scalar_one()

    assert isbn == 2**53 + 1


def test_insert_returning_and_inserted_primary_key(schema: Engine) -> None:
    with schema.begin() as connection:
        returned = connection.execute(
            insert(books).returning(books.c.id, books.c.title),
            {**BOOK, "id": None, "title": "First"},
        ).one()
        result = connection.execute(insert(books), {**BOOK, "id": None, "title": "Second"})

    assert returned == (1, "First")
    assert result.inserted_primary_key == (2,)


def test_update_and_delete_returning(schema: Engine) -> None:
    with schema.begin() as connection:
        connection.execute(insert(books), [BOOK])
        updated = connection.execute(
            update(books).values(title="Renamed").returning(books.c.title)
        ).all()
        deleted = connection.execute(delete(books).returning(books.c.id)).all()

    assert updated == [("Renamed",)]
    assert deleted == [(1,)]


def test_executemany_rowcount_and_atomicity(schema: Engine, local_engine: Engine) -> None:
    rows = [{**BOOK, "id": index, "title": f"t{index}"} for index in range(1, 51)]
    with schema.begin() as connection:
        connection.execute(insert(books), rows)
        changed = connection.execute(
            update(books).where(books.c.id == bindparam("book_id")).values(rating=1.0),
            [{"book_id": 1}, {"book_id": 2}],
        )

    with pytest.raises(exc.IntegrityError):
        with schema.begin() as connection:
            connection.execute(insert(books), [{**BOOK, "id": 100}, {**BOOK, "id": 1}])

    with local_engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(books)).scalar_one()

    assert changed.rowcount == 2
    assert count == 50


@pytest.mark.parametrize(
    ("statement", "error_class"),
    [
        ("INSERT INTO authors (id, name) VALUES (3, 'Ada')", exc.IntegrityError),
        ("SELECT nope FROM authors", exc.OperationalError),
    ],
)
def test_errors_wrap_in_sqlalchemy_exceptions(
    schema: Engine, statement: str, error_class: type[exc.DBAPIError]
) -> None:
    with pytest.raises(error_class) as caught:
        with schema.connect() as connection:
            connection.exec_driver_sql(statement)

    assert isinstance(caught.value.orig, dbapi.Error)


def test_begin_nested_in_autocommit_raises(schema: Engine) -> None:
    with schema.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        with pytest.raises(exc.NotSupportedError, match="SAVEPOINT"):
            connection.exec_driver_sql("SAVEPOINT sp")


def test_wrong_secret_raises_clear_error(make_engine: Any) -> None:
    engine = make_engine(secret="wrong")

    with pytest.raises(exc.OperationalError, match="secret") as caught:
        with engine.connect():
            pass

    assert isinstance(caught.value.orig, dbapi.AuthenticationError)


def test_secret_in_connect_args(server: LiveServer) -> None:
    engine = create_engine(server.engine_url(secret=None), connect_args={"secret": "s3cret"})
    try:
        with engine.connect() as connection:
            value = connection.scalar(text("SELECT 42"))
    finally:
        engine.dispose()

    assert value == 42


# -- reflection -------------------------------------------------------------------

REFLECTIONS = ["get_columns", "get_pk_constraint", "get_foreign_keys", "get_indexes",
               "get_unique_constraints", "get_check_constraints", "get_table_options"]


def test_table_names_match_local(schema: Engine, local_engine: Engine) -> None:
    assert inspect(schema).get_table_names() == inspect(local_engine).get_table_names()


@pytest.mark.parametrize("method", REFLECTIONS)
def test_reflection_matches_local(schema: Engine, local_engine: Engine, method: str) -> None:
    remote = getattr(inspect(schema), method)("books")
    local = getattr(inspect(local_engine), method)("books")

    assert repr(remote) == repr(local)


def test_reflection_finds_keys_and_indexes(schema: Engine) -> None:
    inspector = inspect(schema)

    assert inspector.get_pk_constraint("books")["constrained_columns"] == ["id"]
    assert inspector.get_foreign_keys("books")[0]["referred_table"] == "authors"
    assert [index["name"] for index in inspector.get_indexes("books")] == ["ix_books_published"]
    assert inspector.has_table("books")
    assert not inspector.has_table("missing")


def test_autoload_table_reads_rows(schema: Engine) -> None:
    reflected = Table("authors", MetaData(), autoload_with=schema)
    with schema.connect() as connection:
        names = connection.execute(select(reflected.c.name).order_by(reflected.c.id)).scalars().all()

    assert names == ["Ada", "Grace"]


# -- ORM ----------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(unique=True)
    version: Mapped[int] = mapped_column(default=1)
    __mapper_args__ = {"version_id_col": version}


@pytest.fixture
def orm_engine(engine: Engine) -> Engine:
    Base.metadata.create_all(engine)
    return engine


def test_session_commit_and_query(orm_engine: Engine, local_engine: Engine) -> None:
    with Session(orm_engine) as session:
        session.add_all([Note(body="a"), Note(body="b")])
        session.commit()
        note = session.scalars(select(Note).where(Note.body == "b")).one()
        note.body = "B"
        session.commit()

    with Session(local_engine) as session:
        bodies = session.scalars(select(Note.body).order_by(Note.id)).all()
        versions = session.scalars(select(Note.version).order_by(Note.id)).all()

    assert bodies == ["a", "B"]
    assert versions == [1, 2]


def test_session_reads_without_warning(orm_engine: Engine) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Session(orm_engine) as session:
            session.scalars(select(Note)).all()


def test_https_dialect_uses_tls_scheme() -> None:
    dialect = DormHTTPSDialect()
    _, options = dialect.create_connect_args(
        create_engine("dorm+https://db.example.com/acme/api/db").url
    )

    assert options["url"] == "https://db.example.com/acme/api/db"
    assert isinstance(dialect, DormHTTPDialect)


def test_sqlite_upsert_compiles_and_runs(schema: Engine) -> None:
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    statement = sqlite_insert(authors).values(id=1, name="Ada L.")
    statement = statement.on_conflict_do_update(
        index_elements=[authors.c.id], set_={"name": statement.excluded.name}
    )
    with schema.begin() as connection:
        connection.execute(statement)
        name = connection.execute(select(authors.c.name).where(authors.c.id == 1)).scalar_one()

    assert name == "Ada L."


def test_unreachable_server_invalidates_connection() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = create_engine(f"dorm+http://127.0.0.1:{port}/acme/api/db?timeout=2")
    try:
        with pytest.raises(exc.OperationalError) as caught:
            with engine.connect():
                pass
    finally:
        engine.dispose()

    assert isinstance(caught.value.orig, dbapi.NetworkError)
    assert caught.value.connection_invalidated
