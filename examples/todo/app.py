"""DORM's todo template on dorm-sqlalchemy: a todo list per tenant, an aggregate of all of them.

Run it from the repository root:

    .venv/bin/python -m uvicorn examples.todo.app:app --port 8000

``/<tenant>/`` is a tenant's todo list, kept in its own SQLite file
``<TODO_DATA_DIR>/<tenant>.db``. Every committed write is mirrored to
``<TODO_DATA_DIR>/_aggregate.db``, tagged with the tenant. ``/`` lists the
tenants with their counts and ``/_aggregate/`` every todo, both read from the
aggregate. The same app serves dorm-sqlalchemy's SQL API and explorer
(``/explorer/``, ``/<tenant>/api/db``), which ask for ``DORM_SECRET`` as a
bearer token when it is set. dispatch.py explains why both share the root.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs

from sqlalchemy import Engine, Integer, create_engine, func, inspect, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dorm_sqlalchemy import Dorm, InvalidTenantName, MirrorError, canonical_tenant
from dorm_sqlalchemy.server import create_app

from .dispatch import RESERVED_TENANTS, ExplorerDispatch
from .models import MIGRATIONS, TITLE_MAX_LENGTH, Todo, aggregate_todos
from .pages import (
    AggregateTodo,
    Markup,
    TenantCount,
    aggregate_page,
    error_page,
    index_page,
    tenant_page,
)

__all__ = ["app", "dorm", "todo_app"]

logger = logging.getLogger(__name__)

DATA_DIR = Path(os.environ.get("TODO_DATA_DIR", "dorm-data/todo"))
SECRET = os.environ.get("DORM_SECRET") or None
STATIC_DIR = Path(__file__).parent / "static"

MAX_FORM_BYTES = 16 * 1024
MIRROR_WAIT_SECONDS = 5.0

# The pages run no script, so the policy forbids all script: a value that
# slipped through unescaped still could not run.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

DATA_DIR.mkdir(parents=True, exist_ok=True)
AGGREGATE_URL = URL.create("sqlite", database=str(DATA_DIR / "_aggregate.db"))

dorm = Dorm(
    root=DATA_DIR,
    migrations=MIGRATIONS,
    mirror=AGGREGATE_URL.render_as_string(hide_password=False),
)
aggregate_engine: Engine = create_engine(AGGREGATE_URL)


# -- helpers -----------------------------------------------------------------


def html_response(page: Markup, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(page, status_code=status_code, headers=PAGE_HEADERS)


def see_tenant(tenant: str) -> RedirectResponse:
    """Send the browser back to the tenant's list after a form post."""
    return RedirectResponse(f"/{tenant}/", status_code=303)


def todo_tenant(name: str) -> str:
    """Return the canonical form of a tenant name from a request, or raise a 400."""
    try:
        tenant = canonical_tenant(name)
    except InvalidTenantName as error:
        raise HTTPException(400, str(error)) from error
    if tenant in RESERVED_TENANTS:
        raise HTTPException(
            400,
            f"tenant name {tenant!r} is reserved: /{tenant}/ belongs to the explorer "
            "and the SQL API, so pick another name",
        )
    return tenant


async def read_form(request: Request) -> dict[str, str]:
    """Read an ``application/x-www-form-urlencoded`` body of at most MAX_FORM_BYTES."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise HTTPException(
            415, f"unsupported content type {content_type!r}: post the page's form"
        )

    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(
                413, f"form body larger than {MAX_FORM_BYTES} bytes: shorten the title"
            )

    try:
        fields = parse_qs(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=10
        )
    except (UnicodeDecodeError, ValueError) as error:
        raise HTTPException(
            400, f"invalid form body ({error}): post the page's form"
        ) from error
    return {name: values[0] for name, values in fields.items()}


def check_title(title: str) -> str:
    title = title.strip()
    if not title:
        raise HTTPException(400, "the title is empty: type what there is to do")
    if len(title) > TITLE_MAX_LENGTH:
        raise HTTPException(
            400, f"the title has {len(title)} characters, more than {TITLE_MAX_LENGTH}"
        )
    return title


async def get_todo_or_404(session: AsyncSession, tenant: str, todo_id: int) -> Todo:
    todo = await session.get(Todo, todo_id)
    if todo is None:
        raise HTTPException(404, f"todo {todo_id} not found in tenant {tenant!r}")
    return todo


# -- reading the aggregate ---------------------------------------------------


def read_tenant_counts() -> list[TenantCount]:
    """Count each tenant's todos in the aggregate, with 0 for tenants that have no row there yet."""
    counts = {tenant: TenantCount(tenant, 0, 0) for tenant in dorm.tenants()}
    table = aggregate_todos
    with aggregate_engine.connect() as connection:
        # The mirror creates the table with the first mirrored write.
        if inspect(connection).has_table(table.name):
            query = select(
                table.c.tenant, func.count(), func.sum(table.c.done, type_=Integer)
            ).group_by(table.c.tenant)
            for tenant, total, done in connection.execute(query):
                counts[tenant] = TenantCount(tenant, total, done or 0)
    return sorted(counts.values(), key=lambda count: count.tenant)


