"""The aggregate check of the Chinook demo.

Every tenant write is mirrored to one aggregate database (SQLite by default,
PostgreSQL with ``--aggregate``), each row tagged with its tenant. After the
import, the demo waits for the mirror and checks that the aggregate's
``Invoice`` table holds, per tenant and in total, exactly the invoice count
and revenue of the source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from sqlalchemy import Numeric, column, create_engine, select, table

from .importer import Country
from .report import ZERO, CountryTotals

__all__ = ["aggregate_totals", "find_aggregate_mismatches"]

_CENT = Decimal("0.01")


def aggregate_totals(url: str, tenants: Sequence[str]) -> dict[str, CountryTotals]:
    """Read invoice count and revenue per tenant from the aggregate's ``Invoice`` table."""
    invoices = table("Invoice", column("tenant"), column("Total", Numeric(10, 2)))
    engine = create_engine(url)
    counts: dict[str, int] = dict.fromkeys(tenants, 0)
    revenue: dict[str, Decimal] = dict.fromkeys(tenants, ZERO)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(invoices.c.tenant, invoices.c.Total).where(invoices.c.tenant.in_(tenants))
            )
            for tenant, total in rows:
                # SQLite keeps the money as REAL: round each value to cents
                # before adding, never SUM() the floats.
                counts[tenant] += 1
                revenue[tenant] += Decimal(str(total)).quantize(_CENT)
    finally:
        engine.dispose()
    return {tenant: CountryTotals(counts[tenant], revenue[tenant]) for tenant in tenants}


def find_aggregate_mismatches(
    found: Mapping[str, CountryTotals],
    countries: Sequence[Country],
    expected: Mapping[str, CountryTotals],
) -> list[str]:
    """Compare the aggregate's per-tenant totals with the source; one message per difference."""
    messages = []
    for country in countries:
        want = expected[country.name]
        got = found.get(country.tenant, CountryTotals(0, ZERO))
        if got.invoices != want.invoices:
            messages.append(
                f"aggregate: {country.name}: {got.invoices} invoices for tenant "
                f"{country.tenant!r}, the source has {want.invoices}"
            )
        if got.revenue != want.revenue:
            messages.append(
                f"aggregate: {country.name}: revenue {got.revenue} for tenant "
                f"{country.tenant!r}, the source has {want.revenue}"
            )
    total = sum(totals.invoices for totals in found.values())
    want_total = sum(expected[c.name].invoices for c in countries)
    if total != want_total:
        messages.append(f"aggregate: {total} invoices in total, the source has {want_total}")
    return messages
