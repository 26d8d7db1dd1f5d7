"""The todo example, served by uvicorn on 127.0.0.1 and driven over HTTP.

One ``python -m uvicorn examples.todo.app:app`` subprocess on a free port
serves every test, with its own data directory and secret, configured through
the environment as a user runs it. Each test uses fresh tenant names, so tests
sharing the server never see each other's todos.
"""

from __future__ import annotations

import html
import os
import re
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

# The examples are not part of the installed distribution: import them from
# the repository, as ``python -m uvicorn`` does from the repository root.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from examples.todo.dispatch import is_server_path
from examples.todo.models import MIGRATIONS, Base
from examples.todo.pages import Markup, render

SECRET = "todo-test-secret"
STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 10.0
MIRROR_TIMEOUT = 5.0
LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
TODO_ITEM = re.compile(
    r'<li class="(?P<state>done|active)"><span class="title">(?P<title>.*?)</span>\s*'
    r'<form method="post" action="/[^/]+/todos/(?P<id>\d+)/toggle">',
    re.DOTALL,
)
AGGREGATE_ROW = re.compile(
    r'<tr class="(?P<state>done|active)"><td><a href="/[^/]+/">(?P<tenant>[^<]+)</a></td>'
    r'<td>(?P<id>\d+)</td>\s*<td class="title">(?P<title>.*?)</td>',
    re.DOTALL,
)
INDEX_ROW = re.compile(
    r'<tr><td><a href="/[^/]+/">(?P<tenant>[^<]+)</a></td>'
    r"<td>(?P<total>\d+)</td><td>(?P<done>\d+)</td>"
)


@dataclass(frozen=True)
class Todo:
    """A todo as a page shows it: id, title (unescaped) and whether it is done."""

    id: int
    title: str
    done: bool


@dataclass
class Server:
    """The uvicorn subprocess serving the todo app."""

    process: subprocess.Popen[bytes]
    log: Path
    data: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_server(directory: Path) -> Server:
    data = directory / "data"
    log = directory / "uvicorn.log"
    env = {**os.environ, "TODO_DATA_DIR": str(data), "DORM_SECRET": SECRET}
    command = [
        sys.executable, "-m", "uvicorn", "examples.todo.app:app",
        "--host", "127.0.0.1", "--port", "0",
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    server = Server(process=process, log=log, data=data)

    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        match = LISTENING.search(log.read_text(errors="replace"))
        if match:
            server.port = int(match.group(1))
            return server
        if process.poll() is not None:
            break
        time.sleep(0.05)
    stop_server(server)
    pytest.fail(f"uvicorn did not start within {STARTUP_TIMEOUT} s:\n{log.read_text()}")


def stop_server(server: Server) -> None:
    """Stop the server with SIGTERM, which uvicorn handles gracefully, or kill it if it hangs."""
    if server.process.poll() is None:
        server.process.terminate()
    try:
        server.process.wait(SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(tmp_path_factory.mktemp("todo"))
    try:
        yield started
    finally:
        stop_server(started)


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, trust_env=False, timeout=10.0) as http:
        yield http


@pytest.fixture
def new_tenant() -> Callable[[], str]:
    """Return a factory of fresh tenant names, so every test starts from empty tenants."""
    return lambda: f"t{uuid.uuid4().hex[:12]}"


def add_todo(client: httpx.Client, tenant: str, title: str) -> httpx.Response:
    return client.post(f"/{tenant}/todos", data={"title": title})


def read_todos(client: httpx.Client, tenant: str) -> list[Todo]:
    response = client.get(f"/{tenant}/")
    assert response.status_code == 200, response.text
    return [
        Todo(int(match["id"]), html.unescape(match["title"]), match["state"] == "done")
        for match in TODO_ITEM.finditer(response.text)
    ]


def read_aggregate(client: httpx.Client, tenants: set[str], **params: str) -> list[tuple[str, str]]:
    """Read the (tenant, title) rows of ``tenants`` from the all-todos page."""
    response = client.get("/_aggregate/", params=params)
    assert response.status_code == 200, response.text
    return [
        (match["tenant"], html.unescape(match["title"]))
        for match in AGGREGATE_ROW.finditer(response.text)
        if match["tenant"] in tenants
    ]


def poll(read: Callable[[], object], expected: object) -> object:
    """Call ``read`` until it returns ``expected`` or MIRROR_TIMEOUT ends, then return its last value."""
    deadline = time.monotonic() + MIRROR_TIMEOUT
    value = read()
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        value = read()
    return value


# -- the example's own consistency -------------------------------------------


def is_application_object(name: str | None, kind: str, parent: object) -> bool:
    """Leave out the table where dict migrations record their versions."""
    return name is None or not name.startswith("_dorm_")


def test_migrations_match_models(tmp_path: Path) -> None:
    with (
        Dorm(root=tmp_path, migrations=MIGRATIONS) as dorm,
        dorm.engine("acme").connect() as connection,
    ):
        context = MigrationContext.configure(
            connection, opts={"include_name": is_application_object}
        )
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_render_escapes_values() -> None:
    page = render("<p title='{a}'>{b}{c}</p>", a="x' onmouseover='y", b="<b>&", c=Markup("<i>"))

    assert page == "<p title='x&#x27; onmouseover=&#x27;y'>&lt;b&gt;&amp;<i></p>"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/explorer", True),
        ("/explorer/", True),
        ("/explorer/static/explorer.js", True),
        ("/api/tenants", True),
        ("/api/tenants/acme/tables", True),
        ("/openapi.json", True),
        ("/acme/api/db", True),
        ("/acme/api/db/query/raw", True),
        ("/", False),
        ("/acme/", False),
        ("/acme/todos", False),
        ("/acme/todos/1/toggle", False),
        ("/_aggregate/", False),
        ("/apis/", False),
        ("/acme/api/", False),
    ],
)
def test_server_paths(path: str, expected: bool) -> None:
    assert is_server_path(path) is expected


