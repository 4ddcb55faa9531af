"""Suggestions for new tools: any user suggests; reviewers accept (a new draft tool owned by the suggester)
or deny (with a rationale). Every decision is kept in ``suggestion_decisions``."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from . import lifecycle as lc
from . import profiles
from . import tools as tool_store
from .errors import ApiError
from .tables import suggestion_categories, suggestion_decisions, suggestion_professions, suggestions

S = suggestions.c
RATIONALE_MAX = 5000


def parse(body: dict) -> dict:
    unknown = sorted(set(body) - {"title", "description", "professions", "categories"})
    if unknown:
        raise ApiError(422, "unknown_fields", details={"unknown_fields": unknown}, fields=", ".join(unknown))
    return {
        "title": lc.check_text("title", body.get("title"), lc.TITLE_MAX, required=True),
        "description": lc.check_text("description", body.get("description"), lc.DESCRIPTION_MAX),
        "professions": lc.check_slug_list("professions", body.get("professions", [])),
        "categories": lc.check_slug_list("categories", body.get("categories", [])),
    }


async def create(conn: AsyncConnection, user: str, body: dict) -> dict:
    data = parse(body)
    await tool_store.check_taxonomy(conn, data["professions"], data["categories"])
    await profiles.touch(conn, user)
    sid = (
        await conn.execute(
            sa.insert(suggestions).values(title=data["title"], description=data["description"], suggested_by=user).returning(S.id)
        )
    ).scalar_one()
    if data["professions"]:
        await conn.execute(sa.insert(suggestion_professions), [{"suggestion_id": sid, "profession_slug": p} for p in data["professions"]])
    if data["categories"]:
        await conn.execute(sa.insert(suggestion_categories), [{"suggestion_id": sid, "category_slug": c} for c in data["categories"]])
    return (await listing(conn, ids=[sid]))[0]


async def listing(conn: AsyncConnection, *, user: str | None = None, status: str | None = None, ids=None) -> list[dict]:
    stmt = sa.select(suggestions).order_by(S.created_at.desc(), S.id.desc())
    if user is not None:
        stmt = stmt.where(S.suggested_by == user)
    if status is not None:
        stmt = stmt.where(S.status == status)
    if ids is not None:
        stmt = stmt.where(S.id.in_(ids))
    rows = (await conn.execute(stmt)).all()
    found = [r.id for r in rows]
    tags = {i: {"professions": [], "categories": []} for i in found}
    history = {i: [] for i in found}
    if found:
        for sid, slug in await conn.execute(sa.select(suggestion_professions).where(suggestion_professions.c.suggestion_id.in_(found)).order_by(suggestion_professions.c.profession_slug)):
            tags[sid]["professions"].append(slug)
        for sid, slug in await conn.execute(sa.select(suggestion_categories).where(suggestion_categories.c.suggestion_id.in_(found)).order_by(suggestion_categories.c.category_slug)):
            tags[sid]["categories"].append(slug)
        for d in await conn.execute(sa.select(suggestion_decisions).where(suggestion_decisions.c.suggestion_id.in_(found)).order_by(suggestion_decisions.c.decided_at, suggestion_decisions.c.id)):
            history[d.suggestion_id].append({"decision": d.decision, "rationale": d.rationale, "decided_by": d.decided_by, "decided_at": d.decided_at, "tool_id": d.tool_id})
    return [
        {"id": r.id, "title": r.title, "description": r.description, "suggested_by": r.suggested_by, "created_at": r.created_at,
         "status": r.status, "decided_by": r.decided_by, "decided_at": r.decided_at, "rationale": r.rationale, "tool_id": r.tool_id,
         **tags[r.id], "decisions": history[r.id]}
        for r in rows
    ]


async def decide(conn: AsyncConnection, suggestion_id: int, actor: str, decision: str, rationale: str | None = None) -> dict:
    """``accepted``: a new draft tool owned by the suggester (who becomes its maintainer), tagged as suggested.
    ``denied``: needs a rationale. A suggestion is decided once; deciding again is 409 ``already_decided``."""
    if rationale is not None and not isinstance(rationale, str):
        raise lc.Refused("invalid_field", field="rationale")
    rationale = lc.check_text("rationale", rationale, RATIONALE_MAX) or None
    row = (await conn.execute(sa.select(suggestions).where(S.id == suggestion_id).with_for_update())).first()
    if row is None:
        raise ApiError(404, "suggestion_not_found")
    lc.check_decision(row.status, decision, rationale)
    tool_id = None
    if decision == "accepted":
        tags = (await listing(conn, ids=[suggestion_id]))[0]
        tool = await tool_store.create_tool(
            conn, actor,
            {"title": row.title, "summary": row.description[: lc.SUMMARY_MAX], "professions": tags["professions"],
             "categories": tags["categories"]},
            owner=row.suggested_by,
        )
        tool_id = tool["id"]
        await tool_store.event(conn, tool_id, "accepted_suggestion", actor, suggestion_id=suggestion_id)
    await conn.execute(
        sa.update(suggestions).where(S.id == suggestion_id)
        .values(status=decision, decided_by=actor, decided_at=sa.func.now(), rationale=rationale, tool_id=tool_id)
    )
    await conn.execute(
        sa.insert(suggestion_decisions).values(suggestion_id=suggestion_id, decision=decision, rationale=rationale,
                                               decided_by=actor, tool_id=tool_id)
    )
    return (await listing(conn, ids=[suggestion_id]))[0]
