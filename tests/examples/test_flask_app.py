"""The Flask notes example: Flask's test client, then a real werkzeug server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

REPO_ROOT = Path(__file__).resolve().parents[2]

# The examples are not part of the installed distribution: import them from
# the repository, as ``flask --app examples.flask_app.app`` does from its root.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from examples.flask_app.app import create_app  # noqa: E402


def tenant_files(data: Path) -> set[str]:
    """Tenant database files, without the template the registry builds for new tenants."""
    return {path.name for path in data.glob("*.db") if not path.name.startswith("_")}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def app(data: Path) -> Iterator[Flask]:
    app = create_app(f"sqlite:///{data}/{{tenant}}.db")
    yield app
    app.extensions["dorm"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_note_crud(client: FlaskClient) -> None:
    created = client.post("/t/acme/notes", json={"title": "Call Ann", "body": "about invoice 1"})
    fetched = client.get("/t/acme/notes/1")
    updated = client.patch("/t/acme/notes/1", json={"title": "Call Ann Lee"})
    listed = client.get("/t/acme/notes")
    deleted = client.delete("/t/acme/notes/1")
    after_delete = client.get("/t/acme/notes/1")

    assert created.status_code == 201
    assert created.json == {"id": 1, "title": "Call Ann", "body": "about invoice 1"}
    assert fetched.json == created.json
    assert updated.json == {"id": 1, "title": "Call Ann Lee", "body": "about invoice 1"}
    assert listed.json == [updated.json]
    assert deleted.status_code == 204
    assert after_delete.status_code == 404


def test_same_ids_isolated(client: FlaskClient, data: Path) -> None:
    client.post("/t/acme/notes", json={"title": "acme note"})
    client.post("/t/globex/notes", json={"title": "globex note"})
    acme = client.get("/t/acme/notes/1").json
    globex = client.get("/t/globex/notes/1").json
    client.patch("/t/acme/notes/1", json={"body": "edited"})
    client.delete("/t/globex/notes/1")
    acme_after = client.get("/t/acme/notes").json
    globex_after = client.get("/t/globex/notes").json

    assert acme == {"id": 1, "title": "acme note", "body": ""}
    assert globex == {"id": 1, "title": "globex note", "body": ""}
    assert acme_after == [{"id": 1, "title": "acme note", "body": "edited"}]
    assert globex_after == []
    assert tenant_files(data) == {"acme.db", "globex.db"}


def test_header_routing(client: FlaskClient) -> None:
    created = client.post("/notes", json={"title": "by header"}, headers={"X-Tenant": "acme"})
    by_url = client.get("/t/acme/notes")
    by_upper_case_header = client.get("/notes", headers={"X-Tenant": "ACME"})
    other = client.get("/notes", headers={"X-Tenant": "globex"})
    url_wins = client.get("/t/globex/notes", headers={"X-Tenant": "acme"})

    assert created.status_code == 201
    assert by_url.json == [created.json]
    assert by_upper_case_header.json == [created.json]
    assert other.json == []
    assert url_wins.json == []


def test_missing_tenant_rejected(client: FlaskClient, data: Path) -> None:
    response = client.get("/notes")

    assert response.status_code == 400
    assert "X-Tenant" in response.json["detail"]
    assert tenant_files(data) == set()


def test_unknown_url_not_found(client: FlaskClient) -> None:
    assert client.get("/favicon.ico").status_code == 404


@pytest.mark.parametrize("name", ["a.b", "..", "_template", "-acme", "con", "x" * 64, "café"])
def test_invalid_tenant_in_url_rejected(client: FlaskClient, data: Path, name: str) -> None:
    response = client.get(f"/t/{name}/notes")

    assert response.status_code == 400
    assert "invalid tenant name" in response.json["detail"]
    assert tenant_files(data) == set()


@pytest.mark.parametrize("name", ["../acme", "a/b", "acme.db", ""])
def test_invalid_tenant_in_header_rejected(client: FlaskClient, data: Path, name: str) -> None:
    response = client.get("/notes", headers={"X-Tenant": name})

    assert response.status_code == 400
    assert tenant_files(data) == set()


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("post", "/t/acme/notes", {"title": ""}, 422),
        ("post", "/t/acme/notes", {"body": "no title"}, 422),
        ("post", "/t/acme/notes", {"title": "x" * 201}, 422),
        ("patch", "/t/acme/notes/1", {"title": None}, 422),
        ("patch", "/t/acme/notes/9", {"title": "nobody"}, 404),
        ("delete", "/t/acme/notes/9", None, 404),
        ("get", "/t/acme/notes/one", None, 404),
    ],
)
def test_invalid_request_rejected(
    client: FlaskClient, method: str, path: str, body: dict[str, object] | None, status: int
) -> None:
    client.post("/t/acme/notes", json={"title": "kept"})
    response = client.open(path, method=method.upper(), json=body)
    notes = client.get("/t/acme/notes").json

    assert response.status_code == status
    assert [note["title"] for note in notes] == ["kept"]


# -- a real server -----------------------------------------------------------


@pytest.fixture
def server_url(app: Flask) -> Iterator[str]:
    """Serve the app with werkzeug's threaded server on a free port of 127.0.0.1."""
    threads_before = set(threading.enumerate())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="werkzeug", daemon=True
    )
    thread.start()

    yield f"http://127.0.0.1:{server.server_port}"

    server.shutdown()
    thread.join(5)
    server.server_close()

    # Request threads end once their connection is closed, which can take a moment.
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - threads_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(threading.enumerate()) - threads_before == set()


async def test_real_server_isolates_tenants(server_url: str, data: Path) -> None:
    tenants = ["acme", "globex", "initech", "umbrella"]
    per_tenant = 5
    async with httpx.AsyncClient(base_url=server_url, trust_env=False, timeout=20) as client:
        created = await asyncio.gather(*(
            client.post(f"/t/{tenant}/notes", json={"title": f"{tenant} {number}"})
            for number in range(per_tenant)
            for tenant in tenants
        ))
        by_url = await asyncio.gather(*(client.get(f"/t/{tenant}/notes") for tenant in tenants))
        by_header = await asyncio.gather(*(
            client.get("/notes/1", headers={"X-Tenant": tenant}) for tenant in tenants
        ))

    assert {response.status_code for response in created} == {201}
    for tenant, response in zip(tenants, by_url):
        titles = sorted(note["title"] for note in response.json())
        assert titles == [f"{tenant} {number}" for number in range(per_tenant)]
    for tenant, response in zip(tenants, by_header):
        assert response.json()["title"].startswith(f"{tenant} ")
    assert tenant_files(data) == {f"{tenant}.db" for tenant in tenants}
