"""The FastAPI invoices example, served by uvicorn on 127.0.0.1 and driven over HTTP.

Each server is a ``python -m uvicorn`` subprocess on a free port with its own
data directory, configured through the environment variables the example
reads, exactly as a user runs it. Every test uses tenants of its own, so
tests sharing a server never see each other's rows.
"""

from __future__ import annotations

import asyncio
import difflib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from dorm_sqlalchemy import Dorm

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "fastapi_app"
DOCS = REPO_ROOT / "docs" / "examples.md"

# The examples are not part of the installed distribution: import them from
# the repository, as ``python -m uvicorn`` does from the repository root.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from examples.fastapi_app.migrations import MIGRATIONS  # noqa: E402
from examples.fastapi_app.models import Base  # noqa: E402
from examples.fastapi_app.tenancy import tenant_routing  # noqa: E402

STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 10.0
LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@dataclass
class Server:
    """One uvicorn subprocess serving an example app."""

    process: subprocess.Popen[bytes]
    log: Path
    data: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **options: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, trust_env=False, timeout=10.0, **options)

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, trust_env=False, timeout=20.0)

    def tenant_files(self) -> set[str]:
        """Tenant database files, without the template the registry builds for new tenants."""
        return {path.name for path in self.data.glob("*.db") if not path.name.startswith("_")}


def start_server(module: str, directory: Path, **environment: str) -> Server:
    """Start ``uvicorn examples.fastapi_app.<module>:app`` on a free port, without waiting."""
    data = directory / "data"
    data.mkdir(parents=True)
    log = directory / "uvicorn.log"
    env = {**os.environ, **environment}
    env["INVOICES_DATABASE_URL"] = f"sqlite:///{data}/{{tenant}}.db"
    if module == "single_db":
        env["INVOICES_DATABASE_URL"] = f"sqlite+aiosqlite:///{data}/invoices.db"
    command = [
        sys.executable, "-m", "uvicorn", f"examples.fastapi_app.{module}:app",
        "--host", "127.0.0.1", "--port", "0",
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    return Server(process=process, log=log, data=data)


def wait_until_listening(server: Server) -> None:
    """Read the port from uvicorn's start-up line, or fail with the log if it never comes."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        match = LISTENING.search(server.log.read_text(errors="replace"))
        if match:
            server.port = int(match.group(1))
            return
        if server.process.poll() is not None:
            break
        time.sleep(0.05)
    stop_server(server)
    pytest.fail(f"uvicorn did not start within {STARTUP_TIMEOUT} s:\n{server.log.read_text()}")


def stop_servers(*servers: Server) -> None:
    """Stop the servers with SIGTERM, which uvicorn handles gracefully, or kill those that hang.

    All servers get the signal before the first wait, so they shut down in
    parallel.
    """
    for server in servers:
        if server.process.poll() is None:
            server.process.terminate()

    for server in servers:
        try:
            server.process.wait(SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def stop_server(server: Server) -> int:
    """Stop one server and return its exit status.

    After a graceful shutdown, uvicorn raises the signal it received again,
    so the status is ``-SIGTERM``, not 0.
    """
    stop_servers(server)
    return server.process.returncode


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """The single-database app and the multi-tenant app in each routing mode, started together."""
    started = {
        "single_db": start_server("single_db", tmp_path_factory.mktemp("single_db")),
    }
    for mode in ("path", "header", "subdomain"):
        started[mode] = start_server(
            "app",
            tmp_path_factory.mktemp(mode),
            INVOICES_TENANT_FROM=mode,
            INVOICES_BASE_DOMAIN="example.test",
        )
    try:
        for server in started.values():
            wait_until_listening(server)
        yield started
    finally:
        stop_servers(*started.values())


@pytest.fixture
def new_tenant() -> Callable[[], str]:
    """Return a factory of fresh tenant names, so every test starts from empty tenants."""
    return lambda: f"t{uuid.uuid4().hex[:12]}"


def create_customer(client: httpx.Client, prefix: str, name: str, email: str) -> httpx.Response:
    return client.post(f"{prefix}/customers", json={"name": name, "email": email})


def create_invoice(
    client: httpx.Client, prefix: str, customer_id: int, cents: int
) -> httpx.Response:
    body = {"customer_id": customer_id, "description": f"work for {cents}", "amount_cents": cents}
    return client.post(f"{prefix}/invoices", json=body)


def read_customer_names(data: Path, tenant: str) -> list[str]:
    """Read a tenant's customers straight from its database file, next to the running server."""
    with Dorm(root=data, create=False) as dorm:
        return [row["name"] for row in dorm.exec(tenant, "SELECT name FROM customers ORDER BY id")]


# -- the example's own consistency -------------------------------------------


def is_application_object(name: str | None, kind: str, parent: object) -> bool:
    """Leave out the table where dict migrations record their versions."""
    return name is None or not name.startswith("_dorm_")


def test_migrations_match_models(tmp_path: Path) -> None:
    with Dorm(root=tmp_path, migrations=MIGRATIONS) as dorm:
        with dorm.engine("acme").connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"include_name": is_application_object}
            )
            differences = compare_metadata(context, Base.metadata)

    assert differences == []


