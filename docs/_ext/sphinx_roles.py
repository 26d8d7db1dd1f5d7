"""A griffe extension that lets mkdocstrings render the Sphinx markup of our docstrings.

The docstrings use reStructuredText cross-reference roles (:class:`Dorm`,
:meth:`~Dorm.tenant`) and ``::`` before literal blocks. mkdocstrings renders
docstrings as Markdown, where both would show up as raw text, so this
extension turns each role into a code span and each ``::`` into ``:``
before rendering. The Python objects themselves are not changed.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["SphinxRoles", "to_markdown"]

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|exc|data|obj|const):`(?P<tilde>~?)(?P<target>[^`]+)`")
_LITERAL_INTRO = re.compile(r"(?<=\S)::$", re.MULTILINE)


def to_markdown(docstring: str) -> str:
    """Return ``docstring`` with roles as code spans and ``::`` as ``:``."""

    def code_span(match: re.Match[str]) -> str:
        target = match.group("target")
        if match.group("tilde"):
            target = target.rsplit(".", 1)[-1]
        return f"`{target}`"

    return _LITERAL_INTRO.sub(":", _ROLE.sub(code_span, docstring))


class SphinxRoles(griffe.Extension):
    """Rewrite the docstrings of a package once griffe has loaded it."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._rewrite(pkg, seen=set())

    def _rewrite(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._rewrite(member, seen)
