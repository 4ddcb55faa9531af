"""The service's connection pool: async SQLAlchemy 2 on psycopg 3.

A connection idle for more than ``PING_IDLE_AFTER`` seconds is pinged when it is checked out, and replaced if
Postgres restarted meanwhile, so the service recovers by itself without a restart. (Not ``pool_pre_ping``: that
costs a round trip on every request.) A connection that dies between two busy
requests fails that request with a clean 503, and SQLAlchemy then replaces every pooled connection. Short
connect and checkout timeouts make an outage fail fast with a clean 503 instead of hanging requests.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

from sqlalchemy import event, exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

PING_IDLE_AFTER = 2.0  # seconds


def async_url(url: str) -> str:
    """Accept ``postgresql://`` or ``postgresql+psycopg://`` URLs; psycopg 3 serves both sync and async."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://"):]
    return url


def libpq_url(url: str) -> str:
    """The same URL for psycopg itself (``postgresql://``), without SQLAlchemy's driver name."""
    scheme, sep, rest = url.partition("://")
    return "postgresql" + sep + rest if scheme.startswith("postgres") else url


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10, timeout: float = 5.0) -> AsyncEngine:
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=timeout,
        pool_recycle=1800,
        connect_args={"connect_timeout": max(1, int(timeout)), "application_name": "skriptoteket"},
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    sync = engine.sync_engine

    @event.listens_for(sync, "checkin")
    def _used(dbapi_connection, record):
        record.info["skr_used"] = time.monotonic()

    @event.listens_for(sync, "checkout")
    def _ping(dbapi_connection, record, proxy):
        if time.monotonic() - record.info.get("skr_used", 0.0) <= PING_IDLE_AFTER:
            return
        try:
            sync.dialect.do_ping(dbapi_connection)
        except Exception as e:  # Postgres restarted: the pool replaces this and every older connection, and retries
            raise exc.InvalidatePoolError() from e


@asynccontextmanager
async def reading(engine: AsyncEngine):
    """A connection for reads in autocommit: each statement sees its own snapshot, and there is no BEGIN and
    COMMIT to wait for (two of the three round trips of a one-statement read)."""
    async with engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


async def ping(engine: AsyncEngine, timeout: float = 3.0) -> bool:
    """True when a trivial query succeeds within ``timeout`` seconds."""
    async def _select_one() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(_select_one(), timeout)
        return True
    except Exception:
        return False
