"""``ExactDecimal``: a column type that keeps every digit of a ``Decimal`` on SQLite.

SQLite has no decimal storage class. A ``NUMERIC`` column stores
``Decimal("12345678901234567.89")`` as the REAL 1.2345678901234568e16, so
SQLAlchemy's ``Numeric`` reads back ``12345678901234568``. ``ExactDecimal``
stores the value as plain decimal text instead (``'12345678901234567.89'``)
and returns a ``Decimal`` with the same value.

The text is canonical, so equal values are equal strings and ``=``, ``IN`` and
UNIQUE work in SQL: without a scale, trailing zeros are dropped (``1.50`` is
stored as ``'1.5'``); with a scale of k, the text has exactly k digits after the
point (``'1.50'`` for k = 2). Arithmetic, ``SUM()`` and ordering in SQL are not
exact: SQLite converts the text to REAL for arithmetic and compares text as text.
Sum and sort in Python, or cast to REAL when an approximate result is enough.
"""

from __future__ import annotations

import decimal
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.types import Text, TypeDecorator

__all__ = ["ExactDecimal", "canonical_decimal"]


def canonical_decimal(value: decimal.Decimal, scale: int | None) -> decimal.Decimal:
    """Return ``value`` in the canonical form that ``ExactDecimal(scale)`` stores.

    Raises ``ValueError`` for NaN and infinities, and for a value with more
    significant decimal places than ``scale`` (rounding would change it).
    """
    if not value.is_finite():
        raise ValueError(f"{value!r} is not a finite decimal: store None for a missing value")

    # A context wide enough for every digit, because the default one rounds at 28.
    context = decimal.Context(prec=len(format(value, "f")) + (scale or 0) + 1)

    if scale is None:
        canonical = value.normalize(context)
    else:
        step = decimal.Decimal(1).scaleb(-scale)
        canonical = value.quantize(step, context=context)
        if canonical != value:
            raise ValueError(
                f"{value} has more than {scale} digits after the decimal point. "
                f"Round it explicitly, for example value.quantize(Decimal('{step}'))"
            )

    if canonical.is_zero():
        canonical = canonical.copy_abs()
    return canonical


class ExactDecimal(TypeDecorator[decimal.Decimal]):
    """Store ``Decimal`` values as canonical decimal TEXT so that no digit is lost.

    ``scale`` fixes the digits after the decimal point (2 for cents). Bound values
    may be ``Decimal``, ``int`` or a decimal string; ``float`` raises ``TypeError``
    because a float such as 0.1 is already inexact.
    """

    impl = Text
    cache_ok = True

    def __init__(self, scale: int | None = None) -> None:
        super().__init__()
        if scale is not None and (
            isinstance(scale, bool) or not isinstance(scale, int) or scale < 0
        ):
            raise ValueError(f"scale must be a non-negative int or None, got {scale!r}")
        self.scale = scale

    @property
    def python_type(self) -> type[decimal.Decimal]:
        return decimal.Decimal

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return format(canonical_decimal(_to_decimal(value), self.scale), "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> decimal.Decimal | None:
        if value is None:
            return None
        return decimal.Decimal(str(value))

    def __repr__(self) -> str:
        return f"ExactDecimal(scale={self.scale!r})"


def _to_decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, decimal.Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError(f"ExactDecimal takes Decimal, int or str values, got the bool {value!r}")
    if isinstance(value, int):
        return decimal.Decimal(value)
    if isinstance(value, float):
        raise TypeError(
            f"ExactDecimal does not take floats because {value!r} is already inexact. "
            f"Pass Decimal({str(value)!r}) or the decimal string instead"
        )
    if isinstance(value, str):
        try:
            return decimal.Decimal(value.strip())
        except decimal.InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal number") from None
    raise TypeError(f"ExactDecimal takes Decimal, int or str values, got {type(value).__name__}")
