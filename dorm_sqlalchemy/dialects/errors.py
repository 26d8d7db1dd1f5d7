"""The DB-API 2.0 exceptions of the ``dorm+http`` driver, and their mapping from HTTP error responses.

The hierarchy is the one PEP 249 prescribes, rooted at :class:`Error`, which
also derives from :class:`dorm_sqlalchemy.errors.DormError`. SQLAlchemy wraps
each of them in its own exception of the same name (``IntegrityError`` in
:class:`sqlalchemy.exc.IntegrityError`, and so on), with the driver error in
``.orig``.

The server reports what failed as an HTTP status and ``{"error": "..."}``.
The status comes from SQLite's result code on the server, so the mapping
below uses the status alone, never the text of the message.
"""

from __future__ import annotations

from ..errors import DormError

__all__ = [
    "AuthenticationError",
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NetworkError",
    "NotSupportedError",
    "OperationalError",
    "PermissionDeniedError",
    "ProgrammingError",
    "RollbackIgnoredWarning",
    "TransactionExpiredError",
    "Warning",
    "error_for_status",
]


class Warning(DormError):  # noqa: A001 - the name PEP 249 requires
    """An important warning from the driver (PEP 249); the driver raises none today."""


class Error(DormError):
    """Base class of every error the driver raises (PEP 249).

    ``status`` is the HTTP status of the response that reported the error, or
    ``None`` when the error was found before or without a response.
    """

    def __init__(self, message: str, *, tenant: str | None = None, status: int | None = None):
        super().__init__(message, tenant=tenant)
        self.status = status


class InterfaceError(Error):
    """The driver was misused, or the server returned a response outside the protocol."""


class DatabaseError(Error):
    """An error reported by the server about the database."""


class DataError(DatabaseError):
    """A value that cannot be sent, such as an integer outside SQLite's 64-bit range."""


class OperationalError(DatabaseError):
    """The statement could not run: bad SQL, a time limit, a lock, an unreachable server."""


class IntegrityError(DatabaseError):
    """A constraint rejected the write: UNIQUE, PRIMARY KEY, FOREIGN KEY, CHECK or NOT NULL."""


class InternalError(DatabaseError):
    """The server failed on its side (HTTP 500), for example on a damaged database file."""


class ProgrammingError(DatabaseError):
    """The cursor or connection was used wrongly, for example after ``close()``."""


class NotSupportedError(DatabaseError):
    """A feature the HTTP API does not offer, such as BEGIN, SAVEPOINT or a real rollback."""


class AuthenticationError(OperationalError):
    """The server rejected the credentials (HTTP 401)."""


class PermissionDeniedError(DatabaseError):
    """The token or the server's sandbox does not allow the statement (HTTP 403)."""


class NetworkError(OperationalError):
    """The request did not reach the server, or the response was cut off."""


class TransactionExpiredError(OperationalError):
    """The server no longer knows the connection's transaction (HTTP 410).

    It was idle past its timeout, or the server restarted, and the server
    rolled it back. SQLAlchemy treats this as a disconnect, so the pool
    discards the connection; run the transaction again.
    """


class RollbackIgnoredWarning(UserWarning):
    """``rollback()`` was called after writes that the server had already committed.

    This happens only against a server without interactive transactions (such
    as DORM on Cloudflare), where every statement commits on its own, so there
    is nothing to roll back.
    Turn the warning into an error with
    ``warnings.simplefilter("error", RollbackIgnoredWarning)``.
    """


_ERRORS_BY_STATUS: dict[int, type[Error]] = {
    400: OperationalError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: OperationalError,
    405: InterfaceError,
    408: OperationalError,
    409: IntegrityError,
    410: TransactionExpiredError,
    413: OperationalError,
    422: IntegrityError,
    500: InternalError,
    503: OperationalError,
}

_HINTS_BY_STATUS: dict[int, str] = {
    401: (
        "pass the server's secret as the URL password (dorm+http://:SECRET@host:port/"
        "TENANT/api/db) or as connect_args={'secret': ...}"
    ),
    404: "check the tenant in the URL path, which has the form /TENANT/api/db",
    405: "check that the URL path ends in /TENANT/api/db, the root of the tenant's SQL API",
    410: "the transaction was rolled back on the server; run it again on a new connection",
    413: "send fewer rows per executemany() call; each call is one request",
}


def error_for_status(status: int, message: str, *, url: str, tenant: str | None) -> Error:
    """Build the exception for an error response of the server at ``url``."""
    error_class = _ERRORS_BY_STATUS.get(status)
    if error_class is None:
        error_class = DatabaseError if 400 <= status < 600 else InterfaceError

    text = f"{message} (HTTP {status} from {url})"
    hint = _HINTS_BY_STATUS.get(status)
    if hint is not None:
        text = f"{text}: {hint}"
    return error_class(text, tenant=tenant, status=status)
