"""A notes API in Flask with one SQLite database per tenant, through dorm-sqlalchemy.

Each request names its tenant in the URL (``/t/acme/notes``) or, on the same
routes without the prefix, in the ``X-Tenant`` header. ``before_request``
makes that tenant current with ``dorm.tenant(name)``, and ``teardown_request``
removes the request's session and restores the previous tenant. Run it from
the repository root:

    .venv/bin/flask --app examples.flask_app.app run --port 5000
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session, scoped_session
from werkzeug.exceptions import HTTPException

from dorm_sqlalchemy import Dorm, InvalidTenantName

from .models import MIGRATIONS, Note

__all__ = ["create_app"]

DEFAULT_DATABASE_URL = "sqlite:///dorm-data/notes/{tenant}.db"
TENANT_HEADER = "X-Tenant"

notes = Blueprint("notes", __name__)


class NoteCreate(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=10_000)


class NoteUpdate(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    body: str | None = Field(default=None, max_length=10_000)

    @field_validator("*", mode="before")
    @classmethod
    def reject_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("null is not allowed: leave the field out to keep its value")
        return value


class NoteRead(NoteCreate):
    model_config = ConfigDict(from_attributes=True)

    id: int


def create_app(database_url: str | None = None) -> Flask:
    """Build the app on ``database_url``, a URL template with ``{tenant}`` in the file name.

    The default comes from NOTES_DATABASE_URL, else ``dorm-data/notes/{tenant}.db``.
    Flask has no shutdown hook, so the code that ends the process should
    call ``app.extensions["dorm"].close()`` to dispose the engines.
    """
    url = database_url or os.environ.get("NOTES_DATABASE_URL", DEFAULT_DATABASE_URL)
    dorm = Dorm(url, migrations=MIGRATIONS)

    app = Flask(__name__)
    app.extensions["dorm"] = dorm
    app.extensions["db_session"] = scoped_session(dorm.sessionmaker())
    app.register_error_handler(InvalidTenantName, invalid_tenant_name)
    app.register_error_handler(ValidationError, invalid_body)
    app.register_error_handler(HTTPException, http_error)
    app.register_blueprint(notes, url_prefix="/t/<tenant>")
    app.register_blueprint(notes, name="notes_by_header")
    return app


def db() -> Session:
    """Return the request's session, routed to the request's tenant."""
    return current_app.extensions["db_session"]()


# -- the request's tenant ----------------------------------------------------


@notes.url_value_preprocessor
def pop_tenant(endpoint: str | None, values: dict[str, Any] | None) -> None:
    if values is not None and "tenant" in values:
        g.url_tenant = values.pop("tenant")


@notes.before_request
def enter_tenant() -> None:
    name = g.pop("url_tenant", None)
    if name is None:
        name = request.headers.get(TENANT_HEADER)
    if name is None:
        abort(400, f"missing tenant: use /t/<tenant>/notes or the {TENANT_HEADER} header")

    # dorm.tenant() raises InvalidTenantName before anything is entered.
    scope = ExitStack()
    scope.enter_context(current_app.extensions["dorm"].tenant(name))
    g.tenant_scope = scope


@notes.teardown_request
def leave_tenant(error: BaseException | None) -> None:
    current_app.extensions["db_session"].remove()
    scope = g.pop("tenant_scope", None)
    if scope is not None:
        scope.close()


# -- errors as JSON ----------------------------------------------------------


def invalid_tenant_name(error: InvalidTenantName) -> tuple[Response, int]:
    return jsonify(detail=str(error)), 400


def invalid_body(error: ValidationError) -> tuple[Response, int]:
    return jsonify(detail=error.errors(include_url=False, include_context=False)), 422


def http_error(error: HTTPException) -> tuple[Response, int]:
    return jsonify(detail=error.description), error.code or 500


# -- notes -------------------------------------------------------------------


def get_note_or_404(note_id: int) -> Note:
    note = db().get(Note, note_id)
    if note is None:
        abort(404, f"note {note_id} not found")
    return note


def note_json(note: Note) -> dict[str, Any]:
    return NoteRead.model_validate(note).model_dump()


@notes.post("/notes")
def create_note() -> tuple[dict[str, Any], int]:
    body = NoteCreate.model_validate(request.get_json())
    note = Note(**body.model_dump())
    db().add(note)
    db().commit()
    return note_json(note), 201


@notes.get("/notes")
def list_notes() -> list[dict[str, Any]]:
    return [note_json(note) for note in db().scalars(select(Note).order_by(Note.id))]


@notes.get("/notes/<int:note_id>")
def get_note(note_id: int) -> dict[str, Any]:
    return note_json(get_note_or_404(note_id))


@notes.patch("/notes/<int:note_id>")
def update_note(note_id: int) -> dict[str, Any]:
    changes = NoteUpdate.model_validate(request.get_json())
    note = get_note_or_404(note_id)
    for field, value in changes.model_dump(exclude_unset=True).items():
        setattr(note, field, value)
    db().commit()
    return note_json(note)


@notes.delete("/notes/<int:note_id>")
def delete_note(note_id: int) -> tuple[str, int]:
    db().delete(get_note_or_404(note_id))
    db().commit()
    return "", 204
