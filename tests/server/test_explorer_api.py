"""The explorer's page and JSON endpoints: tenant list, tables with row counts."""

from __future__ import annotations

import httpx
import pytest

from .conftest import LiveServer


@pytest.fixture
def populated(server: LiveServer) -> LiveServer:
    for tenant in ("globex", "acme", "initech"):
        server.dorm.create(tenant)
    server.sql("acme", "CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT)")
    server.sql("acme", 'CREATE TABLE "odd ""name" (x)')
    server.sql("acme", "CREATE VIEW recent AS SELECT * FROM notes")
    server.sql("acme", "INSERT INTO notes (body) VALUES ('a'), ('b'), ('c')")
    return server


def test_tenant_list_sorted_with_sizes(populated: LiveServer) -> None:
    document = populated.client.get("/api/tenants").json()

    assert [tenant["name"] for tenant in document["tenants"]] == ["acme", "globex", "initech"]
    assert all(tenant["size"] > 0 for tenant in document["tenants"])
    assert document["tenants"][0]["size"] == populated.dorm.size("acme")
    assert document["next"] is None


def test_tenant_list_pages(populated: LiveServer) -> None:
    first = populated.client.get("/api/tenants", params={"limit": 2}).json()
    second = populated.client.get(
        "/api/tenants", params={"limit": 2, "after": first["next"]}
    ).json()

    assert [tenant["name"] for tenant in first["tenants"]] == ["acme", "globex"]
    assert first["next"] == "globex"
    assert [tenant["name"] for tenant in second["tenants"]] == ["initech"]
    assert second["next"] is None


@pytest.mark.parametrize("limit", ["0", "5001", "-1", "x", "1.5", "²", "٣", ""])
def test_tenant_list_invalid_limit_is_400(populated: LiveServer, limit: str) -> None:
    response = populated.client.get("/api/tenants", params={"limit": limit})

    assert response.status_code == 400
    assert "invalid limit" in response.json()["error"]


def test_tables_with_row_counts(populated: LiveServer) -> None:
    document = populated.client.get("/api/tenants/acme/tables").json()

    assert document["tenant"] == "acme"
    assert [(table["name"], table["type"], table["rows"]) for table in document["tables"]] == [
        ("notes", "table", 3),
        ('odd "name', "table", 0),
        ("recent", "view", None),
    ]
    assert document["tables"][0]["sql"].startswith("CREATE TABLE notes")


def test_tables_of_unknown_tenant_404(populated: LiveServer) -> None:
    response = populated.client.get("/api/tenants/nobody/tables")

    assert response.status_code == 404
    assert not populated.dorm.exists("nobody")


def test_tables_of_invalid_tenant_is_400(populated: LiveServer) -> None:
    response = populated.client.get("/api/tenants/..x/tables")

    assert response.status_code == 400


def test_explorer_page_served_with_policy(populated: LiveServer) -> None:
    response = httpx.get(populated.url + "/explorer/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert '<script src="/explorer/static/explorer.js"' in response.text


@pytest.mark.parametrize("path", ["/", "/explorer"])
def test_root_redirects_to_explorer(populated: LiveServer, path: str) -> None:
    response = httpx.get(populated.url + path)

    assert response.status_code == 307
    assert response.headers["location"] == "/explorer/"


@pytest.mark.parametrize("name", ["explorer.js", "explorer.css"])
def test_explorer_static_files(populated: LiveServer, name: str) -> None:
    response = httpx.get(f"{populated.url}/explorer/static/{name}")

    assert response.status_code == 200


def test_explorer_script_never_uses_inner_html(populated: LiveServer) -> None:
    script = httpx.get(f"{populated.url}/explorer/static/explorer.js").text

    assert "innerHTML" not in script.replace("never through innerHTML", "")
    assert "insertAdjacentHTML" not in script
    assert "document.write" not in script


def test_static_path_traversal_is_404(populated: LiveServer) -> None:
    response = httpx.get(f"{populated.url}/explorer/static/..%2F..%2Fapp.py")

    assert response.status_code == 404


def test_explorer_disabled(start_server: object) -> None:
    live = start_server(explorer=False)  # type: ignore[operator]

    response = live.client.get("/api/tenants")

    assert response.status_code == 404
