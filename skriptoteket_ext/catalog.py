"""The catalog teachers browse: published tools, text search, facet filters, favorites, recently used.

Search runs on the GIN index ``ix_tools_search`` (``tables.tool_search_document``): every word of the query
becomes a prefix term (``grup:* & mak:*``), so "grup" finds "Gruppindelning" as the user types. Filters are
OR within a facet and AND across facets. Tags come back with the same query (correlated ``array_agg``),
so a page of results is one round trip to Postgres.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import REGCONFIG, aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from . import lifecycle as lc
from . import profiles
from .errors import ApiError
from .tables import (
    categories,
    favorites,
    professions,
    runs,
    tool_categories,
    tool_professions,
    tool_search_document,
    tools,
)

T = tools.c
QUERY_MAX = 200
MAX_TERMS = 8
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
RECENT_LIMIT = 10
_WORD = re.compile(r"[^\W_]+")


def search_terms(q: str) -> str | None:
    """A safe ``to_tsquery`` text: letters and digits only, each word a prefix term, all words required."""
    words = _WORD.findall(q.lower())[:MAX_TERMS]
    return " & ".join(f"{w[:64]}:*" for w in words) or None


def _tag_array(table, column):
    return (
        sa.select(sa.func.coalesce(sa.func.array_agg(aggregate_order_by(column, column)), sa.literal_column("ARRAY[]::text[]")))
        .where(table.c.tool_id == T.id)
        .correlate(tools)
        .scalar_subquery()
    )


def _tool_columns(user: str):
    return (
        T.id, T.slug, T.title, T.summary,
        _tag_array(tool_professions, tool_professions.c.profession_slug).label("professions"),
        _tag_array(tool_categories, tool_categories.c.category_slug).label("categories"),
        sa.exists().where(favorites.c.tool_id == T.id, favorites.c.user_name == user).correlate(tools).label("favorite"),
    )


def _card(r) -> dict:
    return {"id": r.id, "slug": r.slug, "title": r.title, "summary": r.summary, "professions": list(r.professions),
            "categories": list(r.categories), "favorite": r.favorite}


def parse_query(args: dict[str, list[str]]) -> dict:
    """Query-string arguments of a catalog search, checked."""
    q = (args.get("q") or [""])[-1]
    if len(q) > QUERY_MAX:
        raise lc.Refused("too_long", field="q", max=QUERY_MAX)
    out = {"q": q, "professions": sorted(set(args.get("profession", []))), "categories": sorted(set(args.get("category", [])))}
    for name, default, lo, hi in (("limit", DEFAULT_LIMIT, 1, MAX_LIMIT), ("offset", 0, 0, 1_000_000)):
        raw = (args.get(name) or [str(default)])[-1]
        if not raw.isdigit() or not lo <= int(raw) <= hi:
            raise ApiError(422, "invalid_parameter", details={"parameter": name, "min": lo, "max": hi}, parameter=name)
        out[name] = int(raw)
    fav = (args.get("favorites") or ["0"])[-1]
    out["favorites"] = fav in ("1", "true", "yes")
    return out


async def search(conn: AsyncConnection, user: str, *, q: str = "", professions: list[str] = (), categories: list[str] = (),
                 favorites_only: bool = False, limit: int = DEFAULT_LIMIT, offset: int = 0) -> dict:
    """One page of published tools. The page's ids are chosen first (ordered by title, ``limit + 1`` rows to know
    whether there are more: no exact total, which would make Postgres evaluate the text match on every matching
    row); tags and the favorite flag are computed for the page's rows only."""
    page = sa.select(T.id).where(T.is_published)
    terms = search_terms(q) if q else None
    if terms:
        page = page.where(tool_search_document.op("@@")(sa.func.to_tsquery(sa.cast(sa.literal("simple"), REGCONFIG), terms)))
    if professions:
        page = page.where(sa.exists().where(tool_professions.c.tool_id == T.id, tool_professions.c.profession_slug.in_(professions)))
    if categories:
        page = page.where(sa.exists().where(tool_categories.c.tool_id == T.id, tool_categories.c.category_slug.in_(categories)))
    if favorites_only:
        page = page.where(sa.exists().where(favorites.c.tool_id == T.id, favorites.c.user_name == user))
    page = page.order_by(sa.func.lower(T.title), T.id).limit(limit + 1).offset(offset).cte("page")
    stmt = (
        sa.select(*_tool_columns(user))
        .join(page, page.c.id == T.id)
        .order_by(sa.func.lower(T.title), T.id)
    )
    rows = (await conn.execute(stmt)).all()
    more = len(rows) > limit
    return {"tools": [_card(r) for r in rows[:limit]], "has_more": more, "limit": limit, "offset": offset,
            "next_offset": offset + limit if more else None}


async def taxonomy(conn: AsyncConnection, lang: str = "en") -> dict:
    out = {}
    for key, table in (("professions", professions), ("categories", categories)):
        rows = await conn.execute(sa.select(table).order_by(table.c.sort_order, table.c.slug))
        out[key] = [{"slug": r.slug, "label": r.label_sv if lang == "sv" else r.label_en, "label_en": r.label_en, "label_sv": r.label_sv} for r in rows]
    return out


async def add_favorite(conn: AsyncConnection, user: str, tool_id: int) -> None:
    """Idempotent. Visibility of the tool is the endpoint's rule (``reader``)."""
    await profiles.touch(conn, user)
    await conn.execute(pg_insert(favorites).values(user_name=user, tool_id=tool_id).on_conflict_do_nothing())


async def remove_favorite(conn: AsyncConnection, user: str, tool_id: int) -> None:
    await conn.execute(sa.delete(favorites).where(favorites.c.user_name == user, favorites.c.tool_id == tool_id))


async def list_favorites(conn: AsyncConnection, user: str) -> list[dict]:
    stmt = (
        sa.select(*_tool_columns(user))
        .join(favorites, sa.and_(favorites.c.tool_id == T.id, favorites.c.user_name == user))
        .where(T.is_published)
        .order_by(favorites.c.created_at.desc(), T.id)
    )
    return [_card(r) for r in await conn.execute(stmt)]


async def recent(conn: AsyncConnection, user: str, limit: int = RECENT_LIMIT) -> list[dict]:
    """The published tools the user ran most recently (production runs), newest first, each once."""
    last = (
        sa.select(runs.c.tool_id, sa.func.max(runs.c.requested_at).label("last_used"))
        .where(runs.c.user_name == user, runs.c.context == "production")
        .group_by(runs.c.tool_id)
        .subquery()
    )
    stmt = (
        sa.select(*_tool_columns(user), last.c.last_used)
        .join(last, last.c.tool_id == T.id)
        .where(T.is_published)
        .order_by(last.c.last_used.desc())
        .limit(limit)
    )
    return [{**_card(r), "last_used": r.last_used} for r in await conn.execute(stmt)]
