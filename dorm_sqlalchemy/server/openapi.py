"""The OpenAPI 3.0 description of the HTTP API, served at ``GET /openapi.json``."""

from __future__ import annotations

from typing import Any

from .. import __version__
from .settings import ServerLimits

__all__ = ["build_openapi"]

_ERROR_STATUSES = {
    "400": "Invalid request: bad JSON, missing or invalid SQL, more than one statement, invalid parameters, or a result over the row or byte limit.",
    "401": "Missing or invalid token.",
    "403": "The token does not grant the tenant, is read-only, or the sandbox denies the statement.",
    "404": "The tenant does not exist (and the server does not create tenants on first use).",
    "408": "The SQL ran longer than the server's time limit; the request was rolled back.",
    "409": "A UNIQUE, PRIMARY KEY or FOREIGN KEY constraint failed; the request was rolled back.",
    "413": "The request body is larger than the server's limit.",
    "422": "A CHECK, NOT NULL or datatype constraint rejected a value; the request was rolled back.",
    "500": "The database failed on the server side.",
    "503": "The tenant is locked by another writer; retry after the Retry-After seconds.",
}

_VALUE = {
    "description": (
        "A SQLite value: null, a number (INTEGER within +-(2^53-1), or REAL), a string (TEXT), "
        '{"$int": "<digits>"} for larger INTEGERs, {"$real": "Infinity" | "-Infinity"}, '
        'or {"$blob": "<base64>"} for BLOBs.'
    ),
}


def build_openapi(limits: ServerLimits) -> dict[str, Any]:
    """Return the OpenAPI document, with the limits of this server in the descriptions."""
    tenant = {
        "name": "tenant",
        "in": "path",
        "required": True,
        "description": "Tenant name: 1 to 63 ASCII letters, digits, '-' and '_', starting with a letter or digit; case-insensitive.",
        "schema": {"type": "string"},
        "example": "acme",
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "dorm-sqlalchemy HTTP API",
            "version": __version__,
            "description": (
                "SQL over HTTP for the tenant databases of a dorm-sqlalchemy registry, in the "
                "StarbaseDB format that Outerbase Studio's starbase connection speaks. "
                f"Limits of this server: request body {limits.max_body_bytes} bytes; "
                f"{limits.statement_timeout:g} s of SQL per request; /query/raw returns at most "
                f"{limits.max_result_rows} rows and {limits.max_result_bytes} bytes."
            ),
        },
        "security": [{"bearer": []}, {"basic": []}],
        "paths": {
            "/{tenant}/api/db/query/raw": {
                "post": {
                    "summary": "Run one statement, or a transaction of several, and return all rows",
                    "operationId": "queryRaw",
                    "parameters": [tenant],
                    "requestBody": _query_body(with_transaction=True),
                    "responses": {
                        "200": _json_response(
                            "The result of the statement, or a list of results for a transaction.",
                            {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/SingleResponse"},
                                    {"$ref": "#/components/schemas/TransactionResponse"},
                                ]
                            },
                        ),
                        **_error_responses(),
                    },
                }
            },
            "/{tenant}/api/db/query/stream": {
                "post": {
                    "summary": "Run one statement and stream its rows as NDJSON",
                    "operationId": "queryStream",
                    "parameters": [
                        tenant,
                        {
                            "name": "rows",
                            "in": "query",
                            "required": False,
                            "description": "object (default): each row is an object by column name; array: a list in column order.",
                            "schema": {"type": "string", "enum": ["object", "array"]},
                        },
                    ],
                    "requestBody": _query_body(with_transaction=False),
                    "responses": {
                        "200": {
                            "description": (
                                'NDJSON lines: {"metadata": {"columnNames": [...]}}, then {"row": ...} per row, '
                                'then {"metadata": {"rowsRead": n, "rowsWritten": n}}; or {"error": "..."} '
                                "as the last line when the statement fails midway."
                            ),
                            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                        },
                        **_error_responses(),
                    },
                }
            },
            "/api/tenants": {
                "get": {
                    "summary": "List existing tenants with their sizes",
                    "operationId": "listTenants",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 5000},
                        },
                        {
                            "name": "after",
                            "in": "query",
                            "required": False,
                            "description": "The next value of the previous page.",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _json_response(
                            "A page of tenant names, sorted.",
                            {"$ref": "#/components/schemas/TenantList"},
                        ),
                        **_error_responses("400", "401"),
                    },
                }
            },
            "/api/tenants/{tenant}/tables": {
                "get": {
                    "summary": "List the tables and views of a tenant with row counts",
                    "operationId": "listTables",
                    "parameters": [tenant],
                    "responses": {
                        "200": _json_response(
                            "Tables and views, sorted by name.",
                            {"$ref": "#/components/schemas/TableList"},
                        ),
                        **_error_responses("400", "401", "403", "404", "408", "500", "503"),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The server secret or a scoped token.",
                },
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "The token as the whole 'user:password', or as the password.",
                },
            },
            "schemas": _schemas(),
        },
    }


