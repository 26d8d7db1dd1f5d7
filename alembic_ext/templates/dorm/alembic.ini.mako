# Alembic configuration for dorm-sqlalchemy tenant databases.
# %(here)s is the folder of this file.

[alembic]
# The folder that holds env.py and versions/.
script_location = ${script_location}

# Put the folder of this file on sys.path, so env.py can import your models.
prepend_sys_path = %(here)s

path_separator = os

# Where tenant files live, for `alembic -x tenant=NAME ...` and `-x tenant=all`:
# dorm.url is a sqlite URL whose file name contains {tenant}; dorm.root is a
# folder of <tenant>.db files. Set one of them.
${tenant_location}

# The database that `alembic revision --autogenerate` compares with the models
# when no -x tenant=NAME or -x url=URL is given. Bring it to head first.
${reference_url}

# The models' MetaData, as package.module:attribute (for example
# myapp.models:Base.metadata). It must use alembic_ext.NAMING_CONVENTION.
${target_metadata}

# Seconds a command waits for the application's writers to release a tenant.
dorm.busy_timeout = 30

# Logging of the `alembic` command. Upgrades inside the application never
# read this section: they keep the application's logging as it is.
[loggers]
keys = root,sqlalchemy,alembic,alembic_ext

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[logger_alembic_ext]
level = INFO
handlers =
qualname = alembic_ext

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
