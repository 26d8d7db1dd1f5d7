"""Alembic environment for dorm-sqlalchemy tenant databases.

This file runs in two ways.

Just in time, inside the application: dorm-sqlalchemy passes the tenant's
connection in ``config.attributes["connection"]``, already inside the one
transaction the whole upgrade runs in. This path must not configure logging,
because the logging belongs to the application.

From the Alembic command line, against tenant files::

    alembic -x tenant=acme upgrade head
    alembic -x tenant=all upgrade head
    alembic -x tenant=acme current
    alembic -x tenant=acme downgrade -1
    alembic -x url=sqlite:///reference.db revision --autogenerate -m "add items"

The tenant files are found through ``dorm.url`` or ``dorm.root`` in
alembic.ini (see alembic_ext.environment for every option).
"""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from alembic_ext.environment import include_name, load_target_metadata, run_for_tenants

config = context.config

# The models' MetaData, for autogenerate. Set dorm.target_metadata in
# alembic.ini (for example myapp.models:Base.metadata) or assign it here. It
# must use alembic_ext.NAMING_CONVENTION: batch mode rebuilds tables and
# loses constraints that have no name.
target_metadata = load_target_metadata(config)


def run_migrations(connection: Connection) -> None:
    """Run the pending revisions on one tenant's connection."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite changes constraints and column types by rebuilding the
        # table, which Alembic's batch operations do.
        render_as_batch=True,
        # The caller runs the whole upgrade in one transaction, and SQLite
        # rolls DDL back with it.
        transaction_per_migration=False,
        transactional_ddl=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Write the SQL of the revisions to standard output (``alembic upgrade --sql``)."""
    context.configure(
        dialect_name="sqlite",
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    if config.config_file_name is not None:
        # The command line owns its process, so it may configure logging;
        # existing loggers stay enabled all the same.
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_for_tenants(context, run_migrations)
