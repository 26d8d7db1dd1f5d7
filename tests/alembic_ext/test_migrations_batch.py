"""Batch mode: revisions that rebuild tables reach the schema of create_all() and keep child rows."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import (
    CheckConstraint,
    Column,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    UniqueConstraint,
    inspect,
)

from alembic_ext import NAMING_CONVENTION, make_migrator
from dorm_sqlalchemy.errors import MigrationError

# The models at head.
metadata = MetaData(naming_convention=NAMING_CONVENTION)
Table(
    "authors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("email", String(200)),
    UniqueConstraint("email"),
    CheckConstraint("length(name) > 0", name="name_not_empty"),
)
Table(
    "books",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("author_id", Integer, ForeignKey("authors.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(200), nullable=False, index=True),
    Column("price", Numeric(10, 2)),
    CheckConstraint("price >= 0", name="price_not_negative"),
)

R1_CREATE = """
op.create_table(
    "authors",
    sa.Column("id", sa.Integer, nullable=False),
    sa.Column("name", sa.String(100), nullable=True),
    sa.PrimaryKeyConstraint("id", name="pk_authors"),
)
op.create_table(
    "books",
    sa.Column("id", sa.Integer, nullable=False),
    sa.Column("author_id", sa.Integer, nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.ForeignKeyConstraint(
        ["author_id"], ["authors.id"], name="fk_books_author_id_authors", ondelete="CASCADE"
    ),
    sa.PrimaryKeyConstraint("id", name="pk_books"),
)
op.execute("INSERT INTO authors (id, name) VALUES (1, 'Ann')")
op.execute("INSERT INTO books (id, author_id, title) VALUES (1, 1, 'First')")
op.execute("INSERT INTO books (id, author_id, title) VALUES (2, 1, 'Second')")
"""

# Rebuilds the parent table authors, whose children cascade on delete.
R2_AUTHORS = """
with op.batch_alter_table("authors") as batch_op:
    batch_op.alter_column("name", existing_type=sa.String(100), nullable=False)
    batch_op.add_column(sa.Column("email", sa.String(200)))
    batch_op.create_unique_constraint("uq_authors_email", ["email"])
    batch_op.create_check_constraint("ck_authors_name_not_empty", "length(name) > 0")
"""

R3_BOOKS = """
with op.batch_alter_table("books") as batch_op:
    batch_op.add_column(sa.Column("price", sa.Numeric(10, 2)))
    batch_op.create_check_constraint("ck_books_price_not_negative", "price >= 0")
    batch_op.create_index("ix_books_title", ["title"])
"""


def normalise_sql(text: str) -> str:
    return " ".join(text.replace("(", " ( ").replace(")", " ) ").split())


def describe_schema(engine: Engine) -> dict[str, Any]:
    """Return every table's columns and constraints as SQLAlchemy reflects them."""
    inspector = inspect(engine)
    schema: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        if table == "alembic_version":
            continue
        schema[table] = {
            "columns": [
                (column["name"], str(column["type"]), column["nullable"], column["default"])
                for column in inspector.get_columns(table)
            ],
            "primary key": inspector.get_pk_constraint(table),
            "foreign keys": sorted(
                (
                    fk["name"],
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    tuple(sorted(fk["options"].items())),
                )
                for fk in inspector.get_foreign_keys(table)
            ),
            "checks": sorted(
                (check["name"], normalise_sql(check["sqltext"]))
                for check in inspector.get_check_constraints(table)
            ),
            "uniques": sorted(
                (unique["name"], tuple(unique["column_names"]))
                for unique in inspector.get_unique_constraints(table)
            ),
            "indexes": sorted(
                (index["name"], tuple(index["column_names"]), bool(index["unique"]))
                for index in inspector.get_indexes(table)
            ),
        }
    return schema


@pytest.fixture
def batch_scripts(scripts):
    scripts.add("r1", None, R1_CREATE)
    scripts.add("r2", "r1", R2_AUTHORS)
    scripts.add("r3", "r2", R3_BOOKS)
    return scripts


def test_batch_upgrade_equals_create_all(batch_scripts, make_engine):
    migrated = make_engine("acme")
    reference = make_engine("reference")
    metadata.create_all(reference)

    make_migrator(batch_scripts.directory).upgrade("acme", migrated)
    migrated_schema = describe_schema(migrated)
    reference_schema = describe_schema(reference)

    assert set(migrated_schema) == {"authors", "books"}
    for table in reference_schema:
        for aspect in reference_schema[table]:
            assert migrated_schema[table][aspect] == reference_schema[table][aspect], (
                table,
                aspect,
            )


def test_batch_schema_keeps_named_checks(batch_scripts, make_engine):
    engine = make_engine("acme")

    make_migrator(batch_scripts.directory).upgrade("acme", engine)
    checks = {
        table: [check["name"] for check in inspect(engine).get_check_constraints(table)]
        for table in ("authors", "books")
    }

    assert checks == {
        "authors": ["ck_authors_name_not_empty"],
        "books": ["ck_books_price_not_negative"],
    }


def test_rebuilt_parent_keeps_child_rows(batch_scripts, make_engine):
    engine = make_engine("acme")

    make_migrator(batch_scripts.directory).upgrade("acme", engine)

    with engine.connect() as connection:
        books = connection.exec_driver_sql("SELECT id, author_id FROM books ORDER BY id").all()
        references = connection.exec_driver_sql("PRAGMA foreign_key_list(books)").all()
    assert [tuple(row) for row in books] == [(1, 1), (2, 1)]
    assert [row[2] for row in references] == ["authors"]


def test_foreign_keys_on_again_after_upgrade(batch_scripts, make_engine):
    engine = make_engine("acme")

    make_migrator(batch_scripts.directory).upgrade("acme", engine)

    with engine.begin() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        connection.exec_driver_sql("DELETE FROM authors WHERE id = 1")
        remaining = connection.exec_driver_sql("SELECT count(*) FROM books").scalar()
    assert remaining == 0


def test_orphan_rows_roll_upgrade_back(scripts, make_engine):
    scripts.add("r1", None, R1_CREATE)
    # With foreign keys off the cascade does not fire, so this orphans both books.
    scripts.add("r2", "r1", 'op.execute("DELETE FROM authors WHERE id = 1")')
    engine = make_engine("acme")
    migrator = make_migrator(scripts.directory)

    with pytest.raises(MigrationError) as caught:
        migrator.upgrade("acme", engine)

    assert caught.value.tenant == "acme"
    assert "foreign key" in str(caught.value)
    assert "books" in str(caught.value)
    assert migrator.current("acme", engine) is None
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
