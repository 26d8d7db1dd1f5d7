"""SQLAlchemy's third-party dialect compliance suite, collected only by scripts/run_dialect_suite.py.

The file name does not match ``test_*.py``, so a plain ``pytest`` run of the
repository does not collect it: the suite needs SQLAlchemy's pytest plugin and
a ``--dburi``, which the runner supplies.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.testing.suite import *
from sqlalchemy.testing.suite import ServerSideCursorsTest as _ServerSideCursorsTest

from dorm_sqlalchemy.dialects.dbapi import StreamingCursor


class ServerSideCursorsTest(_ServerSideCursorsTest):
    # The suite recognises server-side cursors only for drivers it names
    # (psycopg2, asyncpg, aiosqlite and others) and reports False for any
    # other driver. The dorm+http driver streams rows with StreamingCursor.
    def _is_server_side(self, cursor: Any) -> bool:
        return isinstance(cursor, StreamingCursor)
