"""SQLAlchemy dialects of dorm-sqlalchemy (the ``remote`` extra: httpx).

``dorm+http`` and ``dorm+https`` (:mod:`dorm_sqlalchemy.dialects.http`) run
SQLAlchemy over the HTTP API of ``dorm serve``; :mod:`dorm_sqlalchemy.dialects.dbapi`
is the DB-API driver below them. ``docs/remote-dialect.md`` is the user guide.
"""

from __future__ import annotations

__all__: list[str] = []
