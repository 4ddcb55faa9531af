"""Per-user rate limits (requests per minute) and token budgets (tokens per day), per capability, in Postgres.

Every model call is a row of ``ai_usage``, written *before* the call (a reservation: ``succeeded`` is null)
and completed after it with the tokens used. The check and the reservation happen in one short transaction
under a transaction-scoped advisory lock on (user, capability), so several service replicas (or two tabs of
one author) cannot both slip under a limit; the lock is released before the model is called. Because the
rows are the counters, limits survive restarts.

- requests per minute: rows of the user and capability in the last 60 seconds (failed calls count: they
  reached the model);
- tokens per day: prompt + completion tokens of the last 24 hours (a rolling window, the same in every time
  zone). A call that starts under the budget may finish over it; the next one is refused.

A limit of 0 means no limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import profiles
from ..errors import ApiError
from ..tables import ai_usage
from .config import CapabilityConfig

U = ai_usage.c


@dataclass(frozen=True)
class Usage:
    requests_last_minute: int
    tokens_last_day: int


async def usage(conn, user: str, capability: str) -> Usage:
    row = (
        await conn.execute(
            sa.select(
                sa.func.count().filter(U.requested_at > sa.func.now() - sa.text("interval '1 minute'")),
                sa.func.coalesce(sa.func.sum(U.prompt_tokens + U.completion_tokens), 0),
            ).where(
                U.user_name == user,
                U.capability == capability,
                U.requested_at > sa.func.now() - sa.text("interval '1 day'"),
            )
        )
    ).one()
    return Usage(int(row[0]), int(row[1]))


async def reserve(engine: AsyncEngine, user: str, cfg: CapabilityConfig) -> int:
    """Check the limits and record the call about to be made; returns the row id. 429 when over a limit."""
    async with engine.begin() as conn:
        await profiles.touch(conn, user)
        await conn.execute(
            sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(f"skriptoteket-ai:{cfg.capability}:{user}")))
        )
        used = await usage(conn, user, cfg.capability)
        if cfg.requests_per_minute and used.requests_last_minute >= cfg.requests_per_minute:
            raise ApiError(429, "ai_rate_limited", details={"capability": cfg.capability, "retry_after": 60,
                                                              "requests_per_minute": cfg.requests_per_minute},
                           limit=cfg.requests_per_minute)
        if cfg.tokens_per_day and used.tokens_last_day >= cfg.tokens_per_day:
            raise ApiError(429, "ai_budget_exhausted", details={"capability": cfg.capability,
                                                                  "tokens_per_day": cfg.tokens_per_day,
                                                                  "tokens_used": used.tokens_last_day},
                           limit=cfg.tokens_per_day)
        return await conn.scalar(
            sa.insert(ai_usage).values(user_name=user, capability=cfg.capability, model=cfg.model).returning(U.id)
        )


async def complete(engine: AsyncEngine, reservation: int, *, prompt_tokens: int, completion_tokens: int,
                   succeeded: bool) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(ai_usage).where(U.id == reservation).values(
                prompt_tokens=max(0, int(prompt_tokens)), completion_tokens=max(0, int(completion_tokens)),
                succeeded=succeeded,
            )
        )
