"""The catalog teachers browse: published tools, text search, facet filters, favorites, recently used.

Search matches ``tools.search_vector`` (a stored tsvector with the GIN index ``ix_tools_search_vector``): every
word of the query becomes a prefix term (``grup:* & mak:*``), so "grup" finds "Gruppindelning" as the user
types. Filters are OR within a facet and AND across facets. Tags come back with the same query (correlated
``array_agg``), so a page of results is one round trip to Postgres.
"""

from __future__ import annotations

import functools
import json
import re

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
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


def _tag_array(table, column, tool_id=T.id):
    return (
        sa.select(sa.func.coalesce(sa.func.array_agg(aggregate_order_by(column, column)), sa.literal_column("ARRAY[]::text[]")))
        .where(table.c.tool_id == tool_id)
        .correlate_except(table)
        .scalar_subquery()
    )


def _is_favorite(user, tool_id=T.id):
    return sa.exists().where(favorites.c.tool_id == tool_id, favorites.c.user_name == user).correlate_except(favorites)


def _tool_columns(user: str):
    return (
        T.id, T.slug, T.title, T.summary,
        _tag_array(tool_professions, tool_professions.c.profession_slug).label("professions"),
        _tag_array(tool_categories, tool_categories.c.category_slug).label("categories"),
        _is_favorite(user).label("favorite"),
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


@functools.lru_cache(maxsize=64)
def _search_statement(text: bool, professions: bool, categories: bool, favorites_only: bool,
                      favorite_flag: bool = True) -> sa.Select:
    """The statement of one shape of search, built once; values are bound when it runs (reusing the object
    spares building it and SQLAlchemy's cache key on every request).

    Postgres answers with the page's cards as one JSON array (``tools``) and whether there are more
    (``more``): the page takes ``limit + 1`` rows in title order (no exact total, which would make Postgres
    match every row), and tags and the favorite flag are looked up for those rows only. Without
    ``favorite_flag`` the cards are the same for every user (``shared_page``)."""
    order = (sa.func.lower(T.title), T.id)
    page = sa.select(T.id, T.slug, T.title, T.summary, sa.func.row_number().over(order_by=order).label("n")).where(T.is_published)
    if text:
        query = sa.func.to_tsquery(sa.literal_column("'simple'::regconfig"), sa.bindparam("terms"))
        page = page.where(tool_search_document.op("@@")(query))
    if professions:
        page = page.where(sa.exists().where(
            tool_professions.c.tool_id == T.id, tool_professions.c.profession_slug.in_(sa.bindparam("professions", expanding=True))))
    if categories:
        page = page.where(sa.exists().where(
            tool_categories.c.tool_id == T.id, tool_categories.c.category_slug.in_(sa.bindparam("categories", expanding=True))))
    if favorites_only:
        page = page.where(_is_favorite(sa.bindparam("user")))
    p = page.order_by(*order).limit(sa.bindparam("fetch")).offset(sa.bindparam("offset")).subquery("page")
    key = sa.literal_column  # json_build_object cannot take its keys as untyped parameters
    card = sa.func.json_build_object(
        key("'id'"), p.c.id, key("'slug'"), p.c.slug, key("'title'"), p.c.title, key("'summary'"), p.c.summary,
        key("'professions'"), _tag_array(tool_professions, tool_professions.c.profession_slug, p.c.id),
        key("'categories'"), _tag_array(tool_categories, tool_categories.c.category_slug, p.c.id),
        *((key("'favorite'"), _is_favorite(sa.bindparam("user"), p.c.id)) if favorite_flag else ()),
    )
    more = (sa.func.count() > sa.bindparam("limit")).label("more")
    if not favorite_flag:  # each card's text and id apart, to be joined with a user's flags later
        in_page = p.c.n <= sa.bindparam("last")
        empty = sa.literal_column("'{}'")
        return sa.select(
            sa.func.coalesce(sa.func.array_agg(aggregate_order_by(sa.cast(card, sa.Text), p.c.n)).filter(in_page), empty).label("cards"),
            sa.func.coalesce(sa.func.array_agg(aggregate_order_by(p.c.id, p.c.n)).filter(in_page), empty).label("ids"),
            more,
        ).select_from(p)
    cards = sa.func.json_agg(aggregate_order_by(card, p.c.n)).filter(p.c.n <= sa.bindparam("last"))
    return sa.select(sa.cast(sa.func.coalesce(cards, sa.literal_column("'[]'::json")), sa.Text).label("tools"), more).select_from(p)


async def _run_search(conn: AsyncConnection, user: str | None, q: str, professions, categories, favorites_only: bool,
                      limit: int, offset: int):
    terms = search_terms(q) if q else None
    stmt = _search_statement(bool(terms), bool(professions), bool(categories), favorites_only, user is not None)
    params = {"limit": limit, "fetch": limit + 1, "offset": offset, "last": offset + limit}
    if user is not None:
        params["user"] = user
    if terms:
        params["terms"] = terms
    if professions:
        params["professions"] = list(professions)
    if categories:
        params["categories"] = list(categories)
    return (await conn.execute(stmt, params)).one()


def _page_meta(more: bool, limit: int, offset: int) -> str:
    """The answer's keys after ``tools``, as JSON text without the opening brace."""
    return json.dumps({"has_more": more, "limit": limit, "offset": offset,
                       "next_offset": offset + limit if more else None})[1:]


async def search_json(conn: AsyncConnection, user: str, *, q: str = "", professions: list[str] = (), categories: list[str] = (),
                      favorites_only: bool = False, limit: int = DEFAULT_LIMIT, offset: int = 0) -> str:
    """One page of published tools, ordered by title, as the JSON text of the API's answer: one statement, one
    round trip, and the cards arrive encoded (Python neither builds nor encodes them)."""
    row = await _run_search(conn, user, q, professions, categories, favorites_only, limit, offset)
    return '{"tools": ' + row.tools + ", " + _page_meta(row.more, limit, offset)


async def shared_page(conn: AsyncConnection, *, q: str = "", professions: list[str] = (), categories: list[str] = (),
                      limit: int = DEFAULT_LIMIT, offset: int = 0) -> tuple[tuple[int, ...], tuple[str, ...], bool]:
    """A page of ``search_json`` without the favorite flags, which are the only per-user part of a card:
    ``(tool ids, each card's JSON text without its closing brace, has_more)``, for ``page_json``."""
    row = await _run_search(conn, None, q, professions, categories, False, limit, offset)
    return tuple(row.ids), tuple(card[:-1] for card in row.cards), row.more  # card[:-1]: "{…" without its "}"


async def favorite_ids(conn: AsyncConnection, user: str) -> frozenset[int]:
    return frozenset((await conn.execute(sa.select(favorites.c.tool_id).where(favorites.c.user_name == user))).scalars())


def page_json(page: tuple[tuple[int, ...], tuple[str, ...], bool], favorite: frozenset[int], *, limit: int,
              offset: int) -> str:
    """``search_json``'s answer from a ``shared_page`` and the user's favorite tool ids."""
    ids, cards, more = page
    body = ", ".join(f'{card}, "favorite": {"true" if tool_id in favorite else "false"}}}'
                     for tool_id, card in zip(ids, cards))
    return '{"tools": [' + body + "], " + _page_meta(more, limit, offset)


async def search(conn: AsyncConnection, user: str, **query) -> dict:
    """``search_json``, decoded: ``{"tools": [cards], "has_more", "limit", "offset", "next_offset"}``."""
    return json.loads(await search_json(conn, user, **query))


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
