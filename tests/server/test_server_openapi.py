"""The OpenAPI document describes the API, and a property-based run against it finds no 5xx.

Schemathesis generates the requests from ``/openapi.json``, valid ones and
ones that break the schema, and each goes to a real server. The cases are
driven with Hypothesis directly, because schemathesis 4.32's pytest fixture
loader relies on a pytest attribute that pytest 9 no longer has.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from dorm_sqlalchemy.server import ServerLimits
from dorm_sqlalchemy.server.openapi import build_openapi

from .conftest import SECRET, LiveServer

import schemathesis
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

AUTH = {"Authorization": f"Bearer {SECRET}"}
SCHEMA = schemathesis.openapi.from_dict(build_openapi(ServerLimits()))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_server(start_server: Any, make_dorm: Any) -> LiveServer:
    # No creation on first use, so random tenant names do not fill the disk.
    live = start_server(make_dorm(create=False))
    live.dorm.create("acme")
    live.sql("acme", "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, photo BLOB)")
    live.sql("acme", "INSERT INTO users VALUES (7, 'Ada', x'00ff')")
    return live


def test_openapi_served_and_lists_every_endpoint(api_server: LiveServer) -> None:
    document = api_server.client.get("/openapi.json").json()

    assert document == build_openapi(ServerLimits())
    assert set(document["paths"]) == {
        "/{tenant}/api/db/query/raw",
        "/{tenant}/api/db/query/stream",
        "/api/tenants",
        "/api/tenants/{tenant}/tables",
    }


@pytest.mark.timeout(600)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_generated_requests_get_no_server_error(
    api_server: LiveServer, operation: Any, mode: str
) -> None:
    strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))

    @given(case=strategy)
    @settings(
        max_examples=int(os.environ.get("DORM_FUZZ_EXAMPLES", "75")), deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(case: Any) -> None:
        case.call_and_validate(base_url=api_server.url, headers=AUTH, checks=CHECKS)

    check()
