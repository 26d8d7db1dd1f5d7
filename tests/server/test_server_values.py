"""Values cross the HTTP API without loss, in both directions, for every SQLite storage class."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from dorm_sqlalchemy.server.protocol import decode_parameter, encode_value

from .conftest import LiveServer

BIG = 2**53 + 1

# (parameter as sent, SQLite storage class, value as returned)
ROUND_TRIPS = [
    (None, "null", None),
    (0, "integer", 0),
    (-7, "integer", -7),
    (2**53 - 1, "integer", 2**53 - 1),
    (-(2**53 - 1), "integer", -(2**53 - 1)),
    (BIG, "integer", {"$int": str(BIG)}),
    ({"$int": str(BIG)}, "integer", {"$int": str(BIG)}),
    ({"$int": str(2**63 - 1)}, "integer", {"$int": str(2**63 - 1)}),
    ({"$int": str(-(2**63))}, "integer", {"$int": str(-(2**63))}),
    (True, "integer", 1),
    (1.0, "real", 1.0),
    (-0.5, "real", -0.5),
    (1e300, "real", 1e300),
    (0.1, "real", 0.1),
    ({"$real": "Infinity"}, "real", {"$real": "Infinity"}),
    ({"$real": "-Infinity"}, "real", {"$real": "-Infinity"}),
    ("", "text", ""),
    ("héllo ✓ \U0001f600", "text", "héllo ✓ \U0001f600"),
    ("9007199254740993", "text", "9007199254740993"),
    ('{"$blob": "AA=="}', "text", '{"$blob": "AA=="}'),
    ("a\x00b", "text", "a\x00b"),
    ({"$blob": ""}, "blob", {"$blob": ""}),
    ({"$blob": "AAH/"}, "blob", {"$blob": "AAH/"}),
    (
        {"$blob": base64.b64encode(bytes(range(256))).decode()},
        "blob",
        {"$blob": base64.b64encode(bytes(range(256))).decode()},
    ),
]


@pytest.mark.parametrize(("sent", "storage_class", "returned"), ROUND_TRIPS)
def test_value_round_trips_through_table(
    server: LiveServer, sent: Any, storage_class: str, returned: Any
) -> None:
    server.sql("acme", "CREATE TABLE v (x)")

    server.sql("acme", "INSERT INTO v VALUES (?)", [sent])
    rows = server.rows("acme", "SELECT typeof(x), x FROM v")

    assert rows[0][0] == storage_class
    assert rows[0][1] == returned
    assert type(rows[0][1]) is type(returned)


@pytest.mark.parametrize(("sent", "storage_class", "returned"), ROUND_TRIPS)
def test_returned_value_binds_back_to_same_value(
    server: LiveServer, sent: Any, storage_class: str, returned: Any
) -> None:
    server.sql("acme", "CREATE TABLE v (x)")
    server.sql("acme", "INSERT INTO v VALUES (?)", [sent])

    rows = server.rows("acme", "SELECT count(*) FROM v WHERE x IS ?", [returned])

    assert rows == [[1]]


def test_real_keeps_its_fraction_on_the_wire(server: LiveServer) -> None:
    response = server.sql("acme", "SELECT 1.0, 2, 1e20, 1e16")
    row = json.loads(response.text)["result"]["rows"][0]

    assert '"rows":[[1.0,2,1e+20,1e+16]]' in response.text
    assert [type(value) for value in row] == [float, int, float, float]


def test_big_integer_from_sql_is_tagged(server: LiveServer) -> None:
    rows = server.rows("acme", "SELECT 9007199254740993, -9223372036854775808, 9007199254740991")

    assert rows == [
        [{"$int": "9007199254740993"}, {"$int": "-9223372036854775808"}, 9007199254740991]
    ]


def test_blob_from_sql_is_base64(server: LiveServer) -> None:
    rows = server.rows("acme", "SELECT x'00ff10', zeroblob(2)")

    assert rows == [[{"$blob": "AP8Q"}, {"$blob": "AAA="}]]


def test_nan_is_stored_as_null(server: LiveServer) -> None:
    rows = server.rows("acme", "SELECT typeof(?), ?", [{"$real": "Infinity"}, None])

    assert rows == [["real", None]]


def test_integer_column_keeps_big_key_exact(server: LiveServer) -> None:
    server.sql("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    server.sql("acme", "INSERT INTO t VALUES (?, 'a')", [BIG])
    server.sql("acme", "INSERT INTO t VALUES (?, 'b')", [BIG - 1])

    rows = server.rows("acme", "SELECT name FROM t WHERE id = ?", [{"$int": str(BIG)}])

    assert rows == [["a"]]


@pytest.mark.parametrize(
    ("param", "fragment"),
    [
        (2**63, "64-bit INTEGER range"),
        (-(2**63) - 1, "64-bit INTEGER range"),
        ({"$int": str(2**63)}, "64-bit INTEGER range"),
        ({"$int": "12a"}, '"$int" must be'),
        ({"$int": 5}, '"$int" must be'),
        ({"$blob": "!!"}, "not valid base64"),
        ({"$blob": 1}, "base64 string"),
        ({"$real": "NaN"}, '"$real" must be'),
        ({"$real": 1.5}, '"$real" must be'),
        ({"$blob": "AA==", "extra": 1}, "cannot be bound"),
        ({}, "cannot be bound"),
        ([1, 2], "cannot be bound"),
    ],
)
def test_invalid_parameter_is_400(server: LiveServer, param: Any, fragment: str) -> None:
    response = server.sql("acme", "SELECT ?", [param])

    assert response.status_code == 400
    assert fragment in response.json()["error"]
    assert "parameter 1" in response.json()["error"]


@pytest.mark.parametrize(("sent", "storage_class", "returned"), ROUND_TRIPS)
def test_encoding_functions_agree(sent: Any, storage_class: str, returned: Any) -> None:
    decoded = decode_parameter(sent, "parameter 1")

    assert encode_value(decoded) == returned
