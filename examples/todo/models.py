"""The todo schema: the tenants' migrations, their ORM model and the aggregate's copy of the table.

Each tenant is brought to the highest migration version the first time the
process opens it. To change the schema, append a version and never edit a
released one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["MIGRATIONS", "TITLE_MAX_LENGTH", "Base", "Todo", "aggregate_todos"]

TITLE_MAX_LENGTH = 200

MIGRATIONS: dict[int, list[str]] = {
    1: [
        f"""
        CREATE TABLE todos (
            id INTEGER NOT NULL PRIMARY KEY,
            title VARCHAR({TITLE_MAX_LENGTH}) NOT NULL,
            done BOOLEAN NOT NULL DEFAULT 0,
            created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
        )
        """,
    ],
}


class Base(DeclarativeBase):
    pass


class Todo(Base):
    """One item of a tenant's todo list."""

    __tablename__ = "todos"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(TITLE_MAX_LENGTH))
    done: Mapped[bool] = mapped_column(default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())


# The mirror creates this table in the aggregate database on the first write:
# the tenants' columns plus ``tenant``, keyed by (tenant, id).
aggregate_todos = Table(
    "todos",
    MetaData(),
    Column("tenant", String, primary_key=True),
    Column("id", Integer, primary_key=True),
    Column("title", String),
    Column("done", Boolean),
    Column("created_at", DateTime),
)