# -- one tenant's list -------------------------------------------------------


def test_add_redirects_to_list(client: httpx.Client, new_tenant: Callable[[], str]) -> None:
    tenant = new_tenant()

    response = add_todo(client, tenant, "write the report")

    assert response.status_code == 303
    assert response.headers["location"] == f"/{tenant}/"
    assert [todo.title for todo in read_todos(client, tenant)] == ["write the report"]


def test_toggle_flips_done(client: httpx.Client, new_tenant: Callable[[], str]) -> None:
    tenant = new_tenant()
    add_todo(client, tenant, "first")
    add_todo(client, tenant, "second")
    first, _ = read_todos(client, tenant)

    toggled = client.post(f"/{tenant}/todos/{first.id}/toggle")
    after_one = read_todos(client, tenant)
    client.post(f"/{tenant}/todos/{first.id}/toggle")
    after_two = read_todos(client, tenant)

    assert toggled.status_code == 303
    assert [todo.done for todo in after_one] == [True, False]
    assert [todo.done for todo in after_two] == [False, False]


def test_delete_removes_one(client: httpx.Client, new_tenant: Callable[[], str]) -> None:
    tenant = new_tenant()
    add_todo(client, tenant, "keep")
    add_todo(client, tenant, "drop")
    keep, drop = read_todos(client, tenant)

    response = client.post(f"/{tenant}/todos/{drop.id}/delete")

    assert response.status_code == 303
    assert read_todos(client, tenant) == [keep]


@pytest.mark.parametrize("action", ["toggle", "delete"])
def test_missing_todo_is_404(
    client: httpx.Client, new_tenant: Callable[[], str], action: str
) -> None:
    tenant = new_tenant()
    add_todo(client, tenant, "only")

    response = client.post(f"/{tenant}/todos/999/{action}")

    assert response.status_code == 404


@pytest.mark.parametrize("title", ["", "   ", "x" * 201])
def test_invalid_title_is_400(
    client: httpx.Client, new_tenant: Callable[[], str], title: str
) -> None:
    tenant = new_tenant()

    response = add_todo(client, tenant, title)

    assert response.status_code == 400
    assert read_todos(client, tenant) == []


def test_viewing_creates_no_tenant(
    client: httpx.Client, server: Server, new_tenant: Callable[[], str]
) -> None:
    tenant = new_tenant()

    response = client.get(f"/{tenant}/")

    assert response.status_code == 200
    assert not (server.data / f"{tenant}.db").exists()


def test_tenant_name_is_canonicalised(client: httpx.Client, new_tenant: Callable[[], str]) -> None:
    tenant = new_tenant()
    add_todo(client, tenant.upper(), "folded")

    redirect = client.get(f"/{tenant.upper()}/")

    assert redirect.status_code == 308
    assert redirect.headers["location"] == f"/{tenant}/"
    assert [todo.title for todo in read_todos(client, tenant)] == ["folded"]


# -- tenants and the aggregate -----------------------------------------------


def test_tenants_are_isolated(
    client: httpx.Client, server: Server, new_tenant: Callable[[], str]
) -> None:
    acme, globex = new_tenant(), new_tenant()

    add_todo(client, acme, "acme's todo")
    add_todo(client, globex, "globex's todo")

    assert [todo.title for todo in read_todos(client, acme)] == ["acme's todo"]
    assert [todo.title for todo in read_todos(client, globex)] == ["globex's todo"]
    assert (server.data / f"{acme}.db").exists()
    assert (server.data / f"{globex}.db").exists()


def test_aggregate_has_every_tenant(client: httpx.Client, new_tenant: Callable[[], str]) -> None:
    acme, globex = new_tenant(), new_tenant()
    add_todo(client, acme, "ship")
    add_todo(client, acme, "invoice")
    add_todo(client, globex, "hire")
    expected = [(acme, "ship"), (acme, "invoice"), (globex, "hire")]
    expected.sort(key=lambda row: row[0])

    rows = poll(lambda: read_aggregate(client, {acme, globex}), expected)

    assert rows == expected


