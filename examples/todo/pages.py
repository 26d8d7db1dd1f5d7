"""HTML pages of the todo app, built with ``html.escape`` on every value.

:func:`render` fills a template with values and escapes each one unless it is
already :class:`Markup`, so a todo titled ``<script>alert(1)</script>`` shows
as text. The pages load no script and take their style from
``/_static/todo.css``, which lets the app send a Content-Security-Policy that
forbids inline script as a second line of defence.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .models import TITLE_MAX_LENGTH, Todo

__all__ = [
    "AggregateTodo",
    "Markup",
    "TenantCount",
    "aggregate_page",
    "error_page",
    "index_page",
    "render",
    "tenant_page",
]


class Markup(str):
    """Text that is already HTML, inserted by :func:`render` without escaping."""


@dataclass(frozen=True)
class TenantCount:
    """A tenant's number of todos, and of done ones, as stored in the aggregate database."""

    tenant: str
    total: int
    done: int


@dataclass(frozen=True)
class AggregateTodo:
    """A todo row of the aggregate database, tagged with its tenant."""

    tenant: str
    id: int
    title: str
    done: bool
    created_at: datetime | None


def render(template: str, **values: object) -> Markup:
    """Fill ``template`` (``str.format`` syntax) with ``values``, escaping all but Markup."""
    escaped = {
        name: value if isinstance(value, Markup) else html.escape(str(value), quote=True)
        for name, value in values.items()
    }
    return Markup(template.format(**escaped))


def join(parts: Iterable[Markup]) -> Markup:
    return Markup("".join(parts))


def layout(title: str, body: Markup) -> Markup:
    return render(
        """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/_static/todo.css">
</head>
<body>
<nav><a href="/">Tenants</a> <a href="/_aggregate/">All todos (aggregate)</a> <a href="/explorer/">Explorer</a></nav>
<main>
{body}
</main>
</body>
</html>
""",
        title=title,
        body=body,
    )


def index_page(counts: Sequence[TenantCount], *, explorer_needs_token: bool) -> Markup:
    """Render the tenant list with each tenant's todo counts, read from the aggregate."""
    rows = join(
        render(
            """<tr><td><a href="/{tenant}/">{tenant}</a></td><td>{total}</td><td>{done}</td>
<td><a href="/explorer/">explorer</a> <code>/{tenant}/api/db</code></td></tr>
""",
            tenant=count.tenant,
            total=count.total,
            done=count.done,
        )
        for count in counts
    )
    if not counts:
        rows = Markup('<tr><td colspan="4">No tenants yet: open one below.</td></tr>')
    token_hint = (
        "The explorer asks for the server secret (DORM_SECRET)."
        if explorer_needs_token
        else "The explorer needs no token: the app has no DORM_SECRET and answers loopback hosts only."
    )
    body = render(
        """<h1>Todo lists, one SQLite database per tenant</h1>
<form method="get" action="/" class="inline">
<label for="tenant">Open a tenant</label>
<input id="tenant" name="tenant" required maxlength="63" pattern="[A-Za-z0-9][A-Za-z0-9_-]*" placeholder="acme">
<button type="submit">Open</button>
</form>
<table>
<thead><tr><th>Tenant</th><th>Todos</th><th>Done</th><th>Data</th></tr></thead>
<tbody>
{rows}</tbody>
</table>
<p class="note">Counts come from the aggregate database, which receives every tenant's
committed writes a moment after they happen. {token_hint} In the explorer, pick the
tenant in its list; <code>/&lt;tenant&gt;/api/db</code> is the tenant's SQL endpoint for
Outerbase Studio.</p>
""",
        rows=rows,
        token_hint=token_hint,
    )
    return layout("Todo tenants", body)


def tenant_page(tenant: str, todos: Sequence[Todo]) -> Markup:
    """Render one tenant's todo list with its add, toggle and delete forms."""
    done = sum(1 for todo in todos if todo.done)
    items = join(_todo_item(tenant, todo) for todo in todos)
    if not todos:
        items = Markup('<li class="empty">Nothing to do yet.</li>')
    body = render(
        """<h1>Todos of <span class="tenant">{tenant}</span></h1>
<form method="post" action="/{tenant}/todos" class="inline">
<label for="title">New todo</label>
<input id="title" name="title" required maxlength="{max_length}" autofocus>
<button type="submit">Add</button>
</form>
<p class="note">{total} todo(s), {done} done, {active} active.</p>
<ul class="todos">
{items}</ul>
<p class="note">This list is the file <code>{tenant}.db</code>. Open it in the
<a href="/explorer/#tenant={tenant}&amp;table=todos">explorer</a>, or connect
Outerbase Studio to <code>/{tenant}/api/db</code>.</p>
""",
        tenant=tenant,
        max_length=TITLE_MAX_LENGTH,
        total=len(todos),
        done=done,
        active=len(todos) - done,
        items=items,
    )
    return layout(f"Todos of {tenant}", body)


def _todo_item(tenant: str, todo: Todo) -> Markup:
    return render(
        """<li class="{state}"><span class="title">{title}</span>
<form method="post" action="/{tenant}/todos/{id}/toggle"><button type="submit">{toggle}</button></form>
<form method="post" action="/{tenant}/todos/{id}/delete"><button type="submit">Delete</button></form>
</li>
""",
        state="done" if todo.done else "active",
        title=todo.title,
        tenant=tenant,
        id=todo.id,
        toggle="Mark active" if todo.done else "Mark done",
    )


def aggregate_page(todos: Sequence[AggregateTodo], *, pending_changes: int) -> Markup:
    """Render every tenant's todos as stored in the aggregate database."""
    rows = join(
        render(
            """<tr class="{state}"><td><a href="/{tenant}/">{tenant}</a></td><td>{id}</td>
<td class="title">{title}</td><td>{done}</td><td>{created_at}</td></tr>
""",
            state="done" if todo.done else "active",
            tenant=todo.tenant,
            id=todo.id,
            title=todo.title,
            done="yes" if todo.done else "no",
            created_at=todo.created_at or "",
        )
        for todo in todos
    )
    if not todos:
        rows = Markup('<tr><td colspan="5">The aggregate holds no todos yet.</td></tr>')
    body = render(
        """<h1>All todos, from the aggregate database</h1>
<p class="note">Every committed write of every tenant is copied to
<code>_aggregate.db</code> with the tenant in the <code>tenant</code> column.
Changes not yet applied: {pending}.</p>
<form method="get" action="/_aggregate/" class="inline">
<input type="hidden" name="wait" value="1">
<button type="submit">Wait for the mirror, then reload</button>
</form>
<table>
<thead><tr><th>Tenant</th><th>Id</th><th>Title</th><th>Done</th><th>Created</th></tr></thead>
<tbody>
{rows}</tbody>
</table>
""",
        pending=pending_changes,
        rows=rows,
    )
    return layout("All todos", body)


def error_page(status_code: int, message: str) -> Markup:
    """Render an error with its HTTP status and the reason."""
    body = render(
        """<h1>Error {status_code}</h1>
<p class="error">{message}</p>
<p><a href="/">Back to the tenants</a></p>
""",
        status_code=status_code,
        message=message,
    )
    return layout(f"Error {status_code}", body)
