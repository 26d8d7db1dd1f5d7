"""Lookup of an Alembic script directory, and the Config that runs it just in time.

:func:`resolve_script_location` accepts what users pass as ``migrations=``: a
script directory (a folder with ``env.py``), an ``alembic.ini``, or a folder
holding an ``alembic.ini``. :meth:`ScriptLocation.build_config` returns an
Alembic ``Config`` with the ini's ``[alembic]`` options but no
``config_file_name``. Stock ``env.py`` files call ``logging.config.fileConfig``
only when ``config_file_name`` is set, so upgrading a tenant inside an
application never reconfigures the application's logging.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.util import CommandError, coerce_resource_to_filename

from dorm_sqlalchemy.errors import MigrationError

__all__ = ["ScriptLocation", "resolve_script_location"]


@dataclass(frozen=True)
class ScriptLocation:
    """An Alembic script directory and the ini options that go with it."""

    directory: Path
    ini_path: Path | None = None
    main_options: Mapping[str, str] = field(default_factory=dict)

    def build_config(self, attributes: Mapping[str, Any] | None = None) -> Config:
        """Return a Config for this script directory that names no config file."""
        config = Config(attributes=dict(attributes or {}))
        for name, value in self.main_options.items():
            # ConfigParser interpolates "%(name)s" again on read, so the
            # already interpolated values need their "%" escaped.
            config.set_main_option(name, value.replace("%", "%%"))
        config.set_main_option("script_location", str(self.directory).replace("%", "%%"))
        return config


def resolve_script_location(source: str | os.PathLike[str]) -> ScriptLocation:
    """Find the script directory that ``source`` names, or raise MigrationError."""
    path = Path(source).expanduser().resolve()

    if path.is_dir() and (path / "env.py").is_file():
        return ScriptLocation(directory=path)
    if path.is_dir() and (path / "alembic.ini").is_file():
        return _location_from_ini(path / "alembic.ini")
    if path.is_file():
        return _location_from_ini(path)

    raise MigrationError(
        f"migrations={str(source)!r} is neither an Alembic script directory "
        "(a folder with env.py and versions/) nor an alembic.ini: create one "
        "with alembic_ext.init_script_directory(), or pass the right path"
    )


def _location_from_ini(ini_path: Path) -> ScriptLocation:
    config = Config(str(ini_path))
    try:
        section = config.get_section(config.config_ini_section)
        script_location = config.get_alembic_option("script_location")
    except (configparser.Error, OSError, UnicodeDecodeError, CommandError) as exc:
        raise MigrationError(
            f"cannot read {ini_path}: {exc}; check that it is an alembic.ini file"
        ) from exc

    if section is None or script_location is None:
        raise MigrationError(
            f"{ini_path} has no script_location in its [{config.config_ini_section}] "
            "section: add `script_location = %(here)s/migrations` (the folder "
            "that holds env.py)"
        )

    # script_location may also name a package resource ("myapp:migrations").
    directory = Path(coerce_resource_to_filename(str(script_location)))
    if not directory.is_absolute() and (ini_path.parent / directory / "env.py").is_file():
        # Alembic resolves a relative script_location against the working
        # directory. Preferring the ini's folder keeps the JIT path
        # independent of where the application was started.
        directory = ini_path.parent / directory
    if not (directory / "env.py").is_file():
        raise MigrationError(
            f"{ini_path} sets script_location to {str(directory)!r}, which has "
            "no env.py: fix script_location, or create the script directory "
            "with alembic_ext.init_script_directory()"
        )

    options = {name: value for name, value in section.items() if name != "here"}
    return ScriptLocation(directory=directory.resolve(), ini_path=ini_path, main_options=options)

