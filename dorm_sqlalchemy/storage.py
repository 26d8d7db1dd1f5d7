"""Where tenant databases live: a directory of files, or memory.

A registry is built from a URL template such as ``sqlite:///data/{tenant}.db``.
The template is parsed once with :func:`sqlalchemy.engine.make_url`; a
tenant's URL is then made with ``URL.set(database=...)`` from the canonical
name, never by formatting user input into a URL string. Canonical names hold
only ``[a-z0-9_-]``, so the file always lands in the template's directory.

``sqlite://`` and ``sqlite:///:memory:`` give in-memory tenants. Each one is a
database of SQLite's ``memdb`` VFS, which every connection of the process can
open by name and which takes real locks (unlike a shared-cache database), so
threads, async connections and the busy timeout behave as with files. The
registry keeps one connection open per in-memory tenant so that its data
lives as long as the registry.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from .naming import TenantName, is_valid_tenant

__all__ = ["TenantStorage", "FileStorage", "MemoryStorage", "storage_from_url"]

PLACEHOLDER = "{tenant}"
SIDE_FILE_SUFFIXES = ("-wal", "-shm", "-journal")

_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"}
_TENANT_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


class TenantStorage:
    """Maps canonical tenant names to database URLs and lists existing tenants."""

    in_memory: bool

    def sync_url(self, tenant: TenantName) -> URL:
        raise NotImplementedError

    def async_url(self, tenant: TenantName) -> URL:
        return self.sync_url(tenant).set(drivername="sqlite+aiosqlite")

    def exists(self, tenant: TenantName) -> bool:
        raise NotImplementedError

    def tenants(self) -> Iterator[TenantName]:
        raise NotImplementedError

    def prepare(self, tenant: TenantName) -> None:
        """Make sure a database for ``tenant`` can be opened (directory, keeper)."""

    def connect(self, tenant: TenantName, *, create: bool = True) -> sqlite3.Connection:
        """Open a plain ``sqlite3`` connection to the tenant's database.

        With ``create=False`` a missing database raises ``sqlite3.OperationalError``
        instead of being created, even if it is dropped between a check and the call.
        """
        raise NotImplementedError

    def size(self, tenant: TenantName) -> int:
        raise NotImplementedError

    def remove(self, tenant: TenantName) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the storage holds open."""

    def describe(self) -> str:
        raise NotImplementedError


