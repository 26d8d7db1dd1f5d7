"""The Chinook demo end to end, and the check that compares it with the source file."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / "examples" / "chinook" / "demo.py"

# The example is not part of the installed distribution; import it from the
# repository as the package examples.chinook, as demo.py itself does.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from dorm_sqlalchemy.errors import InvalidTenantName  # noqa: E402
from examples.chinook.demo import check_fan_out  # noqa: E402
from examples.chinook.importer import country_tenant, open_source  # noqa: E402
from examples.chinook.report import (  # noqa: E402
    CountryTotals,
    TenantReport,
    find_mismatches,
    source_totals,
)

COUNTRIES = 24
INVOICES = 412
REVENUE = "2328.60"


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEMO), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def without_timing(summary: str) -> str:
    return re.sub(r"\(\d+\.\d s\)", "", summary)


@pytest.fixture(scope="module")
def expected() -> dict[str, CountryTotals]:
    engine = open_source()
    try:
        with engine.connect() as connection:
            countries = connection.exec_driver_sql(
                "SELECT DISTINCT Country FROM Customer"
            ).scalars().all()
        return source_totals(engine, countries)
    finally:
        engine.dispose()


def reports_from(expected: dict[str, CountryTotals]) -> list[TenantReport]:
    return [
        TenantReport(
            tenant=country_tenant(country),
            country=country,
            customers=1,
            invoices=totals.invoices,
            revenue=totals.revenue,
            size_bytes=0,
            import_seconds=0.0,
        )
        for country, totals in expected.items()
    ]


def test_demo_runs_twice_with_same_result(tmp_path: Path) -> None:
    data = tmp_path / "chinook-data"

    first = run_demo("--data", str(data))
    second = run_demo("--data", str(data))

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    summary = second.stdout.strip().splitlines()[-1]
    assert summary.startswith("OK:"), second.stdout
    assert f"{COUNTRIES} tenants" in summary
    assert f"{INVOICES} invoices" in summary
    assert f"revenue {REVENUE}" in summary
    assert f"fan_out: {INVOICES} invoices across {COUNTRIES} tenants" in second.stdout
    first_summary = first.stdout.strip().splitlines()[-1]
    assert without_timing(summary) == without_timing(first_summary)
    tenant_files = [path for path in data.glob("*.db") if not path.name.startswith("_")]
    assert len(tenant_files) == COUNTRIES
    assert (data / "_aggregate.db").is_file()
    assert re.search(rf"\b{INVOICES}\b.*\b{re.escape(REVENUE)}\b", second.stdout)
    assert re.search(r"\bunited-kingdom\b", second.stdout)


def test_demo_only_quiet(tmp_path: Path) -> None:
    result = run_demo("--data", str(tmp_path / "data"), "--only", "france", "--quiet")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: 1 tenant,"), result.stdout
    assert len(result.stdout.strip().splitlines()) == 1
    assert sorted(path.name for path in (tmp_path / "data").glob("*.db")) == ["_aggregate.db", "france.db"]


def test_demo_unknown_country_exits_2(tmp_path: Path) -> None:
    result = run_demo("--data", str(tmp_path / "data"), "--only", "Atlantis")

    assert result.returncode == 2
    assert "unknown country 'Atlantis'" in result.stderr


@pytest.mark.parametrize(
    ("country", "tenant"),
    [
        ("United Kingdom", "united-kingdom"),
        ("USA", "usa"),
        ("Czech Republic", "czech-republic"),
        ("France", "france"),
    ],
)
def test_country_tenant_slug(country: str, tenant: str) -> None:
    assert country_tenant(country) == tenant


@pytest.mark.parametrize("country", ["Côte d'Ivoire", "St. Lucia", ""])
def test_country_tenant_invalid(country: str) -> None:
    with pytest.raises(InvalidTenantName):
        country_tenant(country)


def test_source_totals_match_chinook(expected: dict[str, CountryTotals]) -> None:
    assert len(expected) == COUNTRIES
    assert sum(totals.invoices for totals in expected.values()) == INVOICES
    assert sum((totals.revenue for totals in expected.values()), Decimal(0)) == Decimal(
        REVENUE
    )


def test_find_mismatches_none(expected: dict[str, CountryTotals]) -> None:
    assert find_mismatches(reports_from(expected), expected) == []


@pytest.mark.parametrize(
    ("country", "change"),
    [
        ("France", {"revenue": Decimal("0.01")}),
        ("USA", {"revenue": Decimal("-1.98")}),
        ("United Kingdom", {"invoices": 1}),
    ],
)
def test_find_mismatches_names_country(
    expected: dict[str, CountryTotals], country: str, change: dict[str, object]
) -> None:
    reports = []
    for report in reports_from(expected):
        if report.country == country:
            ((field, delta),) = change.items()
            report = replace(report, **{field: getattr(report, field) + delta})
        reports.append(report)

    messages = find_mismatches(reports, expected)

    assert any(message.startswith(f"{country}:") for message in messages), messages
    assert any(message.startswith("total:") for message in messages), messages
    assert not any(
        message.split(":")[0] not in (country, "total") for message in messages
    ), messages


def test_find_mismatches_missing_country(expected: dict[str, CountryTotals]) -> None:
    reports = [r for r in reports_from(expected) if r.country != "Brazil"]

    messages = find_mismatches(reports, expected)

    assert "Brazil: no tenant was reported for this country" in messages


def test_check_fan_out_missing_tenant() -> None:
    messages = check_fan_out({"france": 35}, ["france", "usa"], expected=126)

    assert "fan_out: no row from tenant(s) usa" in messages
    assert "fan_out: the tenants have 35 invoices, the source has 126" in messages


def test_aggregate_mismatch_names_country() -> None:
    from examples.chinook.aggregate import find_aggregate_mismatches
    from examples.chinook.importer import Country
    from examples.chinook.report import CountryTotals

    countries = [Country("France", "france"), Country("USA", "usa")]
    expected = {
        "France": CountryTotals(35, Decimal("195.10")),
        "USA": CountryTotals(91, Decimal("523.06")),
    }
    found = {
        "france": CountryTotals(35, Decimal("195.10")),
        "usa": CountryTotals(90, Decimal("522.07")),
    }

    messages = find_aggregate_mismatches(found, countries, expected)

    assert any("USA" in message and "90 invoices" in message for message in messages)
    assert any("USA" in message and "522.07" in message for message in messages)
    assert any("total" in message for message in messages)
    assert not any("France" in message for message in messages)


def test_demo_mirrors_to_postgres(tmp_path: Path, postgres_url: str) -> None:
    completed = run_demo("--data", str(tmp_path / "data"), "--aggregate", postgres_url, "--quiet")

    assert completed.returncode == 0, completed.stderr
    assert "in the aggregate" in completed.stdout
