"""The ``dorm`` command-line tool: create, list, drop, back up and query tenant databases.

The console script ``dorm`` calls :func:`main`; ``python -m dorm_sqlalchemy.cli``
does the same. See ``docs/cli.md`` for the user guide.
"""

from __future__ import annotations

from .app import COMMANDS, build_parser, main
from .command import Command

__all__ = ["COMMANDS", "Command", "build_parser", "main"]
