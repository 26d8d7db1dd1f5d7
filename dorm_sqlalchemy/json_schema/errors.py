"""The error raised for an invalid JSON Schema table, and JSON Pointer helpers."""

from __future__ import annotations

from ..errors import DormError

__all__ = ["JsonSchemaError", "child_pointer"]


class JsonSchemaError(DormError, ValueError):
    """A JSON Schema that cannot become a SQLite table, or a table that cannot become a schema.

    ``pointer`` is the RFC 6901 JSON Pointer of the offending part of the schema
    (``""`` for the whole document, ``/properties/age/minimum`` for one keyword).
    The message repeats the pointer, states the problem and what to write instead.
    """

    def __init__(self, pointer: str, problem: str, fix: str) -> None:
        location = pointer if pointer else "the schema root"
        super().__init__(f"invalid JSON Schema at {location}: {problem}. {fix}")
        self.pointer = pointer
        self.problem = problem
        self.fix = fix


def child_pointer(pointer: str, *tokens: str | int) -> str:
    """Return ``pointer`` extended by ``tokens``, escaped as RFC 6901 requires."""
    for token in tokens:
        escaped = str(token).replace("~", "~0").replace("/", "~1")
        pointer = f"{pointer}/{escaped}"
    return pointer
