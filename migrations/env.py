"""Alembic environment for the service's ``skriptoteket`` schema.

The database URL comes from, in order: ``config.attributes["connection"]`` (an open SQLAlchemy Connection,
used as is), ``config.attributes["url"]``, ``-x url=...``, the ``sqlalchemy.url`` option, or the environment
variable ``SKRIPTOTEKET_DB_URL``. ``skriptoteket_ext.migrate`` builds the config programmatically; the
command line works too: ``alembic -c migrations/alembic.ini -x url=postgresql+psycopg://... upgrade head``.

Only the ``skriptoteket`` schema is ever created, compared or changed: JupyterHub's tables (which may share
the database) are invisible to this environment. The version table lives in the schema as well.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import Connection

from skriptoteket_ext.migrate import COMPARE_CONNECT_ARGS, VERSION_TABLE, schema_filter
from skriptoteket_ext.tables import SCHEMA, metadata

# Serialises concurrent upgrades (two replicas starting at once). Any constant works; this is "skript" in hex.
ADVISORY_LOCK_KEY = 0x736B72697074

config = context.config

if config.config_file_name and Path(config.config_file_name).is_file() and not config.attributes.get("no_logging"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("SKRIPTOTEKET_DB_URL")
    )
    if not url:
        raise RuntimeError(
            "no database URL: pass -x url=..., set sqlalchemy.url, or set SKRIPTOTEKET_DB_URL"
        )
    return str(url)


def _configure(default_schema: str | None = None, **kwargs) -> None:
    context.configure(
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        version_table_schema=SCHEMA,
        include_schemas=True,
        include_name=schema_filter(default_schema),  # autogenerate sees only our schema
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.execute(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"')
        context.run_migrations()


def _run(connection: Connection) -> None:
    # A session-level advisory lock: concurrent upgraders wait here instead of racing on CREATE SCHEMA.
    connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
    try:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))
        connection.commit()
        _configure(connection.dialect.default_schema_name, connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
        connection.commit()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # The search path keeps our schema from being the default one (as it would be for a database user named
    # "skriptoteket"): autogenerate compares foreign keys wrongly otherwise. Every migration qualifies names.
    engine = create_engine(_url(), poolclass=pool.NullPool, connect_args=COMPARE_CONNECT_ARGS)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
