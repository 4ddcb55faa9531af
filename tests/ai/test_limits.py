"""Rate limits and token budgets in Postgres: they hold across connections (replicas) and survive restarts."""

from __future__ import annotations

import asyncio

import pytest

from skriptoteket_ext import migrate
from skriptoteket_ext.ai import limits
from skriptoteket_ext.ai.config import resolve
from skriptoteket_ext.db import create_engine
from skriptoteket_ext.errors import ApiError


def cap(**section):
    return resolve({"explain": {"base_url": "http://llm/v1", "model": "m", **section}}, env={})["explain"]


@pytest.fixture
async def db_url(fresh_db_url):
    migrate.upgrade(fresh_db_url)
    return fresh_db_url


async def test_requests_per_minute_across_replicas_and_restarts(db_url):
    config = cap(requests_per_minute=3, tokens_per_day=0)
    replicas = [create_engine(db_url) for _ in range(3)]  # three service processes' pools
    try:
        async def attempt(i):
            try:
                return await limits.reserve(replicas[i % 3], "ada", config)
            except ApiError as err:
                return err.code

        outcomes = await asyncio.gather(*(attempt(i) for i in range(10)))
        assert sum(isinstance(o, int) for o in outcomes) == 3
        assert outcomes.count("ai_rate_limited") == 7
        # another user, another capability: their own counters
        await limits.reserve(replicas[0], "bea", config)
        await limits.reserve(replicas[0], "ada", cap(requests_per_minute=3).__class__(
            **{**config.__dict__, "capability": "edit"}))
    finally:
        for engine in replicas:
            await engine.dispose()
    restarted = create_engine(db_url)  # a restart: a new pool, the same rows
    try:
        with pytest.raises(ApiError) as info:
            await limits.reserve(restarted, "ada", config)
        assert info.value.status == 429 and info.value.params == {"limit": 3}
    finally:
        await restarted.dispose()


async def test_tokens_per_day(db_url):
    config = cap(requests_per_minute=0, tokens_per_day=1000)
    engine = create_engine(db_url)
    try:
        first = await limits.reserve(engine, "ada", config)
        await limits.complete(engine, first, prompt_tokens=700, completion_tokens=200, succeeded=True)
        second = await limits.reserve(engine, "ada", config)  # 900 used: still under the budget
        await limits.complete(engine, second, prompt_tokens=300, completion_tokens=50, succeeded=True)
        with pytest.raises(ApiError) as info:
            await limits.reserve(engine, "ada", config)
        assert info.value.code == "ai_budget_exhausted" and info.value.details["tokens_used"] == 1250
        async with engine.begin() as conn:
            used = await limits.usage(conn, "ada", "explain")
            assert used.tokens_last_day == 1250 and used.requests_last_minute == 2
            # a day later the budget is back (rows age out of the rolling window)
            await conn.exec_driver_sql("UPDATE skriptoteket.ai_usage SET requested_at = now() - interval '25 hours'")
        await limits.reserve(engine, "ada", config)
    finally:
        await engine.dispose()