def read_aggregate_todos() -> list[AggregateTodo]:
    """Read every tenant's todos from the aggregate, ordered by tenant and id."""
    table = aggregate_todos
    with aggregate_engine.connect() as connection:
        if not inspect(connection).has_table(table.name):
            return []
        query = select(table).order_by(table.c.tenant, table.c.id)
        return [AggregateTodo(**row._mapping) for row in connection.execute(query)]


# -- pages -------------------------------------------------------------------


async def index(request: Request) -> Response:
    name = request.query_params.get("tenant")
    if name is not None:
        return see_tenant(todo_tenant(name))

    counts = await run_in_threadpool(read_tenant_counts)
    return html_response(index_page(counts, explorer_needs_token=SECRET is not None))


async def show_aggregate(request: Request) -> Response:
    assert dorm.mirror is not None
    if request.query_params.get("wait"):
        try:
            await run_in_threadpool(dorm.mirror.flush, MIRROR_WAIT_SECONDS)
        except MirrorError as error:
            logger.warning("waiting for the mirror failed: %s", error)
            raise HTTPException(503, str(error)) from error

    todos = await run_in_threadpool(read_aggregate_todos)
    lag = await run_in_threadpool(dorm.mirror.lag)
    return html_response(aggregate_page(todos, pending_changes=lag.pending))


async def show_tenant(request: Request) -> Response:
    name = request.path_params["tenant"]
    tenant = todo_tenant(name)
    if name != tenant:
        return RedirectResponse(f"/{tenant}/", status_code=308)

    # Viewing a tenant that does not exist shows an empty list without
    # creating its file; the first added todo creates it.
    todos: list[Todo] = []
    if await run_in_threadpool(dorm.exists, tenant):
        async with dorm.async_session(tenant) as session:
            todos = list(await session.scalars(select(Todo).order_by(Todo.id)))
    return html_response(tenant_page(tenant, todos))


async def add_todo(request: Request) -> Response:
    tenant = todo_tenant(request.path_params["tenant"])
    form = await read_form(request)
    title = check_title(form.get("title", ""))

    async with dorm.async_session(tenant) as session:
        session.add(Todo(title=title))
        await session.commit()
    return see_tenant(tenant)


async def toggle_todo(request: Request) -> Response:
    tenant = todo_tenant(request.path_params["tenant"])
    todo_id: int = request.path_params["todo_id"]
    if not await run_in_threadpool(dorm.exists, tenant):
        raise HTTPException(404, f"tenant {tenant!r} does not exist: add a todo to create it")

    async with dorm.async_session(tenant) as session:
        todo = await get_todo_or_404(session, tenant, todo_id)
        todo.done = not todo.done
        await session.commit()
    return see_tenant(tenant)


async def delete_todo(request: Request) -> Response:
    tenant = todo_tenant(request.path_params["tenant"])
    todo_id: int = request.path_params["todo_id"]
    if not await run_in_threadpool(dorm.exists, tenant):
        raise HTTPException(404, f"tenant {tenant!r} does not exist: add a todo to create it")

    async with dorm.async_session(tenant) as session:
        todo = await get_todo_or_404(session, tenant, todo_id)
        await session.delete(todo)
        await session.commit()
    return see_tenant(tenant)


async def on_http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return html_response(error_page(error.status_code, str(error.detail)), error.status_code)


# -- the application ---------------------------------------------------------


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    logger.info("todo app started: tenants in %s, aggregate %s", DATA_DIR, AGGREGATE_URL)
    try:
        yield
    finally:
        aggregate_engine.dispose()
        await dorm.aclose()
        logger.info("todo app stopped")


todo_app = Starlette(
    routes=[
        Route("/", index, methods=["GET"]),
        Route("/_aggregate/", show_aggregate, methods=["GET"]),
        Mount("/_static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        Route("/{tenant}/", show_tenant, methods=["GET"]),
        Route("/{tenant}/todos", add_todo, methods=["POST"]),
        Route("/{tenant}/todos/{todo_id:int}/toggle", toggle_todo, methods=["POST"]),
        Route("/{tenant}/todos/{todo_id:int}/delete", delete_todo, methods=["POST"]),
    ],
    exception_handlers={HTTPException: on_http_error},
    lifespan=lifespan,
)

app = ExplorerDispatch(todo_app, create_app(dorm, secret=SECRET))
