"""The sandbox context (docs/authoring.md): authors run content that is not published — the unsaved notebook
(a *snapshot*), a chosen version (reviewers' "try this version"), or by default the draft head.

- ``POST sandbox/snapshots`` stores the notebook's content (validated like a saved draft: schemas through the
  contract, issues with JSON pointers; syntax is left to the runner, which reports line and caret) as a
  ``sandbox_snapshots`` row that expires after 24 h, and answers its id.
- Runs, apps, sessions and settings with ``context=sandbox`` resolve their content here (``resolve_app``) instead
  of from the published active version. Only those with authoring rights on the tool get anything: the tool's
  maintainers with the author scope, reviewers and admins. Everyone else gets 404 ``tool_not_found``, exactly as
  for a tool that does not exist. A snapshot is its creator's only (another user's snapshot id is a 404 too).
- Sessions, state, files and settings of the sandbox are the same tables keyed by ``context='sandbox'``, so they
  never mix with production.

Pure data functions on the caller's ``AsyncConnection`` (one transaction), like ``runs`` and ``tools``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from . import scopes
from .errors import ApiError
from .tables import sandbox_snapshots, tool_maintainers, tool_versions, tools

SNAPSHOT_RETENTION = timedelta(hours=24)
SNAPSHOT_FIELDS = ("source", "entrypoint", "input_schema", "settings_schema", "usage_instructions")


@dataclass(frozen=True)
class SandboxAccess:
    """Who asks for sandbox content, and which content: a snapshot id, a version id, or (neither) the head."""

    user: dict | None
    snapshot: Any = None
    version: Any = None

    @property
    def user_name(self) -> str | None:
        return self.user["name"] if self.user else None


def parse_snapshot_id(value: Any) -> uuid.UUID | None:
    if value in (None, ""):
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ApiError(404, "snapshot_not_found") from None


def parse_version_id(value: Any) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise ApiError(404, "version_not_found")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(404, "version_not_found") from None


# ----------------------------------------------------------------------------------------------- the tool


async def find_tool(conn: AsyncConnection, ref: Any) -> Any:
    """A tool by slug (``"draft-12"``, ``"group-maker"``) or id; 404 ``tool_not_found``."""
    if isinstance(ref, bool) or not isinstance(ref, (str, int)):
        raise ApiError(404, "tool_not_found")
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        condition = tools.c.id == int(ref)
    else:
        condition = tools.c.slug == ref
    row = (await conn.execute(sa.select(tools).where(condition))).mappings().first()
    if row is None:
        raise ApiError(404, "tool_not_found")
    return row


async def may_author(conn: AsyncConnection, user: dict | None, tool_id: int) -> bool:
    """Authoring rights on the tool (scopes.may_author): reviewers/admins always, authors on tools they maintain."""
    if not user:
        return False
    if scopes.is_reviewer(user):
        return True
    if not scopes.has_scope(user, scopes.AUTHOR):
        return False
    maintainer = await conn.execute(
        sa.select(tool_maintainers.c.user_name)
        .where(tool_maintainers.c.tool_id == tool_id, tool_maintainers.c.user_name == user["name"])
    )
    return maintainer.first() is not None


async def authoring_tool(conn: AsyncConnection, user: dict | None, ref: Any) -> Any:
    """The tool, if ``user`` may author it; otherwise 404 ``tool_not_found`` (the sandbox does not exist for them)."""
    tool = await find_tool(conn, ref)
    if not await may_author(conn, user, tool["id"]):
        raise ApiError(404, "tool_not_found")
    return tool


# ---------------------------------------------------------------------------------------------- snapshots


async def create_snapshot(
    conn: AsyncConnection, user: dict, body: dict, *, lang: str = "en", retention: timedelta = SNAPSHOT_RETENTION,
) -> dict:
    """Store unsaved notebook content for sandbox runs. ``body``: ``{tool, source, entrypoint?, input_schema?,
    settings_schema?, usage_instructions?, base_version_id?}``; validated exactly like a saved draft."""
    from .tools import validate_content  # the lifecycle's own checks: one rule for drafts and snapshots

    unknown = sorted(set(body) - {"tool", "base_version_id", *SNAPSHOT_FIELDS})
    if unknown:
        raise ApiError(422, "unknown_fields", details={"unknown_fields": unknown}, fields=", ".join(unknown))
    tool = await authoring_tool(conn, user, body.get("tool"))
    if not isinstance(body.get("source"), str):
        raise ApiError(422, "field_required", details={"field": "source"}, field="source")
    content = validate_content({k: body[k] for k in SNAPSHOT_FIELDS if k in body}, lang)
    base = body.get("base_version_id")
    if base is not None:
        base = parse_version_id(base)
        exists = await conn.execute(
            sa.select(tool_versions.c.id).where(tool_versions.c.tool_id == tool["id"], tool_versions.c.id == base)
        )
        if exists.first() is None:
            raise ApiError(422, "invalid_field", details={"field": "base_version_id"}, field="base_version_id")
    values = {
        "source": content["source"],
        "entrypoint": content.get("entrypoint") or "run_tool",
        "input_schema": content.get("input_schema") or [],
        "settings_schema": content.get("settings_schema") if content.get("settings_schema") is not None else sa.null(),
        "usage_instructions": content.get("usage_instructions"),
    }
    row = (
        await conn.execute(
            sa.insert(sandbox_snapshots)
            .values(tool_id=tool["id"], user_name=user["name"], base_version_id=base,
                    expires_at=sa.func.now() + retention, **values)
            .returning(sandbox_snapshots.c.id, sandbox_snapshots.c.created_at, sandbox_snapshots.c.expires_at)
        )
    ).mappings().one()
    snapshot_id = str(row["id"])
    return {
        "id": snapshot_id,
        "tool": {"id": tool["id"], "slug": tool["slug"]},
        "base_version_id": base,
        "created_at": row["created_at"].isoformat(),
        "expires_at": row["expires_at"].isoformat(),
        # the author's tool app (Voila) showing this snapshot, relative to the hub's base URL
        "preview_path": f"hub/user-redirect/?tool={tool['slug']}&context=sandbox&snapshot={snapshot_id}",
    }


async def sweep(conn: AsyncConnection, limit: int = 500) -> int:
    """Delete expired snapshots (their runs keep their rows; ``runs.snapshot_id`` becomes NULL)."""
    due = (
        sa.select(sandbox_snapshots.c.id)
        .where(sandbox_snapshots.c.expires_at < sa.func.now())
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    deleted = await conn.execute(
        sa.delete(sandbox_snapshots).where(sandbox_snapshots.c.id.in_(due.scalar_subquery())).returning(sandbox_snapshots.c.id)
    )
    return len(deleted.all())


# ---------------------------------------------------------------------------------------------- resolving


async def resolve_app(conn: AsyncConnection, ref: Any, access: SandboxAccess | None) -> dict:
    """The tool and the content a sandbox run executes, in the shape of ``runs.resolve_app`` (plus
    ``snapshot_id``; ``version_id`` is None for a snapshot). 404 for anyone without authoring rights."""
    if access is None:
        raise ApiError(404, "tool_not_found")
    tool = await authoring_tool(conn, access.user, ref)
    base = {
        "tool_id": tool["id"], "slug": tool["slug"], "title": tool["title"], "summary": tool["summary"],
        "owner_name": tool["owner_name"],
    }
    snapshot_id = parse_snapshot_id(access.snapshot)
    if snapshot_id is not None:
        row = (
            await conn.execute(
                sa.select(sandbox_snapshots).where(
                    sandbox_snapshots.c.id == snapshot_id,
                    sandbox_snapshots.c.tool_id == tool["id"],
                    sandbox_snapshots.c.user_name == access.user_name,
                    sandbox_snapshots.c.expires_at > sa.func.now(),
                )
            )
        ).mappings().first()
        if row is None:
            raise ApiError(404, "snapshot_not_found")
        return {**base, "version_id": None, "version_no": None, "snapshot_id": row["id"],
                "expires_at": row["expires_at"], **{f: row[f] for f in SNAPSHOT_FIELDS}}

    version_id = parse_version_id(access.version)
    query = sa.select(tool_versions).where(tool_versions.c.tool_id == tool["id"])
    if version_id is not None:
        query = query.where(tool_versions.c.id == version_id)
    else:  # the draft head: the newest version
        query = query.order_by(tool_versions.c.version_no.desc()).limit(1)
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise ApiError(404, "version_not_found")
    return {**base, "version_id": row["id"], "version_no": row["version_no"], "snapshot_id": None,
            "version_state": row["state"], **{f: row[f] for f in SNAPSHOT_FIELDS}}


def app_extra(app: Any) -> dict:
    """What ``GET apps/{slug}?context=sandbox`` adds to the app model: which content it shows."""
    if "snapshot_id" not in app:
        return {}
    expires = app.get("expires_at")
    return {"sandbox": {
        "snapshot_id": str(app["snapshot_id"]) if app["snapshot_id"] else None,
        "version_id": app["version_id"],
        "version_state": app.get("version_state"),
        "expires_at": expires.isoformat() if expires is not None else None,
    }}
