r"""The ``dorm+http`` and ``dorm+https`` dialects: SQLAlchemy over the HTTP API of ``dorm serve``.

Connecting
----------

The URL names the SQL API root of one tenant, as the server serves it::

    from sqlalchemy import create_engine

    engine = create_engine("dorm+http://:s3cret@127.0.0.1:8787/acme/api/db")
    engine = create_engine("dorm+https://:s3cret@db.example.com/acme/api/db")

The password of the URL is the server's secret (or a token scoped to the
tenant), sent as ``Authorization: Bearer <secret>``; the user name is
ignored. A secret with characters such as ``@``, ``/`` or ``:`` must be
percent-encoded in the URL, so prefer passing it apart::

    engine = create_engine(
        "dorm+http://127.0.0.1:8787/acme/api/db", connect_args={"secret": secret}
    )

Query string options: ``timeout`` (seconds to wait for the server on each
network operation, default 30). ``connect_args`` also takes ``headers`` (a
dict sent with every request) and ``verify`` (httpx's TLS verification: a
bool or a CA bundle path). One engine serves one tenant.

Transactions
------------

The default isolation level is ``"SERIALIZABLE"``: the first statement after
a commit or rollback begins an interactive transaction on the server
(``BEGIN IMMEDIATE``), later statements run in it, and ``commit()`` and
``rollback()`` end it. ``begin_nested()`` uses SAVEPOINT. The server rolls
back a transaction idle past ``transaction_idle_timeout`` (``connect_args``,
30 s by default) and then returns 410, which the dialect reports as a
disconnect so the pool discards the connection. ``isolation_level="AUTOCOMMIT"``
commits each statement on its own. Against a server without interactive
transactions (``POST /transaction`` returns 404 or 405, as DORM on Cloudflare
does) the connection falls back to autocommit, and ``rollback()`` after writes
emits :class:`~dorm_sqlalchemy.dialects.errors.RollbackIgnoredWarning`.

Results and streaming
---------------------

A plain execution fetches the whole result in one ``POST /query/raw``
response, which the server caps (10,000 rows by default). With
``execution_options(stream_results=True)``, ``yield_per`` or
``Connection.stream()``-style use, the dialect opens a server-side cursor that
reads ``POST /query/stream`` (NDJSON) as rows arrive, in bounded memory on
any result size. Rows come back with SQLite's storage classes intact:
integers beyond 2**53, REAL infinities and BLOBs use the tagged JSON forms
of the protocol and arrive as ``int``, ``float`` and ``bytes``.

Reflection
----------

Reflection uses the SQLite dialect's queries (``sqlite_schema`` and the
read-only pragmas ``table_info``, ``table_xinfo``, ``index_list``,
``index_info``, ``foreign_key_list``), which the server's sandbox allows.

Registering
-----------

Installed from the distribution, the entry points ``dorm.http`` and
``dorm.https`` make the URLs work. Without them::

    from sqlalchemy.dialects import registry
    registry.register("dorm.http", "dorm_sqlalchemy.dialects.http", "DormHTTPDialect")
    registry.register("dorm.https", "dorm_sqlalchemy.dialects.http", "DormHTTPSDialect")
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import exc, pool
from sqlalchemy.dialects.sqlite.base import SQLiteDialect, SQLiteExecutionContext
from sqlalchemy.engine import URL

from . import dbapi as dorm_dbapi

__all__ = ["DormHTTPDialect", "DormHTTPSDialect", "dialect"]

logger = logging.getLogger(__name__)

AUTOCOMMIT = "AUTOCOMMIT"
SERIALIZABLE = "SERIALIZABLE"
_URL_OPTIONS = {"timeout": float}


class DormHTTPExecutionContext(SQLiteExecutionContext):
    def create_server_side_cursor(self) -> Any:
        return self._dbapi_connection.cursor(server_side=True)


class DormHTTPDialect(SQLiteDialect):
    """SQLite's dialect, with statements sent to a ``dorm serve`` tenant over HTTP."""

    driver = "http"
    scheme = "http"
    supports_statement_cache = True
    supports_server_side_cursors = True
    execution_ctx_cls = DormHTTPExecutionContext

    @classmethod
    def import_dbapi(cls) -> Any:
        return dorm_dbapi

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        return pool.QueuePool

    def create_connect_args(self, url: URL) -> tuple[list[Any], dict[str, Any]]:
        if not url.host:
            raise exc.ArgumentError(
                f"the URL {url.render_as_string(hide_password=True)} has no host: use "
                f"dorm+{self.scheme}://HOST:PORT/TENANT/api/db"
            )
        if not url.database:
            raise exc.ArgumentError(
                f"the URL {url.render_as_string(hide_password=True)} has no path: add the "
                "tenant's API root, as in /acme/api/db"
            )

        unknown = sorted(set(url.query) - set(_URL_OPTIONS))
        if unknown:
            raise exc.ArgumentError(
                f"unknown option(s) {', '.join(unknown)} in the dorm+{self.scheme} URL: "
                f"the URL takes {', '.join(sorted(_URL_OPTIONS))}; pass anything else "
                "in connect_args"
            )

        api_url = URL.create(
            self.scheme, host=url.host, port=url.port, database=url.database.strip("/")
        ).render_as_string()
        options: dict[str, Any] = {"url": api_url}
        if url.password:
            options["secret"] = url.password
        for name, convert in _URL_OPTIONS.items():
            if name in url.query:
                options[name] = convert(url.query[name])
        return [], options

    def _get_server_version_info(self, connection: Any) -> tuple[int, ...]:
        text = connection.exec_driver_sql("SELECT sqlite_version()").scalar()
        return tuple(int(part) for part in str(text).split(".") if part.isdigit())

    def initialize(self, connection: Any) -> None:
        super().initialize(connection)
        version = self.server_version_info or dorm_dbapi.sqlite_version_info
        if version < (3, 35):
            self.insert_returning = self.update_returning = self.delete_returning = False
        if version < (3, 32):
            self.insertmanyvalues_max_parameters = 999
        logger.info("dorm+%s: the server runs SQLite %s", self.scheme, ".".join(map(str, version)))

    # -- isolation ---------------------------------------------------------------

    def get_isolation_level_values(self, dbapi_connection: Any) -> list[str]:
        return [AUTOCOMMIT, SERIALIZABLE]

    def get_isolation_level(self, dbapi_connection: Any) -> str:
        # A server without interactive transactions commits every statement.
        if dbapi_connection.autocommit or dbapi_connection.transactions_supported is False:
            return AUTOCOMMIT
        return SERIALIZABLE

    def set_isolation_level(self, dbapi_connection: Any, level: str) -> None:
        dbapi_connection.autocommit = level == AUTOCOMMIT

    def is_disconnect(self, e: Any, connection: Any, cursor: Any) -> bool:
        if isinstance(e, (dorm_dbapi.NetworkError, dorm_dbapi.TransactionExpiredError)):
            return True
        return isinstance(e, dorm_dbapi.ProgrammingError) and connection is not None and bool(
            getattr(connection, "closed", False)
        )


class DormHTTPSDialect(DormHTTPDialect):
    """The ``dorm+https`` dialect: the same as ``dorm+http`` over TLS."""

    driver = "https"
    scheme = "https"
    supports_statement_cache = True


dialect = DormHTTPDialect
