"""ORM models of the Chinook tables that a country's tenant contains.

Table and column names are Chinook's own (``Invoice.InvoiceId``), so the same
tables describe the source file and every tenant file. Python attributes are
snake_case: the importer reads each source row into a dict keyed by attribute
name and writes ``Track(**row)`` to a tenant.

Playlists are left out because no customer references them.
``Customer.SupportRepId`` keeps its foreign key to ``Employee``: a tenant contains
the employees its customers reference, plus the managers they report to, so
``Employee.ReportsTo`` can keep its foreign key as well.

Money columns are ``Numeric(10, 2)``. SQLite has no decimal type and stores
them as REAL, so SQLAlchemy binds a ``Decimal`` as a float and, when reading,
rounds the float to 2 places and returns a ``Decimal``. Each value is then
exact in Python, but a sum is exact only when done in Python: SQL ``SUM()``
over REAL adds binary floats and returns 2328.600000000004 for Chinook's
invoice totals.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, MetaData, Numeric, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "NAMING_CONVENTION",
    "Base",
    "Artist",
    "Album",
    "Genre",
    "MediaType",
    "Track",
    "Employee",
    "Customer",
    "Invoice",
    "InvoiceLine",
]

# Named constraints let a later Alembic batch migration drop and recreate
# them on SQLite, which cannot ALTER a constraint in place.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {Decimal: Numeric(10, 2, asdecimal=True)}


class Artist(Base):
    __tablename__ = "Artist"

    artist_id: Mapped[int] = mapped_column("ArtistId", primary_key=True)
    name: Mapped[str | None] = mapped_column("Name", String(120))

    albums: Mapped[list[Album]] = relationship(back_populates="artist")


class Album(Base):
    __tablename__ = "Album"

    album_id: Mapped[int] = mapped_column("AlbumId", primary_key=True)
    title: Mapped[str] = mapped_column("Title", String(160))
    artist_id: Mapped[int] = mapped_column(
        "ArtistId", ForeignKey("Artist.ArtistId"), index=True
    )

    artist: Mapped[Artist] = relationship(back_populates="albums")
    tracks: Mapped[list[Track]] = relationship(back_populates="album")


class Genre(Base):
    __tablename__ = "Genre"

    genre_id: Mapped[int] = mapped_column("GenreId", primary_key=True)
    name: Mapped[str | None] = mapped_column("Name", String(120))


class MediaType(Base):
    __tablename__ = "MediaType"

    media_type_id: Mapped[int] = mapped_column("MediaTypeId", primary_key=True)
    name: Mapped[str | None] = mapped_column("Name", String(120))


class Track(Base):
    __tablename__ = "Track"

    track_id: Mapped[int] = mapped_column("TrackId", primary_key=True)
    name: Mapped[str] = mapped_column("Name", String(200))
    album_id: Mapped[int | None] = mapped_column(
        "AlbumId", ForeignKey("Album.AlbumId"), index=True
    )
    media_type_id: Mapped[int] = mapped_column(
        "MediaTypeId", ForeignKey("MediaType.MediaTypeId"), index=True
    )
    genre_id: Mapped[int | None] = mapped_column(
        "GenreId", ForeignKey("Genre.GenreId"), index=True
    )
    composer: Mapped[str | None] = mapped_column("Composer", String(220))
    milliseconds: Mapped[int] = mapped_column("Milliseconds")
    bytes: Mapped[int | None] = mapped_column("Bytes")
    unit_price: Mapped[Decimal] = mapped_column("UnitPrice")

    album: Mapped[Album | None] = relationship(back_populates="tracks")
    genre: Mapped[Genre | None] = relationship()
    media_type: Mapped[MediaType] = relationship()


class Employee(Base):
    __tablename__ = "Employee"

    employee_id: Mapped[int] = mapped_column("EmployeeId", primary_key=True)
    last_name: Mapped[str] = mapped_column("LastName", String(20))
    first_name: Mapped[str] = mapped_column("FirstName", String(20))
    title: Mapped[str | None] = mapped_column("Title", String(30))
    reports_to: Mapped[int | None] = mapped_column(
        "ReportsTo", ForeignKey("Employee.EmployeeId"), index=True
    )
    birth_date: Mapped[datetime.datetime | None] = mapped_column("BirthDate")
    hire_date: Mapped[datetime.datetime | None] = mapped_column("HireDate")
    address: Mapped[str | None] = mapped_column("Address", String(70))
    city: Mapped[str | None] = mapped_column("City", String(40))
    state: Mapped[str | None] = mapped_column("State", String(40))
    country: Mapped[str | None] = mapped_column("Country", String(40))
    postal_code: Mapped[str | None] = mapped_column("PostalCode", String(10))
    phone: Mapped[str | None] = mapped_column("Phone", String(24))
    fax: Mapped[str | None] = mapped_column("Fax", String(24))
    email: Mapped[str | None] = mapped_column("Email", String(60))

    manager: Mapped[Employee | None] = relationship(remote_side=[employee_id])


class Customer(Base):
    __tablename__ = "Customer"

    customer_id: Mapped[int] = mapped_column("CustomerId", primary_key=True)
    first_name: Mapped[str] = mapped_column("FirstName", String(40))
    last_name: Mapped[str] = mapped_column("LastName", String(20))
    company: Mapped[str | None] = mapped_column("Company", String(80))
    address: Mapped[str | None] = mapped_column("Address", String(70))
    city: Mapped[str | None] = mapped_column("City", String(40))
    state: Mapped[str | None] = mapped_column("State", String(40))
    country: Mapped[str | None] = mapped_column("Country", String(40))
    postal_code: Mapped[str | None] = mapped_column("PostalCode", String(10))
    phone: Mapped[str | None] = mapped_column("Phone", String(24))
    fax: Mapped[str | None] = mapped_column("Fax", String(24))
    email: Mapped[str] = mapped_column("Email", String(60))
    support_rep_id: Mapped[int | None] = mapped_column(
        "SupportRepId", ForeignKey("Employee.EmployeeId"), index=True
    )

    support_rep: Mapped[Employee | None] = relationship()
    invoices: Mapped[list[Invoice]] = relationship(back_populates="customer")


class Invoice(Base):
    __tablename__ = "Invoice"
    __table_args__ = (CheckConstraint('"Total" >= 0', name="total_not_negative"),)

    invoice_id: Mapped[int] = mapped_column("InvoiceId", primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        "CustomerId", ForeignKey("Customer.CustomerId"), index=True
    )
    invoice_date: Mapped[datetime.datetime] = mapped_column("InvoiceDate")
    billing_address: Mapped[str | None] = mapped_column("BillingAddress", String(70))
    billing_city: Mapped[str | None] = mapped_column("BillingCity", String(40))
    billing_state: Mapped[str | None] = mapped_column("BillingState", String(40))
    billing_country: Mapped[str | None] = mapped_column("BillingCountry", String(40))
    billing_postal_code: Mapped[str | None] = mapped_column(
        "BillingPostalCode", String(10)
    )
    total: Mapped[Decimal] = mapped_column("Total")

    customer: Mapped[Customer] = relationship(back_populates="invoices")
    lines: Mapped[list[InvoiceLine]] = relationship(back_populates="invoice")


class InvoiceLine(Base):
    __tablename__ = "InvoiceLine"
    __table_args__ = (CheckConstraint('"Quantity" > 0', name="quantity_positive"),)

    invoice_line_id: Mapped[int] = mapped_column("InvoiceLineId", primary_key=True)
    invoice_id: Mapped[int] = mapped_column(
        "InvoiceId", ForeignKey("Invoice.InvoiceId"), index=True
    )
    track_id: Mapped[int] = mapped_column(
        "TrackId", ForeignKey("Track.TrackId"), index=True
    )
    unit_price: Mapped[Decimal] = mapped_column("UnitPrice")
    quantity: Mapped[int] = mapped_column("Quantity")

    invoice: Mapped[Invoice] = relationship(back_populates="lines")
    track: Mapped[Track] = relationship()
