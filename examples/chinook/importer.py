"""Read the Chinook source file and import each country into its own tenant.

A country's tenant contains its customers, their invoices and invoice lines,
and only the catalog rows those lines reference: tracks, their albums,
artists, genres and media types. It also contains the employees its customers
have as support rep, plus every manager above them, so both foreign keys into
``Employee`` are satisfied.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import URL, Engine, create_engine, inspect, select

from dorm_sqlalchemy.naming import canonical_tenant

from .models import (
    Album,
    Artist,
    Base,
    Customer,
    Employee,
    Genre,
    Invoice,
    InvoiceLine,
    MediaType,
    Track,
)

if TYPE_CHECKING:
    from dorm_sqlalchemy import Dorm

__all__ = [
    "SOURCE_PATH",
    "Country",
    "SourceData",
    "open_source",
    "load_source",
    "country_tenant",
    "list_countries",
    "rows_for_country",
    "build_objects",
    "import_country",
]

SOURCE_PATH = Path(__file__).resolve().with_name("chinook.sqlite")

Row = dict[str, Any]

# Parents before children, which is also the order the rows are added in.
MODELS: tuple[type[Base], ...] = (
    Artist,
    Album,
    Genre,
    MediaType,
    Track,
    Employee,
    Customer,
    Invoice,
    InvoiceLine,
)


@dataclass(frozen=True)
class Country:
    """A customer country and the tenant that contains its data."""

    name: str
    tenant: str


@dataclass(frozen=True)
class SourceData:
    """Every row of the imported Chinook tables, by model and primary key.

    Rows are keyed by attribute name (``track_id``), so ``Track(**row)`` builds
    an object, and money is already ``Decimal``.
    """

    rows: dict[type[Base], dict[int, Row]]

    def rows_with_keys(
        self, model: type[Base], keys: Iterable[int | None]
    ) -> list[Row]:
        """Return the rows of ``model`` with the given primary keys, in key order."""
        table = self.rows[model]
        return [table[key] for key in sorted({k for k in keys if k is not None})]


def open_source(path: Path = SOURCE_PATH) -> Engine:
    """Create an engine that opens the Chinook file at ``path`` read-only."""
    if not path.is_file():
        raise FileNotFoundError(
            f"Chinook source database not found at {path}: restore "
            "examples/chinook/chinook.sqlite from the repository"
        )

    # A file: URI with mode=ro makes SQLite itself reject writes, and
    # Path.as_uri() percent-encodes characters such as '?' and '#'.
    url = URL.create(
        "sqlite", database=path.as_uri(), query={"mode": "ro", "uri": "true"}
    )
    return create_engine(url)


def load_source(engine: Engine) -> SourceData:
    """Read every row of the tables in :data:`MODELS` into memory.

    Chinook is small (about 5,000 rows here), so one read serves all tenants.
    """
    rows: dict[type[Base], dict[int, Row]] = {}
    with engine.connect() as connection:
        for model in MODELS:
            mapper = inspect(model)
            (key_column,) = mapper.primary_key
            key_name = mapper.get_property_by_column(key_column).key

            # Label each column with its attribute name: "TrackId" -> track_id.
            query = select(
                *(attr.columns[0].label(attr.key) for attr in mapper.column_attrs)
            )
            rows[model] = {
                row[key_name]: dict(row) for row in connection.execute(query).mappings()
            }
    return SourceData(rows)


def country_tenant(country: str) -> str:
    """Return the tenant name for ``country``: "United Kingdom" -> "united-kingdom".

    Raises :class:`dorm_sqlalchemy.errors.InvalidTenantName` when the slug
    breaks the tenant naming rule, for example because it has non-ASCII
    letters.
    """
    return canonical_tenant(_slug(country))


def _slug(text: str) -> str:
    return text.strip().lower().replace(" ", "-")


def list_countries(source: SourceData, only: Sequence[str] = ()) -> list[Country]:
    """Return the customer countries, or those named in ``only``, by tenant name.

    ``only`` matches a country name or its tenant name, ignoring case.
    Raises ``ValueError`` when an entry of ``only`` matches no country, or
    when two countries map to the same tenant.
    """
    names = {row["country"] for row in source.rows[Customer].values()}
    countries = sorted(
        (Country(name, country_tenant(name)) for name in names),
        key=lambda country: country.tenant,
    )

    by_tenant: dict[str, Country] = {}
    for country in countries:
        clash = by_tenant.setdefault(country.tenant, country)
        if clash is not country:
            raise ValueError(
                f"countries {clash.name!r} and {country.name!r} both map to "
                f"tenant {country.tenant!r}: change country_tenant() so that "
                "tenant names stay distinct"
            )

    if not only:
        return countries
    selected = []
    for entry in only:
        match = by_tenant.get(_slug(entry))
        if match is None:
            raise ValueError(
                f"unknown country {entry!r}: use one of "
                + ", ".join(country.name for country in countries)
            )
        if match not in selected:
            selected.append(match)
    return sorted(selected, key=lambda country: country.tenant)


def rows_for_country(source: SourceData, country: str) -> dict[type[Base], list[Row]]:
    """Select the rows a country's tenant contains, by model, parents first."""
    customers = [
        row for row in source.rows[Customer].values() if row["country"] == country
    ]
    customer_ids = {row["customer_id"] for row in customers}
    invoices = [
        row
        for row in source.rows[Invoice].values()
        if row["customer_id"] in customer_ids
    ]
    invoice_ids = {row["invoice_id"] for row in invoices}
    lines = [
        row
        for row in source.rows[InvoiceLine].values()
        if row["invoice_id"] in invoice_ids
    ]

    tracks = source.rows_with_keys(Track, (row["track_id"] for row in lines))
    albums = source.rows_with_keys(Album, (row["album_id"] for row in tracks))
    employee_ids = _with_managers(
        source.rows[Employee], (row["support_rep_id"] for row in customers)
    )

    selection = {
        Artist: source.rows_with_keys(Artist, (row["artist_id"] for row in albums)),
        Album: albums,
        Genre: source.rows_with_keys(Genre, (row["genre_id"] for row in tracks)),
        MediaType: source.rows_with_keys(
            MediaType, (row["media_type_id"] for row in tracks)
        ),
        Track: tracks,
        Employee: source.rows_with_keys(Employee, employee_ids),
        Customer: customers,
        Invoice: invoices,
        InvoiceLine: lines,
    }
    return {model: selection[model] for model in MODELS}


