"""SQLAlchemy test provisioning for the ``dorm`` backend name of ``dorm+http://`` URLs.

SQLAlchemy picks provisioning hooks by the URL's backend name, which is
``dorm`` here, and falls back to generic hooks. The server runs SQLite, so
upserts use SQLite's form. SQLite's hooks for ``ATTACH`` of a second schema
file and for temporary tables are not copied, because the server rejects both.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.testing.provision import is_preferred_driver, upsert

__all__: list[str] = []


@is_preferred_driver.for_db("dorm")
def _dorm_is_preferred_driver(cfg: Any, engine: Any) -> bool:
    # The generic hook loads the URL's dialect without its driver, "dorm",
    # which is not registered: only dorm.http and dorm.https exist.
    return True


@upsert.for_db("dorm")
def _dorm_upsert(
    cfg: Any,
    table: Any,
    returning: Any,
    *,
    set_lambda: Any = None,
    sort_by_parameter_order: bool = False,
    index_elements: Any = None,
) -> Any:
    statement = insert(table)
    if set_lambda:
        statement = statement.on_conflict_do_update(set_=set_lambda(statement.excluded))
    else:
        statement = statement.on_conflict_do_nothing()
    return statement.returning(*returning, sort_by_parameter_order=sort_by_parameter_order)