def test_aggregate_follows_delete(client: httpx.Client, new_tenant: Callable[[], str]) -> None:
    tenant = new_tenant()
    add_todo(client, tenant, "keep")
    add_todo(client, tenant, "drop")
    _, drop = read_todos(client, tenant)
    client.post(f"/{tenant}/todos/{drop.id}/delete")

    rows = read_aggregate(client, {tenant}, wait="1")

    assert rows == [(tenant, "keep")]


def test_index_counts_from_aggregate(client: httpx.Client, new_tenant: Callable[[], str]) -> None:
    acme, globex = new_tenant(), new_tenant()
    add_todo(client, acme, "one")
    add_todo(client, acme, "two")
    add_todo(client, globex, "three")
    first = read_todos(client, acme)[0]
    client.post(f"/{acme}/todos/{first.id}/toggle")

    def read_counts() -> dict[str, tuple[int, int]]:
        text = client.get("/").text
        return {
            match["tenant"]: (int(match["total"]), int(match["done"]))
            for match in INDEX_ROW.finditer(text)
            if match["tenant"] in (acme, globex)
        }

    counts = poll(read_counts, {acme: (2, 1), globex: (1, 0)})

    assert counts == {acme: (2, 1), globex: (1, 0)}


# -- hostile input -----------------------------------------------------------


def test_script_title_renders_as_text(
    client: httpx.Client, new_tenant: Callable[[], str]
) -> None:
    tenant = new_tenant()
    title = "<script>alert(1)</script>"
    add_todo(client, tenant, title)

    tenant_html = client.get(f"/{tenant}/").text
    read_aggregate(client, {tenant}, wait="1")
    aggregate_html = client.get("/_aggregate/").text

    assert title not in tenant_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in tenant_html
    assert title not in aggregate_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in aggregate_html


def test_pages_forbid_script(client: httpx.Client) -> None:
    response = client.get("/")

    assert "script-src" not in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]


INVALID_NAMES = ["a.b", "-x", "_x", "x" * 64, "a%20b", "%C3%A9t%C3%A9", "con"]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_tenant_is_400(client: httpx.Client, name: str) -> None:
    page = client.get(f"/{name}/")
    posted = client.post(f"/{name}/todos", data={"title": "x"})
    opened = client.get("/", params={"tenant": name})

    assert page.status_code == 400
    assert "invalid tenant name" in page.text
    assert posted.status_code == 400
    assert opened.status_code == 400


@pytest.mark.parametrize("name", ["api", "explorer", "Explorer"])
def test_reserved_tenant_is_400(client: httpx.Client, name: str) -> None:
    response = client.get("/", params={"tenant": name})

    assert response.status_code == 400
    assert "reserved" in response.text


def test_invalid_tenant_creates_no_file(client: httpx.Client, server: Server) -> None:
    before = sorted(path.name for path in server.data.glob("*.db"))

    for name in INVALID_NAMES:
        client.post(f"/{name}/todos", data={"title": "x"})

    assert sorted(path.name for path in server.data.glob("*.db")) == before


# -- the explorer ------------------------------------------------------------


def test_explorer_link_opens(client: httpx.Client, new_tenant: Callable[[], str]) -> None:
    tenant = new_tenant()
    add_todo(client, tenant, "look at me")

    page = client.get(f"/{tenant}/").text
    explorer = client.get("/explorer/")
    script = client.get("/explorer/static/explorer.js")

    assert f'href="/explorer/#tenant={tenant}&amp;table=todos"' in page
    assert explorer.status_code == 200
    assert "dorm explorer" in explorer.text
    assert script.status_code == 200


def test_explorer_api_needs_secret(client: httpx.Client, new_tenant: Callable[[], str]) -> None:
    tenant = new_tenant()
    add_todo(client, tenant, "counted")

    anonymous = client.get(f"/api/tenants/{tenant}/tables")
    authorised = client.get(
        f"/api/tenants/{tenant}/tables", headers={"Authorization": f"Bearer {SECRET}"}
    )
    tables = {table["name"]: table["rows"] for table in authorised.json()["tables"]}

    assert anonymous.status_code == 401
    assert authorised.status_code == 200
    assert tables["todos"] == 1


def test_sql_endpoint_reads_tenant(client: httpx.Client, new_tenant: Callable[[], str]) -> None:
    tenant = new_tenant()
    add_todo(client, tenant, "over SQL")

    response = client.post(
        f"/{tenant}/api/db/query/raw",
        json={"sql": "SELECT title, done FROM todos"},
        headers={"Authorization": f"Bearer {SECRET}"},
    )

    assert response.status_code == 200
    assert response.json()["result"]["rows"] == [["over SQL", 0]]
