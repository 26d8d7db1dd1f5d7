"""How dorm+http and dorm+https URLs turn into DB-API connect arguments."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import exc
from sqlalchemy.engine import make_url

from dorm_sqlalchemy.dialects import dbapi, errors, http, wire
from dorm_sqlalchemy.dialects.http import DormHTTPDialect, DormHTTPSDialect


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "dorm+http://127.0.0.1:8787/acme/api/db",
            {"url": "http://127.0.0.1:8787/acme/api/db"},
        ),
        (
            "dorm+http://:s3cret@127.0.0.1:8787/acme/api/db/",
            {"url": "http://127.0.0.1:8787/acme/api/db", "secret": "s3cret"},
        ),
        (
            "dorm+http://ignored:p%40ss%2Fword@localhost/acme/api/db?timeout=2.5",
            {"url": "http://localhost/acme/api/db", "secret": "p@ss/word", "timeout": 2.5},
        ),
        (
            "dorm+http://[::1]:8787/acme/api/db",
            {"url": "http://[::1]:8787/acme/api/db"},
        ),
    ],
)
def test_http_url_to_connect_args(url: str, expected: dict[str, Any]) -> None:
    assert DormHTTPDialect().create_connect_args(make_url(url)) == ([], expected)


def test_https_url_to_connect_args() -> None:
    _, options = DormHTTPSDialect().create_connect_args(make_url("dorm+https://h/acme/api/db"))

    assert options == {"url": "https://h/acme/api/db"}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("dorm+http:///acme/api/db", "no host"),
        ("dorm+http://127.0.0.1:8787", "no path"),
        ("dorm+http://127.0.0.1/acme/api/db?verify=false", "unknown option"),
    ],
)
def test_invalid_url_raises_argument_error(url: str, message: str) -> None:
    with pytest.raises(exc.ArgumentError, match=message):
        DormHTTPDialect().create_connect_args(make_url(url))


def test_password_never_rendered_in_errors() -> None:
    with pytest.raises(exc.ArgumentError) as caught:
        DormHTTPDialect().create_connect_args(make_url("dorm+http://:topsecret@h"))

    assert "topsecret" not in str(caught.value)


@pytest.mark.parametrize(
    ("sql", "keyword"),
    [
        ("select 1", "SELECT"),
        ("  \n\tInsert into t values (1)", "INSERT"),
        ("-- note\nWITH x AS (SELECT 1) SELECT * FROM x", "WITH"),
        ("/* a */ /* b */savepoint a", "SAVEPOINT"),
        ("(SELECT 1)", ""),
        ("", ""),
    ],
)
def test_leading_keyword(sql: str, keyword: str) -> None:
    assert wire.leading_keyword(sql) == keyword


@pytest.mark.parametrize("module", [dbapi, errors, http, wire])
def test_all_lists_defined_names(module: Any) -> None:
    missing = [name for name in module.__all__ if not hasattr(module, name)]

    assert missing == []


def test_module_dialect_alias() -> None:
    assert http.dialect is DormHTTPDialect
