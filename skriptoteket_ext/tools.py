"""Tools, versions and draft locks: async data functions on one ``AsyncConnection`` each.

The caller opens the transaction (``async with engine.begin() as conn``); every function here is one
operation inside it, so nothing is ever half-written. Every change of a tool first locks the tool's row
(``SELECT … FOR UPDATE``): operations on one tool are serialized, and the rules in ``lifecycle`` are decided on
facts nobody else can change meanwhile. The database's own guarantees (one active version per tool, no fork
of the draft chain, unique slugs) back this up; their violations become 409 envelopes, never 500s.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from . import lifecycle as lc
from . import profiles
from .contract import validate_input_schema, validate_settings_schema
from .errors import ApiError
from .lifecycle import Refused
from .tables import (
    categories,
    draft_locks,
    professions,
    tool_categories,
    tool_events,
    tool_maintainers,
    tool_professions,
    tool_versions,
    tools,
)

LOCK_SECONDS = int(os.environ.get("SKRIPTOTEKET_DRAFT_LOCK_SECONDS", lc.DEFAULT_LOCK_SECONDS))

CONTENT_FIELDS = ("source", "entrypoint", "input_schema", "settings_schema", "usage_instructions")
V = tool_versions.c
T = tools.c

# Database constraint → the envelope a client gets when it fires (a race past the service's own checks).
CONSTRAINT_ERRORS = {
    "uq_tool_versions_one_active": lambda: ApiError(409, "conflict", details={"reason": "active_version_changed"}),
    "uq_tool_versions_draft_parent": lambda: Refused("head_moved"),
    "uq_tool_versions_tool_id_version_no": lambda: Refused("head_moved"),
    "uq_tools_slug": lambda: ApiError(409, "slug_taken"),
}


@contextlib.contextmanager
def constraint_errors():
    """Turn a known constraint violation into its envelope (the transaction is rolled back by the caller)."""
    try:
        yield
    except IntegrityError as err:
        name = getattr(getattr(err.orig, "diag", None), "constraint_name", None)
        if name in CONSTRAINT_ERRORS:
            raise CONSTRAINT_ERRORS[name]() from err
        raise


# ------------------------------------------------------------------------------------------- reading


async def access(conn: AsyncConnection, tool_id: int, user_name: str | None) -> dict:
    """What permission checks need: does the tool exist, is it published, is the user a maintainer."""
    row = (
        await conn.execute(
            sa.select(
                T.is_published,
                sa.exists()
                .where(tool_maintainers.c.tool_id == T.id, tool_maintainers.c.user_name == (user_name or ""))
                .label("maintainer"),
            ).where(T.id == tool_id)
        )
    ).first()
    if row is None:
        return {"exists": False, "published": False, "maintainer": False}
    return {"exists": True, "published": row.is_published, "maintainer": row.maintainer}


async def _tags(conn: AsyncConnection, tool_ids: list[int]) -> dict[int, dict]:
    tags = {tid: {"professions": [], "categories": []} for tid in tool_ids}
    if not tool_ids:
        return tags
    for table, column, key in (
        (tool_professions, tool_professions.c.profession_slug, "professions"),
        (tool_categories, tool_categories.c.category_slug, "categories"),
    ):
        rows = await conn.execute(
            sa.select(table.c.tool_id, column).where(table.c.tool_id.in_(tool_ids)).order_by(column)
        )
        for tid, slug in rows:
            tags[tid][key].append(slug)
    return tags


def _tool_model(row, tags: dict) -> dict:
    return {
        "id": row.id,
        "slug": row.slug,
        "title": row.title,
        "summary": row.summary,
        "owner": row.owner_name,
        "is_published": row.is_published,
        "published_at": row.published_at,
        "published_by": row.published_by,
        "slug_locked": row.slug_locked,
        "created_at": row.created_at,
        "created_by": row.created_by,
        "updated_at": row.updated_at,
        "updated_by": row.updated_by,
        **tags,
    }


async def _tool_row(conn: AsyncConnection, tool_id: int, *, for_update: bool = False):
    stmt = sa.select(tools).where(T.id == tool_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise ApiError(404, "tool_not_found")
    return row


async def _active(conn: AsyncConnection, tool_id: int):
    return (await conn.execute(sa.select(tool_versions).where(V.tool_id == tool_id, V.state == lc.ACTIVE))).first()


async def _head(conn: AsyncConnection, tool_id: int):
    """The newest version of the tool (what the next save must name as its parent)."""
    return (
        await conn.execute(
            sa.select(tool_versions).where(V.tool_id == tool_id).order_by(V.version_no.desc()).limit(1)
        )
    ).first()


async def _facts(conn: AsyncConnection, row) -> lc.ToolFacts:
    tags = (await _tags(conn, [row.id]))[row.id]
    active = await _active(conn, row.id)
    return lc.ToolFacts(
        slug=row.slug,
        slug_locked=row.slug_locked,
        is_published=row.is_published,
        professions=len(tags["professions"]),
        categories=len(tags["categories"]),
        active_version_id=active.id if active else None,
    )


def _vfacts(row) -> lc.VersionFacts:
    return lc.VersionFacts(id=row.id, state=row.state, was_active=row.was_active, version_no=row.version_no)


def _version_brief(row) -> dict | None:
    if row is None:
        return None
    return {"id": row.id, "version_no": row.version_no, "state": row.state}


async def get_tool(conn: AsyncConnection, tool_id: int) -> dict:
    row = await _tool_row(conn, tool_id)
    model = _tool_model(row, (await _tags(conn, [tool_id]))[tool_id])
    model["maintainers"] = list(
        await conn.scalars(
            sa.select(tool_maintainers.c.user_name)
            .where(tool_maintainers.c.tool_id == tool_id)
            .order_by(tool_maintainers.c.user_name)
        )
    )
    model["active_version"] = _version_brief(await _active(conn, tool_id))
    model["head"] = _version_brief(await _head(conn, tool_id))
    model["lock"] = await get_lock(conn, tool_id)
    return model


async def list_tools(conn: AsyncConnection, *, maintainer: str | None = None) -> list[dict]:
    """The tools ``maintainer`` maintains ("my tools"), or every tool (reviewers)."""
    stmt = sa.select(tools).order_by(sa.func.lower(T.title), T.id)
    if maintainer is not None:
        stmt = stmt.where(
            T.id.in_(sa.select(tool_maintainers.c.tool_id).where(tool_maintainers.c.user_name == maintainer))
        )
    rows = (await conn.execute(stmt)).all()
    tags = await _tags(conn, [r.id for r in rows])
    heads = {}
    if rows:
        ranked = (
            sa.select(V.tool_id, V.id, V.version_no, V.state,
                      sa.func.row_number().over(partition_by=V.tool_id, order_by=V.version_no.desc()).label("rn"))
            .where(V.tool_id.in_([r.id for r in rows]))
            .subquery()
        )
        for r in await conn.execute(sa.select(ranked).where(ranked.c.rn == 1)):
            heads[r.tool_id] = _version_brief(r)
    return [{**_tool_model(r, tags[r.id]), "head": heads.get(r.id)} for r in rows]


# ------------------------------------------------------------------------------------------ taxonomy


async def check_taxonomy(conn: AsyncConnection, profession_slugs: list[str], category_slugs: list[str]) -> None:
    unknown = {}
    for field, table, wanted in (("professions", professions, profession_slugs), ("categories", categories, category_slugs)):
        if wanted:
            known = set(await conn.scalars(sa.select(table.c.slug).where(table.c.slug.in_(wanted))))
            missing = sorted(set(wanted) - known)
            if missing:
                unknown[field] = missing
    if unknown:
        raise ApiError(422, "unknown_taxonomy", details={"unknown": unknown},
                       values=", ".join(v for vs in unknown.values() for v in vs))


async def _set_tags(conn: AsyncConnection, tool_id: int, profession_slugs, category_slugs) -> None:
    if profession_slugs is not None:
        await conn.execute(sa.delete(tool_professions).where(tool_professions.c.tool_id == tool_id))
        if profession_slugs:
            await conn.execute(sa.insert(tool_professions), [{"tool_id": tool_id, "profession_slug": s} for s in profession_slugs])
    if category_slugs is not None:
        await conn.execute(sa.delete(tool_categories).where(tool_categories.c.tool_id == tool_id))
        if category_slugs:
            await conn.execute(sa.insert(tool_categories), [{"tool_id": tool_id, "category_slug": s} for s in category_slugs])


async def event(conn: AsyncConnection, tool_id: int, action: str, actor: str, version_id: int | None = None, **details) -> None:
    await conn.execute(
        sa.insert(tool_events).values(tool_id=tool_id, version_id=version_id, action=action, actor_name=actor,
                                      details=json.loads(json.dumps(details, default=str)))
    )


async def events(conn: AsyncConnection, tool_id: int) -> list[dict]:
    rows = await conn.execute(
        sa.select(tool_events).where(tool_events.c.tool_id == tool_id).order_by(tool_events.c.at, tool_events.c.id)
    )
    return [{"action": r.action, "actor": r.actor_name, "at": r.at, "version_id": r.version_id, "details": r.details} for r in rows]


# ------------------------------------------------------------------------------------------- tools


def parse_metadata(body: dict, *, creating: bool) -> dict:
    """The metadata fields of a create or edit request, checked (limits, types); unknown fields refused."""
    allowed = {"title", "summary", "professions", "categories"} | (set() if creating else {"slug"})
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(422, "unknown_fields", details={"unknown_fields": unknown}, fields=", ".join(unknown))
    out = {}
    if creating or "title" in body:
        out["title"] = lc.check_text("title", body.get("title"), lc.TITLE_MAX, required=True)
    if creating or "summary" in body:
        out["summary"] = lc.check_text("summary", body.get("summary"), lc.SUMMARY_MAX)
    for field in ("professions", "categories"):
        if field in body:
            out[field] = lc.check_slug_list(field, body[field])
        elif creating:
            out[field] = []
    if "slug" in body:
        out["slug"] = lc.check_slug(body["slug"])
    return out


async def create_tool(conn: AsyncConnection, actor: str, body: dict, *, owner: str | None = None) -> dict:
    """A new tool: placeholder slug ``draft-<id>``; the creator (or ``owner``: the suggester of an accepted
    suggestion) is owner and first maintainer."""
    meta = parse_metadata(body, creating=True)
    await check_taxonomy(conn, meta["professions"], meta["categories"])
    owner = owner or actor
    await profiles.touch(conn, owner)
    tool_id = (
        await conn.execute(sa.text("SELECT nextval(pg_get_serial_sequence('skriptoteket.tools', 'id'))"))
    ).scalar_one()
    await conn.execute(
        sa.insert(tools).values(id=tool_id, slug=lc.placeholder_slug(tool_id), title=meta["title"], summary=meta["summary"],
                                owner_name=owner, created_by=actor, updated_by=actor)
    )
    await conn.execute(sa.insert(tool_maintainers).values(tool_id=tool_id, user_name=owner, added_by=actor))
    await _set_tags(conn, tool_id, meta["professions"], meta["categories"])
    await event(conn, tool_id, "create", actor, title=meta["title"], owner=owner)
    return await get_tool(conn, tool_id)


async def update_tool(conn: AsyncConnection, tool_id: int, actor: str, body: dict, *, reviewer: bool) -> dict:
    meta = parse_metadata(body, creating=False)
    row = await _tool_row(conn, tool_id, for_update=True)
    facts = await _facts(conn, row)
    lc.check_metadata_edit(facts, set(meta), reviewer=reviewer)
    if "slug" in meta:
        lc.check_slug_change(facts, meta["slug"])
    await check_taxonomy(conn, meta.get("professions", []), meta.get("categories", []))
    before = _tool_model(row, (await _tags(conn, [tool_id]))[tool_id])
    columns = {k: meta[k] for k in ("title", "summary", "slug") if k in meta}
    with constraint_errors():
        await conn.execute(
            sa.update(tools).where(T.id == tool_id).values(**columns, updated_at=sa.func.now(), updated_by=actor)
        )
    await _set_tags(conn, tool_id, meta.get("professions"), meta.get("categories"))
    changed = {k: {"from": before[k], "to": v} for k, v in meta.items() if before.get(k) != v}
    if changed:
        await event(conn, tool_id, "slug_change" if "slug" in changed else "metadata_edit", actor, changes=changed)
    return await get_tool(conn, tool_id)


async def publish_tool(conn: AsyncConnection, tool_id: int, actor: str) -> dict:
    row = await _tool_row(conn, tool_id, for_update=True)
    lc.check_publish_tool(await _facts(conn, row))
    if not row.is_published:
        await conn.execute(
            sa.update(tools).where(T.id == tool_id).values(
                is_published=True, slug_locked=True, published_at=sa.func.now(), published_by=actor,
                updated_at=sa.func.now(), updated_by=actor)
        )
        await event(conn, tool_id, "publish", actor, slug=row.slug, first=not row.slug_locked)
    return await get_tool(conn, tool_id)


async def depublish_tool(conn: AsyncConnection, tool_id: int, actor: str) -> dict:
    row = await _tool_row(conn, tool_id, for_update=True)
    lc.check_depublish_tool(await _facts(conn, row))
    if row.is_published:
        await conn.execute(
            sa.update(tools).where(T.id == tool_id).values(is_published=False, updated_at=sa.func.now(), updated_by=actor)
        )
        await event(conn, tool_id, "depublish", actor)
    return await get_tool(conn, tool_id)


# ---------------------------------------------------------------------------------------- versions


def version_model(row, *, content: bool = True) -> dict:
    model = {
        "id": row.id,
        "tool_id": row.tool_id,
        "version_no": row.version_no,
        "state": row.state,
        "parent_version_id": row.parent_version_id,
        "derived_from_version_id": row.derived_from_version_id,
        "was_active": row.was_active,
        "change_message": row.change_message,
        "created_at": row.created_at,
        "created_by": row.created_by,
        "submitted_at": row.submitted_at,
        "submitted_by": row.submitted_by,
        "reviewed_at": row.reviewed_at,
        "reviewed_by": row.reviewed_by,
        "state_changed_at": row.state_changed_at,
        "state_changed_by": row.state_changed_by,
    }
    if content:
        model.update({f: getattr(row, f) for f in CONTENT_FIELDS})
    return model


def validate_content(body: dict, lang: str = "en") -> dict:
    """The content fields of a save, checked: schemas through the contract (issues with JSON pointers into
    the request body), source and instructions within their limits, the entrypoint an identifier."""
    out: dict = {}
    issues: list[dict] = []
    if "source" in body:
        out["source"] = body["source"]
        if not isinstance(body["source"], str):
            raise Refused("invalid_field", field="source")
        if len(body["source"]) > lc.SOURCE_MAX:
            raise Refused("too_long", field="source", max=lc.SOURCE_MAX)
    if "entrypoint" in body:
        if not isinstance(body["entrypoint"], str) or not lc.ENTRYPOINT_RE.match(body["entrypoint"]):
            raise Refused("invalid_field", field="entrypoint")
        out["entrypoint"] = body["entrypoint"]
    if "usage_instructions" in body:
        value = body["usage_instructions"]
        if value is not None and not isinstance(value, str):
            raise Refused("invalid_field", field="usage_instructions")
        if value and len(value) > lc.INSTRUCTIONS_MAX:
            raise Refused("too_long", field="usage_instructions", max=lc.INSTRUCTIONS_MAX)
        out["usage_instructions"] = value
    for field, check in (("input_schema", validate_input_schema), ("settings_schema", validate_settings_schema)):
        if field in body:
            for issue in check(body[field]):
                item = issue.to_dict(lang)
                item["path"] = f"/{field}{issue.path}"
                issues.append(item)
            out[field] = body[field]
    if issues:
        raise ApiError(422, "invalid_schema", details={"issues": issues}, count=len(issues))
    return out


async def _version_row(conn: AsyncConnection, tool_id: int, version_id: int, *, for_update: bool = False):
    stmt = sa.select(tool_versions).where(V.tool_id == tool_id, V.id == version_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise ApiError(404, "version_not_found")
    return row


async def list_versions(conn: AsyncConnection, tool_id: int) -> list[dict]:
    rows = await conn.execute(sa.select(tool_versions).where(V.tool_id == tool_id).order_by(V.version_no.desc()))
    return [version_model(r, content=False) for r in rows]


async def get_version(conn: AsyncConnection, tool_id: int, version_id: int) -> dict:
    return version_model(await _version_row(conn, tool_id, version_id))


async def _next_no(conn: AsyncConnection, tool_id: int) -> int:
    return (await conn.execute(sa.select(sa.func.coalesce(sa.func.max(V.version_no), 0) + 1).where(V.tool_id == tool_id))).scalar_one()


async def _set_state(conn, version_id: int, state: str, actor: str, **extra) -> None:
    await conn.execute(
        sa.update(tool_versions).where(V.id == version_id)
        .values(state=state, state_changed_at=sa.func.now(), state_changed_by=actor, **extra)
    )


async def _insert_version(conn, tool_id: int, actor: str, content: dict, **columns) -> int:
    if content.get("settings_schema") is None:
        content = {**content, "settings_schema": sa.null()}  # SQL NULL ("no settings"), not JSON null
    with constraint_errors():
        return (
            await conn.execute(
                sa.insert(tool_versions)
                .values(tool_id=tool_id, version_no=await _next_no(conn, tool_id), created_by=actor,
                        state_changed_by=actor, **content, **columns)
                .returning(V.id)
            )
        ).scalar_one()


def _content_of(row) -> dict:
    return {f: getattr(row, f) for f in CONTENT_FIELDS}


async def save_draft(conn: AsyncConnection, tool_id: int, actor: str, content: dict, expected_parent: int | None) -> dict:
    """A new draft from the head the edit started from (``expected_parent``). Omitted content fields are
    taken from that parent. Refused while someone else holds the draft lock."""
    await _tool_row(conn, tool_id, for_update=True)
    lc.check_may_edit(await _lock_facts(conn, tool_id), actor, await _now(conn))
    head = await _head(conn, tool_id)
    supersede = lc.check_save(_vfacts(head) if head else None, expected_parent)
    merged = {**(_content_of(head) if head else {}), **content}
    if supersede:
        await _set_state(conn, head.id, lc.ARCHIVED, actor)
    version_id = await _insert_version(conn, tool_id, actor, merged, parent_version_id=head.id if head else None)
    await _renew_own_lock(conn, tool_id, actor)
    return await get_version(conn, tool_id, version_id)


async def submit(conn: AsyncConnection, tool_id: int, version_id: int, actor: str) -> dict:
    row = await _tool_row(conn, tool_id, for_update=True)
    version = await _version_row(conn, tool_id, version_id, for_update=True)
    state = lc.check_submit(await _facts(conn, row), _vfacts(version))
    await _set_state(conn, version_id, state, actor, submitted_at=sa.func.now(), submitted_by=actor)
    await event(conn, tool_id, "submit", actor, version_id)
    return await get_version(conn, tool_id, version_id)


def _already_reviewed(version) -> None:
    """A version that left review while this reviewer looked at it: a concurrent change, said so."""
    if version.state == lc.ARCHIVED and version.reviewed_by:
        raise ApiError(409, "conflict", details={"reason": "already_reviewed", "reviewed_by": version.reviewed_by})


async def request_changes(conn: AsyncConnection, tool_id: int, version_id: int, actor: str, message: str) -> dict:
    """in_review → archived, and a new draft (content copied) carrying the reviewer's message becomes the head."""
    message = lc.check_text("message", message, lc.MESSAGE_MAX, required=True)
    await _tool_row(conn, tool_id, for_update=True)
    version = await _version_row(conn, tool_id, version_id, for_update=True)
    _already_reviewed(version)
    state = lc.check_request_changes(_vfacts(version))
    await _set_state(conn, version_id, state, actor, reviewed_at=sa.func.now(), reviewed_by=actor)
    head = await _head(conn, tool_id)
    if head.state == lc.DRAFT:
        await _set_state(conn, head.id, lc.ARCHIVED, actor)
    draft_id = await _insert_version(conn, tool_id, actor, _content_of(version), parent_version_id=head.id,
                                     derived_from_version_id=version_id, change_message=message)
    await event(conn, tool_id, "request_changes", actor, version_id, new_draft_id=draft_id, message=message)
    return await get_version(conn, tool_id, draft_id)


