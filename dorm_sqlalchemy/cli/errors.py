"""One-line messages and exit statuses for the exceptions that ``dorm`` reports.

User mistakes and failures the user can act on become ``dorm: error: ...`` on
stderr with status 1 (or 2 for a wrong command line). Any other exception is a
bug in dorm-sqlalchemy and keeps its traceback.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc

from ..errors import DormError, InvalidTenantName
from .command import CommandError

__all__ = ["Failure", "describe_error", "driver_message"]


@dataclass(frozen=True)
class Failure:
    """The message ``dorm`` prints for an error and the exit status it returns."""

    message: str
    exit_status: int


def describe_error(error: Exception) -> Failure | None:
    """Return the message and exit status for ``error``, or ``None`` when it is a bug."""
    if isinstance(error, CommandError):
        return Failure(_one_line(str(error)), error.exit_status)
    if isinstance(error, InvalidTenantName):
        return Failure(_one_line(str(error)), 2)
    if isinstance(error, DormError):
        return Failure(_one_line(str(error)), 1)
    if isinstance(error, sa_exc.DBAPIError):
        return Failure(f"database operation failed: {driver_message(error)}", 1)
    if isinstance(error, sqlite3.Error):
        return Failure(f"SQLite failed: {_one_line(str(error))} ({type(error).__name__})", 1)
    if isinstance(error, OSError):
        return Failure(_describe_os_error(error), 1)
    return None


def driver_message(error: sa_exc.DBAPIError) -> str:
    """Return the driver's own message with its exception class, without SQLAlchemy's SQL echo."""
    original = error.orig
    if original is None:
        return _one_line(str(error))
    kind = f"{type(original).__module__}.{type(original).__name__}"
    return f"{_one_line(str(original))} ({kind})"


def _describe_os_error(error: OSError) -> str:
    if error.strerror and error.filename is not None:
        return f"{error.strerror}: {error.filename}"
    return _one_line(str(error))


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())