def _query_body(*, with_transaction: bool) -> dict[str, Any]:
    single = {"$ref": "#/components/schemas/Statement"}
    schema: dict[str, Any] = single
    if with_transaction:
        schema = {"oneOf": [single, {"$ref": "#/components/schemas/Transaction"}]}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error_responses(*statuses: str) -> dict[str, Any]:
    chosen = statuses or tuple(_ERROR_STATUSES)
    return {
        status: _json_response(_ERROR_STATUSES[status], {"$ref": "#/components/schemas/Error"})
        for status in chosen
    }


def _schemas() -> dict[str, Any]:
    result = {
        "type": "object",
        "required": ["columns", "rows", "meta"],
        "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": {"type": "array", "items": _VALUE}},
            "meta": {
                "type": "object",
                "required": ["rows_read", "rows_written"],
                "properties": {
                    "rows_read": {"type": "integer", "description": "Rows returned."},
                    "rows_written": {
                        "type": "integer",
                        "description": "Rows inserted, updated or deleted.",
                    },
                },
            },
        },
    }
    statement = {
        "type": "object",
        "required": ["sql"],
        "example": {"sql": "SELECT id, name FROM users WHERE id = ?", "params": [7]},
        "properties": {
            "sql": {
                "type": "string",
                "description": "One SQL statement; a trailing ';' and comments are allowed.",
            },
            "params": {
                "description": "A list for ? placeholders, or an object for :name placeholders.",
                "oneOf": [
                    {"type": "array", "items": _VALUE},
                    {"type": "object", "additionalProperties": _VALUE},
                ],
            },
        },
    }
    return {
        "Statement": statement,
        "Transaction": {
            "type": "object",
            "required": ["transaction"],
            "properties": {
                "transaction": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": "#/components/schemas/Statement"},
                },
            },
        },
        "Result": result,
        "SingleResponse": {
            "type": "object",
            "required": ["result"],
            "properties": {"result": {"$ref": "#/components/schemas/Result"}},
        },
        "TransactionResponse": {
            "type": "object",
            "required": ["result", "transaction"],
            "properties": {
                "result": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}},
                "transaction": {
                    "type": "object",
                    "properties": {"success": {"type": "boolean"}},
                },
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string", "description": "What failed and what to do."}
            },
        },
        "TenantList": {
            "type": "object",
            "required": ["tenants", "next"],
            "properties": {
                "tenants": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "size"],
                        "properties": {
                            "name": {"type": "string"},
                            "size": {
                                "type": "integer",
                                "description": "Bytes of the database file and its WAL.",
                            },
                        },
                    },
                },
                "next": {"type": "string", "nullable": True},
            },
        },
        "TableList": {
            "type": "object",
            "required": ["tenant", "tables"],
            "properties": {
                "tenant": {"type": "string"},
                "tables": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "type", "rows"],
                        "properties": {
                            "name": {"type": "string"},
                            "type": {"type": "string", "enum": ["table", "view"]},
                            "rows": {"type": "integer", "nullable": True},
                            "sql": {"type": "string", "nullable": True},
                        },
                    },
                },
            },
        },
    }
