"""The error the HTTP API returns: a status code and ``{"error": "..."}``."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import DormError

__all__ = ["ApiError"]


class ApiError(DormError):
    """A request that the API rejects with ``status`` and the JSON body ``{"error": message}``.

    ``headers`` go on the response as well, such as ``Retry-After`` or
    ``WWW-Authenticate``.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        tenant: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, tenant=tenant)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
