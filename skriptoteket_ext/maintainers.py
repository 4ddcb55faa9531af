"""Who maintains a tool: added and removed by reviewers and admins, every change audit-logged with a reason.

Whether a user name exists is the hub's to say: the handler asks the hub (``hub_users.user_exists``) before
``add``; this module only records.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from . import lifecycle as lc
from . import profiles
from .errors import ApiError
from .tables import maintainer_audit, tool_maintainers, tools
from .tools import _tool_row

REASON_MAX = 1000
M = tool_maintainers.c


def check_reason(reason: object) -> str:
    return lc.check_text("reason", reason, REASON_MAX, required=True)


def check_user_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise lc.Refused("field_required", field="user")
    return name.strip()


async def list_maintainers(conn: AsyncConnection, tool_id: int) -> dict:
    row = await _tool_row(conn, tool_id)
    rows = await conn.execute(sa.select(tool_maintainers).where(M.tool_id == tool_id).order_by(M.added_at, M.user_name))
    audit = await conn.execute(
        sa.select(maintainer_audit).where(maintainer_audit.c.tool_id == tool_id)
        .order_by(maintainer_audit.c.at, maintainer_audit.c.id)
    )
    return {
        "owner": row.owner_name,
        "maintainers": [{"user": r.user_name, "added_by": r.added_by, "added_at": r.added_at, "owner": r.user_name == row.owner_name} for r in rows],
        "audit": [{"user": a.user_name, "action": a.action, "reason": a.reason, "actor": a.actor_name, "at": a.at} for a in audit],
    }


async def _audit(conn, tool_id: int, user: str, action: str, reason: str, actor: str) -> None:
    await conn.execute(
        sa.insert(maintainer_audit).values(tool_id=tool_id, user_name=user, action=action, reason=reason, actor_name=actor)
    )


async def add(conn: AsyncConnection, tool_id: int, user: str, actor: str, reason: str) -> dict:
    reason = check_reason(reason)
    user = check_user_name(user)
    await _tool_row(conn, tool_id, for_update=True)
    exists = (await conn.execute(sa.select(M.user_name).where(M.tool_id == tool_id, M.user_name == user))).first()
    if exists:
        raise ApiError(409, "already_maintainer", user=user)
    await profiles.touch(conn, user)
    await conn.execute(sa.insert(tool_maintainers).values(tool_id=tool_id, user_name=user, added_by=actor))
    await _audit(conn, tool_id, user, "add", reason, actor)
    return await list_maintainers(conn, tool_id)


async def remove(conn: AsyncConnection, tool_id: int, user: str, actor: str, reason: str) -> dict:
    reason = check_reason(reason)
    row = await _tool_row(conn, tool_id, for_update=True)
    lc.check_remove_maintainer(row.owner_name, user)
    deleted = await conn.execute(sa.delete(tool_maintainers).where(M.tool_id == tool_id, M.user_name == user))
    if deleted.rowcount == 0:
        raise ApiError(404, "maintainer_not_found", user=user)
    await _audit(conn, tool_id, user, "remove", reason, actor)
    return await list_maintainers(conn, tool_id)


async def owner_of(conn: AsyncConnection, tool_id: int) -> str:
    return (await conn.execute(sa.select(tools.c.owner_name).where(tools.c.id == tool_id))).scalar_one()