def _with_managers(employees: dict[int, Row], ids: Iterable[int | None]) -> set[int]:
    """Return ``ids`` plus every employee they report to, directly or not."""
    found: set[int] = set()
    pending = [employee_id for employee_id in ids if employee_id is not None]
    while pending:
        employee_id = pending.pop()
        if employee_id in found:
            continue
        found.add(employee_id)
        manager_id = employees[employee_id]["reports_to"]
        if manager_id is not None:
            pending.append(manager_id)
    return found


def build_objects(selection: dict[type[Base], list[Row]]) -> list[Base]:
    """Build new ORM objects for one tenant from the selected rows."""
    objects: list[Base] = []
    employees: dict[int, Employee] = {}
    for model, rows in selection.items():
        for row in rows:
            obj = model(**row)
            objects.append(obj)
            if isinstance(obj, Employee):
                employees[obj.employee_id] = obj

    # The unit of work orders rows of one table by their relationships, not by
    # plain foreign key values, so link each employee to its manager object.
    for employee in employees.values():
        if employee.reports_to is not None:
            employee.manager = employees[employee.reports_to]
    return objects


def import_country(dorm: Dorm, country: Country, source: SourceData) -> float:
    """Create ``country``'s tenant, fill it, and return the seconds it took.

    The tenant must not exist yet: drop it first to import again.
    """
    started = time.perf_counter()
    objects = build_objects(rows_for_country(source, country.name))

    dorm.create(country.tenant)
    Base.metadata.create_all(dorm.engine(country.tenant))
    with dorm.session(country.tenant) as session, session.begin():
        session.add_all(objects)

    return time.perf_counter() - started
