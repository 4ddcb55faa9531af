"""Run the schema migrations programmatically (used by ``skriptoteket db ...`` and by tests).

    from skriptoteket_ext import migrate
    migrate.upgrade("postgresql+psycopg://user:pw@host/db")        # to head
    migrate.downgrade(url, "base")                                 # drop every skriptoteket table
    migrate.current(url)                                           # "0002" or None
    migrate.is_up_to_date(url)                                     # current == head
    migrate.compare(url)                                           # [] unless tables.py and the DB differ

``url`` may be a URL string, a ``sqlalchemy.engine.URL``, or an open ``sqlalchemy.engine.Connection`` (then
the migration runs on it and commits). The migrations directory is the repository's ``migrations/`` next to
this package, or ``$SKRIPTOTEKET_MIGRATIONS`` when set.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, pool
from sqlalchemy.engine import URL, Connection

from .tables import SCHEMA, metadata

VERSION_TABLE = "alembic_version"


def schema_filter(default_schema: str | None):
    """An alembic ``include_name`` hook that sees only our schema, never the hub's tables.

    Alembic calls the connection's default schema ``None``; when the database user is itself named
    ``skriptoteket`` (so ``$user`` in the search path makes our schema the default), ``None`` is ours.
    """

    def include_name(name, type_, parent_names) -> bool:
        if type_ == "schema":
            return name == SCHEMA or (name is None and default_schema == SCHEMA)
        if type_ == "table":
            return name != VERSION_TABLE
        return True

    return include_name


def migrations_dir() -> Path:
    """The alembic script directory (``$SKRIPTOTEKET_MIGRATIONS`` or the repository's ``migrations/``)."""
    override = os.environ.get("SKRIPTOTEKET_MIGRATIONS")
    path = Path(override) if override else Path(__file__).resolve().parent.parent / "migrations"
    if not (path / "env.py").is_file():
        raise FileNotFoundError(f"no alembic environment (env.py) in {path}; set SKRIPTOTEKET_MIGRATIONS")
    return path


def make_config(url: str | URL | Connection | None = None) -> Config:
    """An alembic Config for our migrations, with the database given by ``url`` (see module docstring)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["no_logging"] = True  # leave the host application's logging alone
    if isinstance(url, Connection):
        config.attributes["connection"] = url
    elif url is not None:
        # In attributes rather than set_main_option: a '%' in a password would break configparser.
        config.attributes["url"] = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    return config


def upgrade(url: str | URL | Connection, revision: str = "head", *, sql: bool = False) -> None:
    """Upgrade the schema to ``revision`` (creating the ``skriptoteket`` schema if needed).

    With ``sql=True``, print the SQL instead of running it (alembic's offline mode).
    """
    command.upgrade(make_config(url), revision, sql=sql)


def downgrade(url: str | URL | Connection, revision: str = "base", *, sql: bool = False) -> None:
    """Downgrade to ``revision``; ``"base"`` drops every table of the schema (the empty version table stays)."""
    command.downgrade(make_config(url), revision, sql=sql)


def head() -> str | None:
    """The revision the code expects (the migrations' head)."""
    return ScriptDirectory.from_config(make_config()).get_current_head()


def current(url: str | URL | Connection) -> str | None:
    """The revision the database is at, or None for an empty database."""
    if isinstance(url, Connection):
        return _current(url)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return _current(connection)
    finally:
        engine.dispose()


def _current(connection: Connection) -> str | None:
    ctx = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE, "version_table_schema": SCHEMA}
    )
    return ctx.get_current_revision()


def is_up_to_date(url: str | URL | Connection) -> bool:
    """True when the database is at the head revision (the service refuses to start otherwise)."""
    return current(url) == head()


def compare(url: str | URL | Connection, target: MetaData | None = None) -> list:
    """Differences between ``tables.metadata`` and the database, as alembic's autogenerate sees them.

    Empty when the migrations and tables.py agree (the integration test asserts it after upgrading).
    """
    if isinstance(url, Connection):
        url = url.engine.url
    engine = create_engine(url, poolclass=pool.NullPool, connect_args=COMPARE_CONNECT_ARGS)
    try:
        with engine.connect() as connection:
            return _compare(connection, metadata if target is None else target)
    finally:
        engine.dispose()


# Alembic compares foreign keys badly when the target schema is the connection's default schema (which it is
# whenever the database user is itself called "skriptoteket"): keep our schema off the search path.
COMPARE_CONNECT_ARGS = {"options": "-c search_path=public"}


def _compare(connection: Connection, target: MetaData) -> list:
    ctx = MigrationContext.configure(
        connection,
        opts={
            "version_table": VERSION_TABLE,
            "version_table_schema": SCHEMA,
            "include_schemas": True,
            "include_name": schema_filter(connection.dialect.default_schema_name),
            "compare_type": True,
            "compare_server_default": True,
        },
    )
    return compare_metadata(ctx, target)