async def _activate_copy(conn, tool_id: int, source, actor: str, action: str) -> int:
    active = await _active(conn, tool_id)
    if active is not None:
        lc.transition("supersede", active.state)
        await _set_state(conn, active.id, lc.ARCHIVED, actor)
    new_id = await _insert_version(conn, tool_id, actor, _content_of(source), state=lc.ACTIVE, was_active=True,
                                   derived_from_version_id=source.id, reviewed_at=sa.func.now(), reviewed_by=actor)
    await event(conn, tool_id, action, actor, new_id, source_version_id=source.id,
                previous_active_id=active.id if active else None)
    return new_id


NOT_GIVEN = object()


async def publish_version(conn: AsyncConnection, tool_id: int, version_id: int, actor: str,
                          expected_active: int | None | object = NOT_GIVEN) -> dict:
    """Copy-on-activate: the reviewed version and the previous active are archived, a copy becomes active.

    ``expected_active`` is the active version the reviewer compared against; if another reviewer published
    meanwhile it differs, and this publish is refused with 409 ``conflict``.
    """
    row = await _tool_row(conn, tool_id, for_update=True)
    version = await _version_row(conn, tool_id, version_id, for_update=True)
    facts = await _facts(conn, row)
    _already_reviewed(version)
    if expected_active is not NOT_GIVEN and expected_active != facts.active_version_id:
        raise ApiError(409, "conflict", details={"reason": "active_version_changed", "active_version_id": facts.active_version_id})
    state = lc.check_publish_version(facts, _vfacts(version), None, check_expected=False)
    await _set_state(conn, version_id, state, actor, reviewed_at=sa.func.now(), reviewed_by=actor)
    new_id = await _activate_copy(conn, tool_id, version, actor, "publish_version")
    return await get_version(conn, tool_id, new_id)


