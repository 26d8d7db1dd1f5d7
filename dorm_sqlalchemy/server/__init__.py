"""The HTTP API and data explorer of dorm-sqlalchemy (the ``server`` extra: Starlette and uvicorn).

>>> from dorm_sqlalchemy import Dorm
>>> from dorm_sqlalchemy.server import create_app
>>> app = create_app(Dorm(root="data"), secret="change-me")   # doctest: +SKIP

Run it with any ASGI server, or with ``dorm serve``. ``docs/http-api.md``
describes the protocol, the value encoding, authentication, limits and the
sandbox.
"""

from __future__ import annotations

from .app import create_app
from .errors import ApiError
from .settings import ServerLimits, TokenScope

__all__ = ["ApiError", "ServerLimits", "TokenScope", "create_app"]
