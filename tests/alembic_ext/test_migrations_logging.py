"""A just-in-time upgrade leaves the host application's logging as it was."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from alembic_ext import make_migrator

# An env.py as many projects have it: it configures logging from the ini
# whenever Alembic names a config file, with fileConfig's default of
# disabling every existing logger.
STOCK_ENV = """
from logging.config import fileConfig

from alembic import context

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

context.configure(connection=config.attributes["connection"])
with context.begin_transaction():
    context.run_migrations()
"""


def logging_state() -> dict[str, Any]:
    root = logging.getLogger()
    loggers = {
        name: (logger.disabled, logger.level, list(logger.handlers))
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    return {"root level": root.level, "root handlers": list(root.handlers), "loggers": loggers}


@pytest.fixture
def host_logging() -> Iterator[None]:
    """Configure logging like an application would, and restore it afterwards."""
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    root.setLevel(logging.ERROR)
    application = logging.getLogger("hostapp.orders")
    application.setLevel(logging.DEBUG)

    yield

    root.removeHandler(handler)
    root.setLevel(saved_level)
    root.handlers[:] = saved_handlers
    application.setLevel(logging.NOTSET)


@pytest.mark.parametrize("env", ["template", "stock"])
@pytest.mark.parametrize("source", ["directory", "ini"])
def test_jit_upgrade_keeps_host_logging(env, source, logged_scripts, make_engine, host_logging):
    if env == "stock":
        (logged_scripts.directory / "env.py").write_text(STOCK_ENV)
    migrations = logged_scripts.directory if source == "directory" else logged_scripts.ini
    before = logging_state()

    result = make_migrator(migrations).upgrade("acme", make_engine("acme"))
    after = logging_state()

    assert result.to_revision == "r3"
    assert after["root level"] == before["root level"]
    assert after["root handlers"] == before["root handlers"]
    for name, (disabled, level, handlers) in before["loggers"].items():
        assert after["loggers"][name] == (disabled, level, handlers), name
    assert logging.getLogger("hostapp.orders").disabled is False


def test_jit_upgrade_logs_story(logged_scripts, make_engine, caplog):
    caplog.set_level(logging.INFO, logger="alembic_ext")

    make_migrator(logged_scripts.directory).upgrade("acme", make_engine("acme"))

    messages = [
        record.getMessage() for record in caplog.records if record.name == "alembic_ext.runtime"
    ]
    assert "tenant acme: upgrade base -> r3" in messages
