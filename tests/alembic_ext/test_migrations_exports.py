"""The public surface of alembic_ext is declared in __all__."""

from __future__ import annotations

import importlib

import pytest

import alembic_ext

MODULES = [
    "alembic_ext",
    "alembic_ext.bulk",
    "alembic_ext.config",
    "alembic_ext.conventions",
    "alembic_ext.dict_migrations",
    "alembic_ext.engine",
    "alembic_ext.environment",
    "alembic_ext.inspection",
    "alembic_ext.migrator",
    "alembic_ext.result",
    "alembic_ext.runtime",
    "alembic_ext.scaffold",
    "alembic_ext.template_db",
    "alembic_ext.transaction",
]


@pytest.mark.parametrize("name", MODULES)
def test_exports_exist(name):
    module = importlib.import_module(name)

    missing = [member for member in module.__all__ if not hasattr(module, member)]

    assert missing == []


def test_exports_cover_public_names():
    public = {
        name
        for name, value in vars(alembic_ext).items()
        if not name.startswith("_") and not isinstance(value, type(alembic_ext))
    }

    assert public - {"annotations"} == set(alembic_ext.__all__)


def test_migrators_satisfy_protocol(logged_scripts):
    alembic_migrator = alembic_ext.make_migrator(logged_scripts.directory)
    dict_migrator = alembic_ext.make_migrator({1: ["CREATE TABLE t (x)"]})

    assert isinstance(alembic_migrator, alembic_ext.Migrator)
    assert isinstance(dict_migrator, alembic_ext.Migrator)
