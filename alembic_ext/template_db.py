"""Template databases: a file already at head that new tenants are copied from.

Running the whole revision history for every new tenant costs time that grows
with the history. Instead, :func:`ensure_template` upgrades one database,
``_template-<fingerprint>.db``, once per set of revision files, and
:func:`copy_template` copies it into a new tenant file with SQLite's backup
API. The fingerprint hashes every revision, so adding or editing a revision
gives a new template and never reuses a stale one. Names starting with ``_``
are not valid tenant names, so the template never shows up as a tenant.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from dorm_sqlalchemy.errors import MigrationError

from .engine import create_migration_engine
from .result import MigrationResult

__all__ = ["TEMPLATE_TENANT", "copy_template", "ensure_template", "template_file"]

logger = logging.getLogger(__name__)

TEMPLATE_TENANT = "_template"
"""The tenant name that logs and errors use while a template database is built."""

_build_lock = threading.Lock()
_builder: int | None = None
"""The thread that is building a template now, if any."""


class _TemplateSource(Protocol):
    def fingerprint(self) -> str: ...

    def upgrade(self, tenant: str, engine: Engine) -> MigrationResult: ...


def template_file(directory: Path, fingerprint: str) -> Path:
    """Return the path of the template database for one set of revisions."""
    return directory / f"_template-{fingerprint}.db"


def ensure_template(migrator: _TemplateSource, directory: Path) -> Path:
    """Return the template database at head in ``directory``, building it if missing.

    The template is built in a temporary file and renamed into place, so other
    threads and processes see either no template or a complete one. Two
    processes may build the same template at once; both results are equal.
    """
    global _builder
    path = template_file(directory, migrator.fingerprint())
    if path.exists():
        return path
    if _builder == threading.get_ident():
        raise MigrationError(
            "a new tenant was opened while the template database was being built "
            "in the same thread, so a revision or env.py opens tenants: do not open "
            "tenants from env.py or from a revision",
            tenant=TEMPLATE_TENANT,
        )

    with _build_lock:
        if path.exists():
            return path
        _builder = threading.get_ident()
        try:
            _build(migrator, directory, path)
        finally:
            _builder = None
    # NOTE: templates of older fingerprints stay in the directory, because a
    # process still running older code may use them; delete them by hand.
    return path


def _build(migrator: _TemplateSource, directory: Path, path: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
    engine = create_migration_engine(URL.create("sqlite", database=str(partial)), wal=False)
    try:
        migrator.upgrade(TEMPLATE_TENANT, engine)
    except BaseException:
        engine.dispose()
        _remove_quietly(partial)
        raise
    engine.dispose()

    os.replace(partial, path)
    logger.info("template database %s built", path)


def copy_template(template: str | os.PathLike[str], target: str | os.PathLike[str]) -> bool:
    """Create the database file ``target`` as a copy of ``template``.

    Returns False and leaves ``target`` untouched when it already exists,
    including when another process creates it during the copy. The copy is
    made with SQLite's online backup API into a temporary file, then linked
    into place, so no process ever opens a half-copied tenant.
    """
    source_path = Path(template).resolve()
    target = Path(target).resolve()
    if target.exists():
        return False

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        _backup(source_path, partial)
    except (sqlite3.Error, OSError) as exc:
        _remove_quietly(partial)
        raise MigrationError(
            f"cannot copy the template database {source_path} into {target}: "
            f"{exc}; no tenant file was created. Build the template again with "
            "migrator.template_path(), or open the tenant without a template"
        ) from exc

    try:
        # os.link fails when target exists, so a tenant created meanwhile is
        # never overwritten.
        os.link(partial, target)
        created = True
    except FileExistsError:
        created = False
    except OSError:
        # NOTE: some file systems have no hard links. The rename below can
        # overwrite a tenant that another process created in the instant
        # between the check and the rename.
        created = not target.exists()
        if created:
            os.replace(partial, target)
    finally:
        _remove_quietly(partial)

    if created:
        logger.info("created %s from template %s", target, source_path)
    return created


def _backup(source_path: Path, destination_path: Path) -> None:
    source = sqlite3.connect(f"{source_path.as_uri()}?mode=ro", uri=True)
    try:
        destination = sqlite3.connect(destination_path)
        try:
            source.backup(destination)
        finally:
            destination.close()
    finally:
        source.close()


def _remove_quietly(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + "-journal")):
        try:
            leftover.unlink()
        except FileNotFoundError:
            pass
