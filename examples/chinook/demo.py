"""Import Chinook into one tenant per customer country, report, and check.

    python3 scripts/dev.py demo [--data DIR] [--only COUNTRY ...] [--quiet]

The demo drops the tenants it is about to import, so every run starts from
empty tenants and gives the same result. It exits with status 0 when every
tenant's invoice count and revenue match the source file, 1 when any differs
(each difference names its country on stderr), and 2 on invalid arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

# Running this file as a script puts only examples/chinook on sys.path, so add
# the repository root to import the example as the package examples.chinook.
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from rich.console import Console  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from dorm_sqlalchemy import Dorm  # noqa: E402
from examples.chinook.aggregate import (  # noqa: E402
    aggregate_totals,
    find_aggregate_mismatches,
)
from examples.chinook.importer import (  # noqa: E402
    SOURCE_PATH,
    Country,
    SourceData,
    import_country,
    list_countries,
    load_source,
    open_source,
)
from examples.chinook.models import Invoice  # noqa: E402
from examples.chinook.report import (  # noqa: E402
    ZERO,
    TenantReport,
    find_mismatches,
    read_tenant_report,
    render_table,
    source_totals,
)

__all__ = [
    "main",
    "parse_args",
    "import_tenants",
    "report_tenants",
    "count_invoices",
    "check_fan_out",
]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line of the demo."""
    parser = argparse.ArgumentParser(
        prog="demo.py",
        description="Import the Chinook sample into one SQLite tenant per "
        "customer country, print a per-tenant report, and check it against "
        "the source file.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("chinook-data"),
        metavar="DIR",
        help="directory of the tenant databases, created if missing; the "
        "demo drops and recreates its tenants there (default: ./chinook-data)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="COUNTRY",
        help="import only this country, given by name or tenant name in any "
        "case; repeat the option for several countries (default: all 24)",
    )
    parser.add_argument(
        "--aggregate",
        metavar="URL",
        default=None,
        help="database URL of the aggregate that mirrors every tenant write, "
        "for example postgresql+psycopg://user@127.0.0.1/chinook "
        "(default: sqlite:///DIR/_aggregate.db)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print only the summary line and errors",
    )
    return parser.parse_args(argv)


def import_tenants(
    dorm: Dorm, countries: Sequence[Country], source: SourceData
) -> dict[str, float]:
    """Drop and import each country's tenant; return the import seconds by tenant."""
    for country in countries:
        dorm.drop(country.tenant, missing_ok=True)

    return {
        country.tenant: import_country(dorm, country, source) for country in countries
    }


def report_tenants(
    dorm: Dorm, countries: Sequence[Country], import_seconds: dict[str, float]
) -> list[TenantReport]:
    """Read the report of each country's tenant through routed sessions."""
    # The drop-in path: one session factory whose sessions follow the
    # current tenant, as an existing SQLAlchemy application would use it.
    Session = dorm.sessionmaker()
    return [
        read_tenant_report(dorm, Session, country, import_seconds[country.tenant])
        for country in countries
    ]


def count_invoices(dorm: Dorm, tenants: Sequence[str]) -> dict[str, int]:
    """Count the invoices of every tenant with one cross-tenant ``fan_out`` read."""
    rows = dorm.fan_out(select(func.count()).select_from(Invoice), tenants=tenants)
    return {row.tenant: row[1] for row in rows}


def check_fan_out(
    counts: dict[str, int], tenants: Sequence[str], expected: int
) -> list[str]:
    """Compare the ``fan_out`` counts with the tenants read and the source total."""
    messages = []
    missing = sorted(set(tenants) - counts.keys())
    if missing:
        messages.append(f"fan_out: no row from tenant(s) {', '.join(missing)}")
    total = sum(counts.values())
    if total != expected:
        messages.append(
            f"fan_out: the tenants have {total} invoices, the source has {expected}"
        )
    return messages


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo and return its exit status."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    console = Console(quiet=args.quiet)
    started = time.perf_counter()

    # Read the source once, read-only, and close it before importing.
    engine = open_source()
    try:
        source = load_source(engine)
        try:
            countries = list_countries(source, args.only)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        expected = source_totals(engine, [country.name for country in countries])
    finally:
        engine.dispose()

    tenants = [country.tenant for country in countries]
    args.data.mkdir(parents=True, exist_ok=True)
    # Names starting with "_" are never tenants, so the aggregate can share
    # the tenants' directory.
    aggregate_url = args.aggregate or f"sqlite:///{args.data.resolve()}/_aggregate.db"
    with Dorm(root=str(args.data), mirror=aggregate_url) as dorm:
        import_seconds = import_tenants(dorm, countries, source)
        dorm.mirror.flush(timeout=120)
    aggregate = aggregate_totals(aggregate_url, tenants)

    # Closing the last connection to a tenant checkpoints its WAL into the
    # database file, so a second registry reports the file sizes that stay on disk.
    with Dorm(root=str(args.data)) as dorm:
        reports = report_tenants(dorm, countries, import_seconds)
        counts = count_invoices(dorm, tenants)
    console.print(render_table(reports))

    expected_invoices = sum(totals.invoices for totals in expected.values())
    console.print(
        f"fan_out: {sum(counts.values())} invoices across {len(counts)} tenants"
    )
    console.print(
        f"aggregate: {sum(t.invoices for t in aggregate.values())} invoices, revenue "
        f"{sum((t.revenue for t in aggregate.values()), ZERO)} in {_safe_url(aggregate_url)}"
    )
    mismatches = find_mismatches(reports, expected)
    mismatches += check_fan_out(counts, tenants, expected_invoices)
    mismatches += find_aggregate_mismatches(aggregate, countries, expected)
    if mismatches:
        for message in mismatches:
            print(f"mismatch: {message}", file=sys.stderr)
        print(
            f"check failed: {len(mismatches)} difference(s) between the tenants "
            f"in {args.data} and {SOURCE_PATH.name}",
            file=sys.stderr,
        )
        return 1

    revenue = sum((totals.revenue for totals in expected.values()), ZERO)
    print(
        f"OK: {len(reports)} tenant{'' if len(reports) == 1 else 's'}, "
        f"{expected_invoices} invoices, revenue "
        f"{revenue} match {SOURCE_PATH.name} per country and in total, "
        "in the tenants and in the aggregate "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
