"""Per-tenant report of the Chinook demo, and its check against the source file.

Revenue is summed in Python over ``Decimal`` values, never with SQL
``SUM()``: SQLite stores Chinook's NUMERIC money as REAL, and ``SUM()`` over
REAL adds binary floats (2328.600000000004 for all invoices). The
``Numeric(10, 2)`` columns of the models round each value to 2 places as it
is read, so the Python sum is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from rich.table import Table
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from .importer import Country
from .models import Customer, Invoice

if TYPE_CHECKING:
    from dorm_sqlalchemy import Dorm

__all__ = [
    "CountryTotals",
    "TenantReport",
    "source_totals",
    "read_tenant_report",
    "find_mismatches",
    "render_table",
]

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class CountryTotals:
    """Invoice count and revenue of one country."""

    invoices: int
    revenue: Decimal


@dataclass(frozen=True)
class TenantReport:
    """Counts, revenue, file size and import time of one tenant."""

    tenant: str
    country: str
    customers: int
    invoices: int
    revenue: Decimal
    size_bytes: int
    import_seconds: float


def source_totals(engine: Engine, countries: Iterable[str]) -> dict[str, CountryTotals]:
    """Read invoice count and revenue per customer country from the source file."""
    selected = set(countries)
    invoices = {country: 0 for country in selected}
    revenue = {country: ZERO for country in selected}

    query = select(Customer.country, Invoice.total).join(Invoice.customer)
    with engine.connect() as connection:
        for country, total in connection.execute(query):
            if country in selected:
                invoices[country] += 1
                revenue[country] += total

    return {
        country: CountryTotals(invoices[country], revenue[country])
        for country in sorted(selected)
    }


def read_tenant_report(
    dorm: Dorm,
    session_factory: Callable[[], Session],
    country: Country,
    import_seconds: float,
) -> TenantReport:
    """Count a tenant's customers, invoices and revenue through a routed session.

    ``session_factory`` comes from ``dorm.sessionmaker()``: its sessions go to
    whichever tenant ``dorm.tenant()`` has made current.
    """
    with dorm.tenant(country.tenant):
        with session_factory() as session:
            customers = session.scalar(select(func.count()).select_from(Customer))
            invoices = session.scalar(select(func.count()).select_from(Invoice))
            revenue = sum(session.scalars(select(Invoice.total)), ZERO)

    return TenantReport(
        tenant=country.tenant,
        country=country.name,
        customers=customers or 0,
        invoices=invoices or 0,
        revenue=revenue,
        size_bytes=dorm.size(country.tenant),
        import_seconds=import_seconds,
    )


def find_mismatches(
    reports: Sequence[TenantReport], expected: Mapping[str, CountryTotals]
) -> list[str]:
    """Compare tenant reports with the source totals; return one message per difference.

    Each message names the country. An empty list means every country and the
    total match exactly.
    """
    messages: list[str] = []
    reported = {report.country: report for report in reports}

    for country, totals in expected.items():
        report = reported.get(country)
        if report is None:
            messages.append(f"{country}: no tenant was reported for this country")
            continue
        if report.invoices != totals.invoices:
            messages.append(
                f"{country}: tenant {report.tenant!r} has {report.invoices} "
                f"invoices, the source has {totals.invoices}"
            )
        if report.revenue != totals.revenue:
            messages.append(
                f"{country}: tenant {report.tenant!r} has revenue {report.revenue}, "
                f"the source has {totals.revenue}"
            )

    for country in reported.keys() - expected.keys():
        messages.append(f"{country}: reported, but the source has no such country")

    invoices = sum(report.invoices for report in reports)
    expected_invoices = sum(totals.invoices for totals in expected.values())
    if invoices != expected_invoices:
        messages.append(
            f"total: the tenants have {invoices} invoices, "
            f"the source has {expected_invoices}"
        )
    revenue = sum((report.revenue for report in reports), ZERO)
    expected_revenue = sum((totals.revenue for totals in expected.values()), ZERO)
    if revenue != expected_revenue:
        messages.append(
            f"total: the tenants have revenue {revenue}, "
            f"the source has {expected_revenue}"
        )
    return messages


def render_table(reports: Sequence[TenantReport]) -> Table:
    """Lay out the reports as a table, one row per tenant and a total footer."""
    customers = sum(report.customers for report in reports)
    invoices = sum(report.invoices for report in reports)
    revenue = sum((report.revenue for report in reports), ZERO)
    size_kib = sum(report.size_bytes for report in reports) / 1024
    seconds = sum(report.import_seconds for report in reports)
    tenants = f"{len(reports)} tenant{'' if len(reports) == 1 else 's'}"

    table = Table(title="Chinook, one tenant per country", show_footer=True)
    table.add_column("Tenant", footer=tenants)
    table.add_column("Customers", justify="right", footer=str(customers))
    table.add_column("Invoices", justify="right", footer=str(invoices))
    table.add_column("Revenue", justify="right", footer=str(revenue))
    table.add_column("Size KiB", justify="right", footer=f"{size_kib:,.0f}")
    table.add_column("Import ms", justify="right", footer=f"{seconds * 1000:,.0f}")

    for report in reports:
        table.add_row(
            report.tenant,
            str(report.customers),
            str(report.invoices),
            str(report.revenue),
            f"{report.size_bytes / 1024:,.0f}",
            f"{report.import_seconds * 1000:,.0f}",
        )
    return table