def unified_diff(before: Path, after: Path) -> str:
    lines = difflib.unified_diff(
        before.read_text().splitlines(keepends=True),
        after.read_text().splitlines(keepends=True),
        fromfile=str(before.relative_to(REPO_ROOT)),
        tofile=str(after.relative_to(REPO_ROOT)),
    )
    return "".join(lines)


def test_docs_show_current_diff() -> None:
    expected = unified_diff(EXAMPLE / "single_db.py", EXAMPLE / "app.py")
    blocks = re.findall(r"^```diff\n(.*?)^```$", DOCS.read_text(), flags=re.DOTALL | re.MULTILINE)

    assert blocks == [expected], (
        "docs/examples.md must contain exactly this diff of single_db.py and app.py "
        f"in one ```diff block:\n{expected}"
    )


def test_unknown_routing_mode_rejected() -> None:
    with pytest.raises(ValueError, match="'cookie'.*path, header, subdomain"):
        tenant_routing("cookie")


# -- the single-database app -------------------------------------------------


def test_single_db_app_crud(servers: dict[str, Server]) -> None:
    with servers["single_db"].client() as client:
        customer = create_customer(client, "", "Ann", "ann@acme.test")
        invoice = create_invoice(client, "", customer.json()["id"], 1999)
        listed = client.get("/invoices").json()
        deleted = client.delete(f"/invoices/{invoice.json()['id']}")
        missing = client.get(f"/invoices/{invoice.json()['id']}")

    assert customer.status_code == 201
    assert invoice.status_code == 201
    assert listed == [invoice.json()]
    assert deleted.status_code == 204
    assert missing.status_code == 404


# -- CRUD through the multi-tenant app ---------------------------------------


def test_customer_crud(servers: dict[str, Server], new_tenant: Callable[[], str]) -> None:
    prefix = f"/t/{new_tenant()}"
    with servers["path"].client() as client:
        created = create_customer(client, prefix, "Ann", "ann@acme.test")
        fetched = client.get(f"{prefix}/customers/1")
        updated = client.patch(f"{prefix}/customers/1", json={"name": "Ann Lee"})
        listed = client.get(f"{prefix}/customers")
        deleted = client.delete(f"{prefix}/customers/1")
        after_delete = client.get(f"{prefix}/customers/1")

    assert created.status_code == 201
    assert created.json() == {"id": 1, "name": "Ann", "email": "ann@acme.test"}
    assert fetched.json() == created.json()
    assert updated.json() == {"id": 1, "name": "Ann Lee", "email": "ann@acme.test"}
    assert listed.json() == [updated.json()]
    assert deleted.status_code == 204
    assert after_delete.status_code == 404


