"""The body of ``POST /{tenant}/api/db/transaction``: the mode and idle timeout of a new transaction."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from .errors import ApiError
from .transactions import DEFAULT_IDLE_TIMEOUT, MAX_IDLE_TIMEOUT, MODES

__all__ = ["BeginRequest", "parse_begin_request"]

_FIELDS = frozenset({"mode", "idle_timeout"})


@dataclass(frozen=True)
class BeginRequest:
    """How to begin an interactive transaction."""

    mode: str = "immediate"
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT


def parse_begin_request(body: bytes) -> BeginRequest:
    """Parse the optional JSON body of a begin request, or raise :class:`ApiError` (400)."""
    if not body.strip():
        return BeginRequest()
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, f"the request body is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise ApiError(
            400,
            'the request body must be a JSON object such as {"mode": "immediate", '
            '"idle_timeout": 30}, or empty',
        )
    unknown = sorted(set(document) - _FIELDS)
    if unknown:
        raise ApiError(
            400,
            f"unknown field(s) {', '.join(unknown)} in the request body: it takes "
            '"mode" and "idle_timeout"',
        )

    mode = document.get("mode", "immediate")
    if mode not in MODES:
        raise ApiError(
            400,
            f'invalid mode {mode!r}: use "immediate" (takes the write lock at once, the '
            'default) or "deferred" (takes it at the first write)',
        )

    idle_timeout = document.get("idle_timeout", DEFAULT_IDLE_TIMEOUT)
    if (
        isinstance(idle_timeout, bool)
        or not isinstance(idle_timeout, (int, float))
        or not math.isfinite(idle_timeout)
        or not 0 < idle_timeout <= MAX_IDLE_TIMEOUT
    ):
        raise ApiError(
            400,
            f"invalid idle_timeout {idle_timeout!r}: give the seconds as a number above 0 "
            f"and at most {MAX_IDLE_TIMEOUT:g}",
        )
    return BeginRequest(mode=mode, idle_timeout=idle_timeout)
