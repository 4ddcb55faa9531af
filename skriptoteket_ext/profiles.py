"""Users as the service knows them: hub user name, display name, language; upserted on sight."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from .errors import ApiError
from .i18n import LANGUAGES
from .tables import users

DISPLAY_NAME_MAX = 100


async def touch(conn: AsyncConnection, name: str) -> None:
    """Record that the hub user ``name`` used the service (creates the row the first time)."""
    stmt = insert(users).values(name=name)
    await conn.execute(stmt.on_conflict_do_update(index_elements=[users.c.name], set_={"last_seen": func.now()}))


async def get(conn: AsyncConnection, name: str) -> dict:
    row = (await conn.execute(select(users.c.display_name, users.c.language).where(users.c.name == name))).first()
    return {"display_name": row.display_name if row else None, "language": row.language if row else None}


def validate_profile(body: dict) -> dict:
    """The fields of a profile update, checked; unknown fields are refused so typos are not silently lost."""
    unknown = sorted(set(body) - {"display_name", "language"})
    if unknown:
        raise ApiError(422, "invalid", details={"unknown_fields": unknown})
    changes = {}
    if "display_name" in body:
        value = body["display_name"]
        if value is not None and (not isinstance(value, str) or len(value.strip()) > DISPLAY_NAME_MAX):
            raise ApiError(422, "invalid", details={"field": "display_name", "max_length": DISPLAY_NAME_MAX})
        changes["display_name"] = value.strip() or None if isinstance(value, str) else None
    if "language" in body:
        if body["language"] is not None and body["language"] not in LANGUAGES:
            raise ApiError(422, "invalid", details={"field": "language", "allowed": list(LANGUAGES)})
        changes["language"] = body["language"]
    return changes


async def update(conn: AsyncConnection, name: str, changes: dict) -> None:
    stmt = insert(users).values(name=name, **changes)
    await conn.execute(stmt.on_conflict_do_update(index_elements=[users.c.name], set_=changes or {"name": name}))
