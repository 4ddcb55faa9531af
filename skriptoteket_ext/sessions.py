"""Sessions (contract §5): per (tool, user, context) state, ``state_rev``, offered actions and kept files; and
per-user tool settings.

Functions take an open ``AsyncConnection`` inside the caller's transaction. Blob keys that must be deleted once
the transaction has committed are appended to ``cleanup`` (the caller deletes them after the commit, so a
rollback never leaves rows pointing at deleted bytes).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from .contract import Caps, DEFAULT_CAPS, Issue, normalize_inputs, settings_schema_hash
from .errors import ApiError
from .tables import runs, session_files, sessions, tool_settings


class InvalidInputs(ApiError):
    """422 ``invalid_inputs`` with ``details.issues``; handlers translate the issues to the caller's language."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__(422, "invalid_inputs", details={"issues": [i.to_dict() for i in issues]})
        self.issues = issues


def empty_session() -> dict:
    return {"id": None, "state_rev": 0, "offered_actions": [], "files": [], "last_run_id": None, "last_payload": None}


async def find(conn: AsyncConnection, tool_id: int, user: str, context: str) -> Any:
    return (
        await conn.execute(
            select(sessions).where(
                sessions.c.tool_id == tool_id, sessions.c.user_name == user, sessions.c.context == context
            )
        )
    ).mappings().first()


async def lock(conn: AsyncConnection, tool_id: int, user: str, context: str) -> Any:
    """The user's session row for the tool, created if missing, locked (``FOR UPDATE``) until the transaction
    ends: every change of state, rev, offered actions or files goes through this lock."""
    locked = (
        select(sessions)
        .where(sessions.c.tool_id == tool_id, sessions.c.user_name == user, sessions.c.context == context)
        .with_for_update()
    )
    row = (await conn.execute(locked)).mappings().first()
    if row is not None:  # the usual case: one statement
        return row
    await conn.execute(
        insert(sessions)
        .values(tool_id=tool_id, user_name=user, context=context)
        .on_conflict_do_nothing(index_elements=["tool_id", "user_name", "context"])
    )
    return (await conn.execute(locked)).mappings().one()


async def files_of(conn: AsyncConnection, session_id: int) -> list:
    return list(
        (
            await conn.execute(
                select(session_files).where(session_files.c.session_id == session_id).order_by(session_files.c.position)
            )
        ).mappings()
    )


def file_models(session_id: int, rows) -> list[dict]:
    return [
        {"position": r["position"], "name": r["name"], "bytes": r["size"], "url": f"sessions/{session_id}/files/{r['position']}"}
        for r in rows
    ]


async def model(conn: AsyncConnection, session) -> dict:
    """What a client may see of a session (never the blob keys; the state goes to tool code only)."""
    if session is None:
        return empty_session()
    last_payload = None
    if session["last_run_id"] is not None:
        last_payload = (
            await conn.execute(select(runs.c.result_payload).where(runs.c.id == session["last_run_id"]))
        ).scalar()
    return {
        "id": session["id"],
        "state_rev": session["state_rev"],
        "offered_actions": session["offered_actions"],
        "files": file_models(session["id"], await files_of(conn, session["id"])),
        "last_run_id": str(session["last_run_id"]) if session["last_run_id"] else None,
        "last_payload": last_payload,
    }


async def drop_files(conn: AsyncConnection, session_id: int, cleanup: list[str]) -> None:
    removed = await conn.execute(
        delete(session_files).where(session_files.c.session_id == session_id).returning(session_files.c.blob_key)
    )
    cleanup.extend(removed.scalars())


async def replace_files(conn: AsyncConnection, session_id: int, files: list[dict], cleanup: list[str]) -> None:
    """The session's files become ``files`` ({position, name, size, blob_key, content_type})."""
    await drop_files(conn, session_id, cleanup)
    new_keys = {f["blob_key"] for f in files}
    cleanup[:] = [key for key in cleanup if key not in new_keys]
    if files:
        await conn.execute(insert(session_files), [{"session_id": session_id, **f} for f in files])


async def touch_files(conn: AsyncConnection, session_id: int) -> None:
    await conn.execute(
        update(session_files).where(session_files.c.session_id == session_id).values(last_used_at=func.now())
    )


async def clear(conn: AsyncConnection, tool_id: int, user: str, context: str, cleanup: list[str]) -> dict:
    """"Clear memory": state, offered actions and files removed, ``state_rev`` + 1 (other tabs must reload)."""
    if await find(conn, tool_id, user, context) is None:
        return empty_session()
    session = await lock(conn, tool_id, user, context)
    await drop_files(conn, session["id"], cleanup)
    row = (
        await conn.execute(
            update(sessions)
            .where(sessions.c.id == session["id"])
            .values(state={}, offered_actions=[], last_run_id=None, state_rev=sessions.c.state_rev + 1, updated_at=func.now())
            .returning(*sessions.c)
        )
    ).mappings().one()
    return await model(conn, row)


async def file_for_download(conn: AsyncConnection, user: str, session_id: int, position: int) -> Any:
    """A session file of ``user``'s own session, or 404 whatever the reason (ids reveal nothing)."""
    row = (
        await conn.execute(
            select(session_files)
            .join(sessions, sessions.c.id == session_files.c.session_id)
            .where(session_files.c.session_id == session_id, session_files.c.position == position, sessions.c.user_name == user)
        )
    ).mappings().first()
    if row is None:
        raise ApiError(404, "file_not_found")
    await conn.execute(update(session_files).where(session_files.c.id == row["id"]).values(last_used_at=func.now()))
    return row


# ------------------------------------------------------------------------------------------------ settings


def _settings_key(tool_id: int, user: str, context: str, schema_hash: str):
    return and_(
        tool_settings.c.user_name == user,
        tool_settings.c.tool_id == tool_id,
        tool_settings.c.context == context,
        tool_settings.c.schema_hash == schema_hash,
    )


async def read_settings(conn: AsyncConnection, tool_id: int, user: str, context: str, schema: list | None) -> dict:
    """``{schema_hash, values}``: the saved values for exactly this schema (a changed schema starts fresh)."""
    schema_hash = settings_schema_hash(schema)
    if not schema:  # no settings fields: nothing can have been saved but {} (saves a query per run and page)
        return {"schema_hash": schema_hash, "values": {}}
    value = (
        await conn.execute(select(tool_settings.c.value).where(_settings_key(tool_id, user, context, schema_hash)))
    ).scalar()
    return {"schema_hash": schema_hash, "values": value or {}}


async def save_settings(
    conn: AsyncConnection, tool_id: int, user: str, context: str, schema: list | None, values: Any,
    *, caps: Caps = DEFAULT_CAPS,
) -> dict:
    """Validate ``values`` against the settings schema (strings kept verbatim) and save them; 422 with issues."""
    normalized, issues = normalize_inputs(schema or [], values, 0, settings=True, caps=caps)
    if issues:
        raise InvalidInputs(issues)
    schema_hash = settings_schema_hash(schema)
    stmt = insert(tool_settings).values(
        user_name=user, tool_id=tool_id, context=context, schema_hash=schema_hash, value=normalized
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["user_name", "tool_id", "context", "schema_hash"],
            set_={"value": stmt.excluded.value, "updated_at": func.now()},
        )
    )
    return {"schema_hash": schema_hash, "values": normalized}
