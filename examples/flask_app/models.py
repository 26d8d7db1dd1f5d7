"""The notes model and the tenants' schema as numbered SQL migrations."""

from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["MIGRATIONS", "Base", "Note"]


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")


# Applied to each tenant the first time the process opens it. Append versions, never edit one.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        """
        CREATE TABLE notes (
            id INTEGER NOT NULL PRIMARY KEY,
            title VARCHAR(200) NOT NULL,
            body TEXT NOT NULL
        )
        """,
    ],
}