class FileStorage(TenantStorage):
    """Tenant databases as files ``<directory>/<prefix><tenant><suffix>``."""

    in_memory = False

    def __init__(self, template: URL) -> None:
        database = template.database or ""
        path = Path(database)
        template_text = f"sqlite:///{database}"
        name = path.name
        if PLACEHOLDER not in name or name.count(PLACEHOLDER) != 1:
            raise ValueError(
                f"invalid URL template {template_text!r}: the file "
                f"name must contain {PLACEHOLDER} exactly once, for example "
                "'sqlite:///data/{tenant}.db'"
            )
        if PLACEHOLDER in str(path.parent):
            raise ValueError(
                f"invalid URL template {template_text!r}: {PLACEHOLDER} "
                "may appear only in the file name, not in a directory"
            )
        leftover = name.replace(PLACEHOLDER, "")
        suffix = name.partition(PLACEHOLDER)[2]
        if not any(ch not in _TENANT_CHARACTERS for ch in suffix):
            # Without a character that tenant names cannot contain after
            # {tenant}, tenant "a-wal" would be tenant "a"'s write-ahead log.
            raise ValueError(
                f"invalid URL template {template_text!r}: the file name must go on after "
                f"{PLACEHOLDER} with an extension such as '.db', so that no tenant's "
                "file can be another tenant's -wal, -shm or -journal file"
            )
        if "{" in leftover or "}" in leftover:
            raise ValueError(
                f"invalid URL template {template_text!r}: the only "
                f"placeholder allowed is {PLACEHOLDER}"
            )

        # Resolve now, so a later os.chdir() cannot move the tenants.
        self.directory = Path(os.path.abspath(path.parent))
        self.prefix, _, self.suffix = name.partition(PLACEHOLDER)
        self._template = template

    def path(self, tenant: TenantName) -> Path:
        return self.directory / f"{self.prefix}{tenant}{self.suffix}"

    def sync_url(self, tenant: TenantName) -> URL:
        return self._template.set(drivername="sqlite", database=str(self.path(tenant)))

    def exists(self, tenant: TenantName) -> bool:
        return self.path(tenant).is_file()

    def tenants(self) -> Iterator[TenantName]:
        yield from sorted(self._scan())

    def _scan(self) -> Iterator[TenantName]:
        try:
            entries = os.listdir(self.directory)
        except FileNotFoundError:
            return
        for entry in entries:
            if not (entry.startswith(self.prefix) and entry.endswith(self.suffix)):
                continue
            tenant = entry[len(self.prefix) : len(entry) - len(self.suffix)]
            # A canonical name maps back to itself; anything else is not a tenant.
            if is_valid_tenant(tenant) and tenant == tenant.lower():
                if (self.directory / entry).is_file():
                    yield tenant

    def prepare(self, tenant: TenantName) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def connect(self, tenant: TenantName, *, create: bool = True) -> sqlite3.Connection:
        if not create:
            return sqlite3.connect(
                self.path(tenant).as_uri() + "?mode=rw",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
        self.prepare(tenant)
        return sqlite3.connect(
            self.path(tenant), isolation_level=None, check_same_thread=False
        )

    def size(self, tenant: TenantName) -> int:
        path = self.path(tenant)
        total = path.stat().st_size
        wal = path.with_name(path.name + "-wal")
        if wal.exists():
            total += wal.stat().st_size
        return total

    def remove(self, tenant: TenantName) -> None:
        path = self.path(tenant)
        for suffix in SIDE_FILE_SUFFIXES:
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        path.unlink(missing_ok=True)

    def describe(self) -> str:
        return str(self.path("{tenant}")).replace("{tenant}", PLACEHOLDER)


class MemoryStorage(TenantStorage):
    """In-memory tenant databases of SQLite's ``memdb`` VFS, one per tenant."""

    in_memory = True

    def __init__(self) -> None:
        # A random token keeps the databases of two registries apart, because
        # memdb names are shared by the whole process.
        self._token = uuid.uuid4().hex
        self._keepers: dict[TenantName, sqlite3.Connection] = {}
        self._lock = threading.Lock()

    def _database(self, tenant: TenantName) -> str:
        return f"file:/dorm-{self._token}-{tenant}"

    def sync_url(self, tenant: TenantName) -> URL:
        return URL.create(
            "sqlite",
            database=self._database(tenant),
            query={"vfs": "memdb", "uri": "true"},
        )

    def exists(self, tenant: TenantName) -> bool:
        return tenant in self._keepers

    def tenants(self) -> Iterator[TenantName]:
        yield from sorted(self._keepers)

    def prepare(self, tenant: TenantName) -> None:
        with self._lock:
            if tenant not in self._keepers:
                self._keepers[tenant] = self.connect(tenant)

    def connect(self, tenant: TenantName, *, create: bool = True) -> sqlite3.Connection:
        if not create and tenant not in self._keepers:
            raise sqlite3.OperationalError(f"in-memory tenant {tenant!r} does not exist")
        return sqlite3.connect(
            f"{self._database(tenant)}?vfs=memdb",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
        )

    def size(self, tenant: TenantName) -> int:
        keeper = self._keepers[tenant]
        page_count = keeper.execute("PRAGMA page_count").fetchone()[0]
        page_size = keeper.execute("PRAGMA page_size").fetchone()[0]
        return int(page_count * page_size)

    def remove(self, tenant: TenantName) -> None:
        with self._lock:
            keeper = self._keepers.pop(tenant, None)
        if keeper is not None:
            keeper.close()

    def close(self) -> None:
        with self._lock:
            keepers, self._keepers = list(self._keepers.values()), {}
        for keeper in keepers:
            keeper.close()

    def describe(self) -> str:
        return "memory"


def storage_from_url(url: str | URL | None, root: str | os.PathLike[str] | None) -> TenantStorage:
    """Build the storage for a registry from its URL template or root directory."""
    if url is not None and root is not None:
        raise TypeError("pass either a URL template or root=, not both")
    if root is not None:
        return FileStorage(URL.create("sqlite", database=str(Path(root) / "{tenant}.db")))
    if url is None:
        return FileStorage(URL.create("sqlite", database="dorm-data/{tenant}.db"))

    template = make_url(url) if isinstance(url, str) else url
    template_text = url if isinstance(url, str) else template.render_as_string()
    if template.drivername not in _SQLITE_DRIVERS:
        raise ValueError(
            f"unsupported URL template {template_text!r}: tenant "
            "databases are SQLite, so the template must start with sqlite://"
        )
    if template.query and not template.query.get("uri"):
        raise ValueError(
            f"unsupported URL template {template_text!r}: query parameters such as "
            f"{', '.join(sorted(template.query))} are not supported; set connection "
            "options with Dorm(busy_timeout=..., pragmas=...) instead"
        )
    if template.query.get("uri") or (template.database or "").startswith("file:"):
        raise ValueError(
            f"unsupported URL template {template_text!r}: SQLite URI "
            "file names are not supported in templates; use a plain path such as "
            "'sqlite:///data/{tenant}.db'"
        )
    if template.database in (None, "", ":memory:"):
        return MemoryStorage()
    return FileStorage(template)
