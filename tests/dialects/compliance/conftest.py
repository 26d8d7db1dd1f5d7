"""Set up the compliance suite: register the dialect and its provisioning hooks.

A plain ``pytest`` run of the repository also loads this file while it walks
the directory. It therefore loads nothing from ``sqlalchemy.testing`` unless
SQLAlchemy's pytest plugin is active, which only ``pytest.ini`` in this
directory does (``-p sqlalchemy.testing.plugin.pytestplugin``).
"""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import registry

SQLALCHEMY_PLUGIN = "sqlalchemy.testing.plugin.pytestplugin"

registry.register("dorm.http", "dorm_sqlalchemy.dialects.http", "DormHTTPDialect")
registry.register("dorm.https", "dorm_sqlalchemy.dialects.http", "DormHTTPSDialect")


def pytest_configure(config: pytest.Config) -> None:
    # SQLAlchemy's plugin configures the database in pytest_sessionstart,
    # which runs after this hook, so the hooks are in place in time.
    if config.pluginmanager.hasplugin(SQLALCHEMY_PLUGIN):
        from . import provision  # noqa: F401
