"""Exact decimals in JSON Schema tables: ``"format": "decimal"`` and ``ExactDecimal``."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    Numeric,
    Table,
    create_engine,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError, StatementError

from dorm_sqlalchemy.json_schema import ExactDecimal, json_schema_to_table

BIG = Decimal("12345678901234567.89")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'money.db'}")
    yield engine
    engine.dispose()


def accounts(scale_keyword: dict[str, Any] | None = None) -> dict[str, Any]:
    balance = {"type": "number", "format": "decimal", **(scale_keyword or {})}
    return {
        "$id": "accounts",
        "type": "object",
        "properties": {"id": {"type": "integer", "x-dorm-primary-key": True}, "balance": balance},
    }


def create(engine: Engine, schema: dict[str, Any]) -> Table:
    metadata = MetaData()
    table = json_schema_to_table(schema, metadata)
    metadata.create_all(engine)
    return table


def test_numeric_loses_digits_on_sqlite(engine: Engine) -> None:
    # The problem "format": "decimal" solves: NUMERIC values are stored as REAL.
    metadata = MetaData()
    plain = Table("plain", metadata, Column("amount", Numeric(30, 10)))
    metadata.create_all(engine)

    with engine.begin() as connection:
        connection.execute(plain.insert().values(amount=BIG))
        stored = connection.execute(select(plain.c.amount)).scalar_one()

    assert stored != BIG


@pytest.mark.parametrize(
    "value",
    [
        BIG,
        Decimal("-0.000000000000000000000000000001"),
        Decimal("123456789012345678901234567890.123456789"),
        Decimal("0"),
        Decimal("1E+30"),
    ],
)
def test_decimal_round_trips_exactly(value: Decimal, engine: Engine) -> None:
    table = create(engine, accounts())

    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=value))
        stored = connection.execute(select(table.c.balance)).scalar_one()

    assert stored == value


def test_decimal_scale_fixes_places(engine: Engine) -> None:
    table = create(engine, accounts({"multipleOf": 0.01}))

    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=Decimal("1.5")))
        stored = connection.execute(select(table.c.balance)).scalar_one()
        raw = connection.exec_driver_sql("SELECT balance FROM accounts").scalar_one()

    assert raw == "1.50"
    assert str(stored) == "1.50"


def test_decimal_equality_in_sql(engine: Engine) -> None:
    table = create(engine, accounts())

    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=Decimal("2.50")))
        found = connection.execute(
            select(table.c.id).where(table.c.balance == Decimal("2.5000"))
        ).scalar_one_or_none()

    assert found == 1


def test_decimal_unique_compares_values(engine: Engine) -> None:
    schema = accounts()
    schema["properties"]["balance"]["x-dorm-unique"] = True
    table = create(engine, schema)

    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=Decimal("1.0")))
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(table.insert().values(id=2, balance=Decimal("1.00")))


@pytest.mark.parametrize(
    ("value", "error"),
    [(1.5, TypeError), (Decimal("NaN"), ValueError), ("abc", ValueError), (True, TypeError)],
)
def test_decimal_rejects_inexact_or_invalid_values(
    value: Any, error: type[Exception], engine: Engine
) -> None:
    table = create(engine, accounts())

    with pytest.raises(StatementError) as caught, engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=value))

    assert isinstance(caught.value.orig, error)


def test_decimal_rejects_extra_places(engine: Engine) -> None:
    table = create(engine, accounts({"multipleOf": 0.01}))

    with pytest.raises(StatementError) as caught, engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=Decimal("1.005")))

    assert "more than 2 digits" in str(caught.value.orig)


def test_decimal_accepts_int_and_string(engine: Engine) -> None:
    table = create(engine, accounts())

    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=7))
        connection.execute(table.insert().values(id=2, balance=" 0.10 "))
        stored = connection.execute(select(table.c.balance).order_by(table.c.id)).scalars().all()

    assert stored == [Decimal(7), Decimal("0.1")]


def test_sql_sum_of_decimal_text_is_inexact(engine: Engine) -> None:
    # The documented caveat: SUM() converts the text to REAL.
    table = create(engine, accounts())
    with engine.begin() as connection:
        for position in range(3):
            connection.execute(table.insert().values(id=position, balance=Decimal("0.1")))

        in_sql = connection.execute(select(func.sum(table.c.balance))).scalar_one()
        in_python = sum(connection.execute(select(table.c.balance)).scalars(), Decimal(0))

    assert in_sql != Decimal("0.3")
    assert in_python == Decimal("0.3")


@pytest.mark.parametrize("scale", [-1, 1.5, True, "2"])
def test_exact_decimal_rejects_bad_scale(scale: Any) -> None:
    with pytest.raises(ValueError):
        ExactDecimal(scale)


def test_exact_decimal_in_plain_table(engine: Engine) -> None:
    metadata = MetaData()
    prices = Table(
        "prices", metadata, Column("id", Integer, primary_key=True), Column("p", ExactDecimal(3))
    )
    metadata.create_all(engine)

    with engine.begin() as connection:
        connection.execute(prices.insert().values(id=1, p=Decimal("9.5")))
        stored = connection.execute(select(prices.c.p)).scalar_one()

    assert str(stored) == "9.500"
