"""Create a new Alembic script directory from the dorm template."""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

from mako.template import Template

from dorm_sqlalchemy.errors import DormError

__all__ = ["ScriptDirectoryExists", "init_script_directory"]

# Files copied as they are into the new script directory.
_COPIED_FILES = ("env.py", "script.py.mako", "README")


class ScriptDirectoryExists(DormError, FileExistsError):
    """The script directory or its alembic.ini already exists; nothing was written."""


def init_script_directory(
    path: str | os.PathLike[str],
    *,
    url: str | None = None,
    root: str | os.PathLike[str] | None = None,
    reference_url: str | None = None,
    target_metadata: str | None = None,
    ini_path: str | os.PathLike[str] | None = None,
) -> Path:
    """Create an Alembic script directory for tenant databases and return its path.

    Writes ``env.py``, ``script.py.mako``, ``README`` and an empty
    ``versions/`` into ``path``, and an ``alembic.ini`` into ``ini_path``
    (default: next to ``path``, in its parent folder). Options:

    * ``url``: tenant URL template containing ``{tenant}``, such as
      ``sqlite:////srv/data/{tenant}.db``; or ``root``: folder of
      ``<tenant>.db`` files. Without either, ``dorm-data/`` next to
      alembic.ini.
    * ``reference_url``: the database that ``revision --autogenerate``
      compares with the models when no tenant is given.
    * ``target_metadata``: the models' MetaData as ``module:attribute``,
      for example ``myapp.models:Base.metadata``.

    Raises :class:`ScriptDirectoryExists` if ``path`` is a non-empty folder
    or the alembic.ini exists.
    """
    if url is not None and root is not None:
        raise ValueError("pass url or root, not both: they both say where tenant files live")

    directory = Path(path).resolve()
    ini = Path(ini_path).resolve() if ini_path is not None else directory.parent / "alembic.ini"
    if directory.exists() and any(directory.iterdir()):
        raise ScriptDirectoryExists(
            f"{directory} already exists and is not empty: choose another "
            "folder, or remove it first"
        )
    if ini.exists():
        raise ScriptDirectoryExists(
            f"{ini} already exists: pass ini_path= to write the new "
            "configuration elsewhere, or remove the old file first"
        )

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "versions").mkdir()
    template = resources.files("alembic_ext") / "templates" / "dorm"
    for name in _COPIED_FILES:
        with resources.as_file(template / name) as source:
            shutil.copyfile(source, directory / name)

    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_text(
        _render_ini(
            (template / "alembic.ini.mako").read_text(encoding="utf-8"),
            directory,
            ini,
            url=url,
            root=root,
            reference_url=reference_url,
            target_metadata=target_metadata,
        ),
        encoding="utf-8",
    )
    return directory


def _render_ini(
    template: str,
    directory: Path,
    ini: Path,
    *,
    url: str | None,
    root: str | os.PathLike[str] | None,
    reference_url: str | None,
    target_metadata: str | None,
) -> str:
    if url is not None:
        tenant_location = f"dorm.url = {_escape(url)}"
    elif root is not None:
        tenant_location = f"dorm.root = {_escape(str(Path(root).resolve()))}"
    else:
        tenant_location = "dorm.root = %(here)s/dorm-data"

    if reference_url is not None:
        reference_line = f"dorm.reference_url = {_escape(reference_url)}"
    else:
        reference_line = "# dorm.reference_url = sqlite:///%(here)s/reference.db"

    if target_metadata is not None:
        metadata_line = f"dorm.target_metadata = {_escape(target_metadata)}"
    else:
        metadata_line = "# dorm.target_metadata = myapp.models:Base.metadata"

    return Template(template).render(
        script_location=_script_location(directory, ini),
        tenant_location=tenant_location,
        reference_url=reference_line,
        target_metadata=metadata_line,
    )


def _script_location(directory: Path, ini: Path) -> str:
    # Relative to %(here)s, so the project folder can move; an absolute path
    # when the two sit on different Windows drives.
    try:
        relative = os.path.relpath(directory, ini.parent)
    except ValueError:
        return _escape(str(directory))
    return "%(here)s/" + _escape(Path(relative).as_posix())


def _escape(value: str) -> str:
    """Escape ``%`` for ConfigParser, which would read it as interpolation."""
    return value.replace("%", "%%")