async def rollback(conn: AsyncConnection, tool_id: int, version_id: int, actor: str) -> dict:
    """Admin: a new active version copied from an archived version that was once active."""
    await _tool_row(conn, tool_id, for_update=True)
    target = await _version_row(conn, tool_id, version_id)
    lc.check_rollback(None, _vfacts(target))
    new_id = await _activate_copy(conn, tool_id, target, actor, "rollback")
    return await get_version(conn, tool_id, new_id)


def _schema_text(value) -> list[str]:
    return [] if value is None else (json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n").splitlines(True)


def _text(value) -> list[str]:
    if not value:
        return []
    return (value if value.endswith("\n") else value + "\n").splitlines(True)


async def diff(conn: AsyncConnection, tool_id: int, version_id: int) -> dict:
    """What ``version`` changes against the active version: unified diffs of source, schemas (pretty JSON),
    instructions and the entrypoint; ``changed`` names the fields that differ."""
    version = await _version_row(conn, tool_id, version_id)
    base = await _active(conn, tool_id)
    a_name = f"v{base.version_no} (active)" if base else "(no active version)"
    b_name = f"v{version.version_no} ({version.state})"
    diffs = {}
    for field in CONTENT_FIELDS:
        render = _schema_text if field.endswith("_schema") else _text
        old, new = render(getattr(base, field) if base else None), render(getattr(version, field))
        diffs[field] = "".join(difflib.unified_diff(old, new, f"{a_name}/{field}", f"{b_name}/{field}"))
    return {
        "base": _version_brief(base),
        "version": _version_brief(version),
        "diffs": diffs,
        "changed": [f for f, d in diffs.items() if d],
    }


async def review_queue(conn: AsyncConnection) -> list[dict]:
    """Versions waiting for review, oldest submission first, with their tool."""
    rows = await conn.execute(
        sa.select(V.id, V.version_no, V.submitted_at, V.submitted_by, V.tool_id, T.slug, T.title, T.summary,
                  T.is_published, T.owner_name)
        .join(tools, T.id == V.tool_id)
        .where(V.state == lc.IN_REVIEW)
        .order_by(V.submitted_at, V.id)
    )
    return [
        {"version": {"id": r.id, "version_no": r.version_no, "submitted_at": r.submitted_at, "submitted_by": r.submitted_by},
         "tool": {"id": r.tool_id, "slug": r.slug, "title": r.title, "summary": r.summary,
                  "is_published": r.is_published, "owner": r.owner_name}}
        for r in rows
    ]


# -------------------------------------------------------------------------------------------- locks


async def _now(conn):
    return (await conn.execute(sa.select(sa.func.now()))).scalar_one()


async def _lock_facts(conn, tool_id: int) -> lc.LockFacts | None:
    row = (await conn.execute(sa.select(draft_locks).where(draft_locks.c.tool_id == tool_id))).first()
    return lc.LockFacts(holder=row.holder_name, expires_at=row.expires_at) if row else None


async def get_lock(conn: AsyncConnection, tool_id: int) -> dict | None:
    row = (
        await conn.execute(
            sa.select(draft_locks).where(draft_locks.c.tool_id == tool_id, draft_locks.c.expires_at > sa.func.now())
        )
    ).first()
    if row is None:
        return None
    return {"holder": row.holder_name, "acquired_at": row.acquired_at, "expires_at": row.expires_at, "forced_by": row.forced_by}


async def acquire_lock(conn: AsyncConnection, tool_id: int, user: str, *, force: bool = False,
                       seconds: int | None = None) -> dict:
    """Take or renew the draft lock; ``force`` (reviewers, admins) takes it over from someone else."""
    await _tool_row(conn, tool_id, for_update=True)
    now = await _now(conn)
    lock = await _lock_facts(conn, tool_id)
    previous = lc.check_lock(lock, user, now, force=force)
    renewing = lc.lock_is_live(lock, now) and lock.holder == user
    await profiles.touch(conn, user)
    values = {"holder_name": user, "expires_at": lc.lock_expiry(now, seconds or LOCK_SECONDS)}
    if not renewing:
        values.update(acquired_at=now, forced_by=user if previous else None)
    stmt = pg_insert(draft_locks).values({"tool_id": tool_id, "acquired_at": now, **values})
    await conn.execute(stmt.on_conflict_do_update(index_elements=[draft_locks.c.tool_id], set_=values))
    if previous:
        await event(conn, tool_id, "lock_taken_over", user, previous_holder=previous)
    return await get_lock(conn, tool_id)


async def _renew_own_lock(conn, tool_id: int, user: str) -> None:
    now = await _now(conn)
    await conn.execute(
        sa.update(draft_locks)
        .where(draft_locks.c.tool_id == tool_id, draft_locks.c.holder_name == user, draft_locks.c.expires_at > now)
        .values(expires_at=lc.lock_expiry(now, LOCK_SECONDS))
    )


async def release_lock(conn: AsyncConnection, tool_id: int, user: str) -> None:
    await _tool_row(conn, tool_id, for_update=True)
    lc.check_lock(await _lock_facts(conn, tool_id), user, await _now(conn))
    await conn.execute(sa.delete(draft_locks).where(draft_locks.c.tool_id == tool_id))