def test_invoice_crud(servers: dict[str, Server], new_tenant: Callable[[], str]) -> None:
    prefix = f"/t/{new_tenant()}"
    with servers["path"].client() as client:
        create_customer(client, prefix, "Ann", "ann@acme.test")
        create_customer(client, prefix, "Bob", "bob@acme.test")
        first = create_invoice(client, prefix, 1, 1999)
        create_invoice(client, prefix, 2, 500)
        of_ann = client.get(f"{prefix}/invoices", params={"customer_id": 1})
        paid = client.patch(f"{prefix}/invoices/1", json={"paid": True})
        blocked = client.delete(f"{prefix}/customers/1")
        deleted = client.delete(f"{prefix}/invoices/1")
        remaining = client.get(f"{prefix}/invoices")
        customer_deleted = client.delete(f"{prefix}/customers/1")

    assert first.status_code == 201
    assert of_ann.json() == [first.json()]
    assert paid.json() == {**first.json(), "paid": True}
    assert blocked.status_code == 409
    assert deleted.status_code == 204
    assert [invoice["customer_id"] for invoice in remaining.json()] == [2]
    assert customer_deleted.status_code == 204


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("post", "/customers", {"name": "", "email": "a@b.test"}, 422),
        ("post", "/customers", {"name": "Ann", "email": "not an email"}, 422),
        ("post", "/customers", {"name": "Ann"}, 422),
        ("post", "/customers", {"name": "Twin", "email": "ann@acme.test"}, 409),
        ("patch", "/customers/1", {"name": None}, 422),
        ("patch", "/customers/1", {"email": "bob@acme.test"}, 409),
        ("patch", "/customers/9", {"name": "Nobody"}, 404),
        ("post", "/invoices", {"customer_id": 9, "description": "x", "amount_cents": 1}, 422),
        ("post", "/invoices", {"customer_id": 1, "description": "x", "amount_cents": -1}, 422),
        ("patch", "/invoices/9", {"paid": True}, 404),
        ("delete", "/invoices/9", None, 404),
        ("get", "/customers/not-a-number", None, 422),
    ],
)
def test_invalid_request_rejected(
    servers: dict[str, Server],
    new_tenant: Callable[[], str],
    method: str,
    path: str,
    body: dict[str, object] | None,
    status: int,
) -> None:
    prefix = f"/t/{new_tenant()}"
    with servers["path"].client() as client:
        create_customer(client, prefix, "Ann", "ann@acme.test")
        create_customer(client, prefix, "Bob", "bob@acme.test")
        response = client.request(method, f"{prefix}{path}", json=body)
        customers = client.get(f"{prefix}/customers").json()

    assert response.status_code == status
    assert [customer["name"] for customer in customers] == ["Ann", "Bob"]


# -- tenant isolation --------------------------------------------------------


def test_same_ids_isolated(servers: dict[str, Server], new_tenant: Callable[[], str]) -> None:
    server = servers["path"]
    acme, globex = new_tenant(), new_tenant()
    with server.client() as client:
        for tenant in (acme, globex):
            create_customer(client, f"/t/{tenant}", f"{tenant} buyer", f"buyer@{tenant}.test")
            create_invoice(client, f"/t/{tenant}", 1, 100)
        acme_customer = client.get(f"/t/{acme}/customers/1").json()
        globex_customer = client.get(f"/t/{globex}/customers/1").json()
        client.patch(f"/t/{acme}/invoices/1", json={"amount_cents": 999})
        globex_invoice = client.get(f"/t/{globex}/invoices/1").json()
        client.delete(f"/t/{acme}/invoices/1")
        acme_invoices = client.get(f"/t/{acme}/invoices").json()
        globex_invoices = client.get(f"/t/{globex}/invoices").json()

    assert acme_customer == {"id": 1, "name": f"{acme} buyer", "email": f"buyer@{acme}.test"}
    assert globex_customer == {"id": 1, "name": f"{globex} buyer", "email": f"buyer@{globex}.test"}
    assert globex_invoice["amount_cents"] == 100
    assert acme_invoices == []
    assert [invoice["id"] for invoice in globex_invoices] == [1]
    assert read_customer_names(server.data, acme) == [f"{acme} buyer"]
    assert read_customer_names(server.data, globex) == [f"{globex} buyer"]


def test_header_routing(servers: dict[str, Server], new_tenant: Callable[[], str]) -> None:
    server = servers["header"]
    acme, globex = new_tenant(), new_tenant()
    with server.client() as client:
        created = client.post(
            "/customers",
            json={"name": "Ann", "email": "ann@acme.test"},
            headers={"X-Tenant": acme},
        )
        in_acme = client.get("/customers", headers={"X-Tenant": acme.upper()})
        in_globex = client.get("/customers", headers={"X-Tenant": globex})
        without_header = client.get("/customers")
        by_path = client.get(f"/t/{acme}/customers")

    assert created.status_code == 201
    assert in_acme.json() == [created.json()]
    assert in_globex.json() == []
    assert without_header.status_code == 400
    assert by_path.status_code == 404
    assert read_customer_names(server.data, acme) == ["Ann"]


