"""The service's connection pool: async SQLAlchemy 2 on psycopg 3.

``pool_pre_ping`` discards connections that died while Postgres restarted, so the service recovers by itself
without a restart; short connect and checkout timeouts make an outage fail fast with a clean 503 instead of
hanging requests.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def async_url(url: str) -> str:
    """Accept ``postgresql://`` or ``postgresql+psycopg://`` URLs; psycopg 3 serves both sync and async."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://"):]
    return url


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10, timeout: float = 5.0) -> AsyncEngine:
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=timeout,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"connect_timeout": max(1, int(timeout)), "application_name": "skriptoteket"},
    )


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
