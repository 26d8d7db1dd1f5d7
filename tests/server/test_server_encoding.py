"""The orjson encoding of result rows gives exactly the documented JSON form of every value."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest

from dorm_sqlalchemy.server.protocol import encode_row, row_lines, rows_json

# One value per row: each storage class, the edges of exact JSON integers,
# and the values orjson alone would get wrong (big integers, infinities, BLOBs).
VALUES = [
    None,
    0,
    2**53 - 1,
    -(2**53 - 1),
    2**53,
    -(2**53),
    2**63 - 1,
    -(2**63),
    0.1,
    1.0,
    -0.0,
    1e20,
    5e-324,
    math.inf,
    -math.inf,
    "",
    "null",
    "héllo ✓ \U0001f600 \u2028 \x00 \x7f \" \\",
    b"",
    b"\x00\xff\x10",
]

START, SEPARATOR, END = b"<", b"|", b">"


def _expected(row: list[Any]) -> Any:
    return json.loads(json.dumps(encode_row(row)))


def _lines(rows: list[Any], columns: list[str] | None) -> list[Any]:
    text = row_lines(rows, columns, start=START, separator=SEPARATOR, end=END)
    assert text.startswith(START)
    assert text.endswith(END)
    return [orjson.loads(line) for line in text[1:-1].split(SEPARATOR)]


@pytest.mark.parametrize("value", VALUES)
def test_rows_json_matches_tagged_form(value: Any) -> None:
    rows = [(1, value), (2, None)]

    assert orjson.loads(rows_json(rows)) == [_expected([1, value]), [2, None]]


@pytest.mark.parametrize("value", VALUES)
def test_row_lines_as_arrays_match_tagged_form(value: Any) -> None:
    assert _lines([(value, 1.5)], None) == [_expected([value, 1.5])]


@pytest.mark.parametrize("value", VALUES)
def test_row_lines_as_objects_match_tagged_form(value: Any) -> None:
    assert _lines([(value, None)], ["a", "b"]) == [dict(zip(["a", "b"], _expected([value, None])))]


def test_one_tagged_value_keeps_other_rows_exact() -> None:
    rows = [(1, 0.5), (2, math.inf), (3, None), (4, 2**60), (5, b"x")]

    assert _lines(rows, None) == [_expected(list(row)) for row in rows]


def test_row_lines_objects_keep_last_duplicate_column() -> None:
    assert _lines([(1, 2)], ["x", "x"]) == [{"x": 2}]


def test_real_keeps_fraction_in_text() -> None:
    assert rows_json([(1.0, 1e20, 2)]) == b"[[1.0,1e+20,2]]"


def test_text_is_utf8_not_escaped() -> None:
    assert rows_json([("é✓",)]) == '[["é✓"]]'.encode()