def test_subdomain_routing(servers: dict[str, Server], new_tenant: Callable[[], str]) -> None:
    server = servers["subdomain"]
    acme, globex = new_tenant(), new_tenant()
    with server.client() as client:
        created = client.post(
            "/customers",
            json={"name": "Ann", "email": "ann@acme.test"},
            headers={"Host": f"{acme}.example.test"},
        )
        in_acme = client.get("/customers", headers={"Host": f"{acme}.EXAMPLE.test:8000"})
        in_globex = client.get("/customers", headers={"Host": f"{globex}.example.test"})

    assert created.status_code == 201
    assert in_acme.json() == [created.json()]
    assert in_globex.json() == []
    assert read_customer_names(server.data, acme) == ["Ann"]


@pytest.mark.parametrize(
    "host",
    ["example.test", "127.0.0.1", "acme.other.test", "a.b.example.test", "-acme.example.test"],
)
def test_subdomain_without_tenant_rejected(servers: dict[str, Server], host: str) -> None:
    server = servers["subdomain"]
    files_before = server.tenant_files()
    with server.client() as client:
        response = client.get("/customers", headers={"Host": host})

    assert response.status_code == 400
    assert server.tenant_files() == files_before


@pytest.mark.parametrize(
    "name",
    ["a.b", "%2E%2E", "_template", "-acme", "con", "x" * 64, "acme%00", "caf%C3%A9"],
)
def test_invalid_tenant_in_path_rejected(servers: dict[str, Server], name: str) -> None:
    server = servers["path"]
    files_before = server.tenant_files()
    with server.client() as client:
        response = client.get(f"/t/{name}/customers")

    assert response.status_code == 400
    assert "invalid tenant name" in response.json()["detail"]
    assert server.tenant_files() == files_before


@pytest.mark.parametrize("name", ["../acme", "a/b", "acme.db", "ac me", ""])
def test_invalid_tenant_in_header_rejected(servers: dict[str, Server], name: str) -> None:
    server = servers["header"]
    files_before = server.tenant_files()
    with server.client() as client:
        response = client.get("/customers", headers={"X-Tenant": name})

    assert response.status_code == 400
    assert server.tenant_files() == files_before


async def test_concurrent_tenants_isolated(
    servers: dict[str, Server], new_tenant: Callable[[], str]
) -> None:
    tenants = [new_tenant() for _ in range(10)]
    per_tenant = 5
    async with servers["path"].async_client() as client:
        created = await asyncio.gather(*(
            client.post(
                f"/t/{tenant}/customers",
                json={"name": f"{tenant} {number}", "email": f"c{number}@{tenant}.test"},
            )
            for number in range(per_tenant)
            for tenant in tenants
        ))
        listed = await asyncio.gather(*(
            client.get(f"/t/{tenant}/customers") for tenant in tenants
        ))
        fetched = await asyncio.gather(*(
            client.get(f"/t/{tenant}/customers/{key}")
            for tenant in tenants
            for key in range(1, per_tenant + 1)
        ))

    assert len(created) == 50
    assert {response.status_code for response in created} == {201}
    for tenant, response in zip(tenants, listed):
        names = sorted(customer["name"] for customer in response.json())
        assert names == [f"{tenant} {number}" for number in range(per_tenant)]
    for response in fetched:
        tenant = response.url.path.split("/")[2]
        assert response.json()["name"].startswith(f"{tenant} ")


# -- start and stop ----------------------------------------------------------


def test_server_stops_cleanly(tmp_path: Path) -> None:
    server = start_server("app", tmp_path)
    try:
        wait_until_listening(server)
        with server.client() as client:
            response = client.get("/t/acme/customers")
    finally:
        returncode = stop_server(server)
    log = server.log.read_text()

    assert response.json() == []
    assert returncode == -signal.SIGTERM
    assert "Application shutdown complete" in log
    assert "Traceback" not in log
    # A clean close checkpoints the WAL and removes the -wal and -shm files.
    assert sorted(path.name for path in server.data.glob("acme*")) == ["acme.db"]
