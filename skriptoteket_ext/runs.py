"""Runs (docs/api.md, "The teacher's path"): resolve the app, create a run, take its uploads and artifacts,
finish it with the authoritative normalizer, read it back, and sweep runs that never finished.

Every public function runs inside the caller's single transaction (``async with engine.begin()``); blob keys
to delete after the commit go to ``cleanup`` (see ``sessions``). The service decides everything that matters
here — the inputs, the action, the state, the payload — from its own records; the client only reports.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from . import sandbox, sessions
from .blobs import BlobStore
from .contract import DEFAULT_CAPS, Caps, Issue, artifact_id_for, normalize_inputs, normalize_result, validate_action_input
from .contract.artifacts import OUTPUT_PREFIX, relative_output_path
from .contract.canonical import truncate_utf8
from .errors import ApiError
from .i18n import translate
from .sessions import InvalidInputs
from .tables import RUN_CONTEXTS, artifacts, runs, session_files, tool_maintainers, tool_versions, tools
from .tables import sessions as session_table

NEVER_COMPLETED = "Execution failed (the run never completed)."
SESSION_FILE_MODES = ("none", "reuse", "clear")
MiB = 1024 * 1024


@dataclass(frozen=True)
class Policy:
    """The deployment's numbers for runs (traitlets on the app; contract §6–§7 defaults)."""

    caps: Caps = DEFAULT_CAPS
    timeout_production: int = 120
    timeout_sandbox: int = 60
    grace: int = 60
    artifact_bytes_per_run: int = 256 * MiB
    artifact_retention: timedelta = timedelta(days=7)
    session_file_idle: timedelta = timedelta(hours=24)
    snapshot_retention: timedelta = sandbox.SNAPSHOT_RETENTION  # sandbox snapshots (authoring)
    sweep_batch: int = 500

    def timeout(self, context: str) -> int:
        return self.timeout_sandbox if context == "sandbox" else self.timeout_production


DEFAULT_POLICY = Policy()


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def parse_run_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise ApiError(404, "run_not_found") from None


def check_context(context: Any) -> str:
    if context not in RUN_CONTEXTS:
        raise ApiError(422, "invalid", details={"field": "context", "allowed": list(RUN_CONTEXTS)})
    return context


# ------------------------------------------------------------------------------------------------ the app


async def resolve_app(
    conn: AsyncConnection, slug: Any, context: str, access: sandbox.SandboxAccess | None = None
) -> Any:
    """The tool and the version a run of ``context`` executes; 404 ``tool_not_found`` otherwise.

    Production: a published tool and its active version. Sandbox: the snapshot, version or draft head that
    ``access`` names, for those with authoring rights on the tool only (``sandbox.resolve_app``).
    """
    check_context(context)
    if context == "sandbox":
        return await sandbox.resolve_app(conn, slug, access)
    if not isinstance(slug, str):
        raise ApiError(404, "tool_not_found")
    row = (
        await conn.execute(
            select(
                tools.c.id.label("tool_id"), tools.c.slug, tools.c.title, tools.c.summary, tools.c.owner_name,
                tool_versions.c.id.label("version_id"), tool_versions.c.version_no, tool_versions.c.source,
                tool_versions.c.entrypoint, tool_versions.c.input_schema, tool_versions.c.settings_schema,
                tool_versions.c.usage_instructions,
            )
            .join(tool_versions, and_(tool_versions.c.tool_id == tools.c.id, tool_versions.c.state == "active"))
            .where(tools.c.slug == slug, tools.c.is_published)
        )
    ).mappings().first()
    if row is None:
        raise ApiError(404, "tool_not_found")
    return row


def limits(caps: Caps) -> dict:
    return {
        "max_files": caps.upload_max_files,
        "max_file_bytes": caps.upload_file_bytes,
        "max_run_bytes": caps.upload_run_bytes,
    }


async def app_model(conn: AsyncConnection, user: str, slug: str, context: str, policy: Policy = DEFAULT_POLICY,
                    access: sandbox.SandboxAccess | None = None) -> dict:
    """Everything the tool app needs to draw the page (``GET apps/{slug}``)."""
    app = await resolve_app(conn, slug, context, access)
    session = await sessions.find(conn, app["tool_id"], user, context)
    return {
        "tool": {
            "id": app["tool_id"], "slug": app["slug"], "title": app["title"], "summary": app["summary"],
            "usage_instructions": app["usage_instructions"],
        },
        "version": {
            "id": app["version_id"], "version_no": app["version_no"], "input_schema": app["input_schema"],
            "settings_schema": app["settings_schema"],
        },
        "context": context,
        "session": await sessions.model(conn, session),
        "settings": await sessions.read_settings(conn, app["tool_id"], user, context, app["settings_schema"]),
        "limits": limits(policy.caps),
        **sandbox.app_extra(app),
    }


# --------------------------------------------------------------------------------------------- file names

_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f<>:\"|?*]")


def safe_file_name(name: str) -> str:
    """A plain base name: no directories, no control or shell-hostile characters, no leading dots, ≤ 200 bytes."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("_", name).strip().lstrip(".").strip()
    if len(name.encode("utf-8")) > 200:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and len(ext) <= 16 else ""
        stem = (stem if ext else name).encode("utf-8")[: 200 - len(ext) - 1].decode("utf-8", "ignore")
        name = f"{stem}.{ext}" if ext else stem
    return name or "file"


def unique_names(names: list[str]) -> list[str]:
    """De-duplicate (case-insensitively) as ``a.csv``, ``a (2).csv``, ``a (3).csv``…"""
    seen: set[str] = set()
    result = []
    for name in names:
        candidate, n = name, 2
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, dot, ext = name, "", ""
        while candidate.lower() in seen:
            candidate = f"{stem} ({n}){dot}{ext}"
            n += 1
        seen.add(candidate.lower())
        result.append(candidate)
    return result


_RISKY_TYPE = re.compile(r"html|xml|javascript|ecmascript|svg", re.IGNORECASE)


def safe_content_type(name: str) -> str:
    """A guessed type for downloads, never one a browser would render as a page or script."""
    guessed, _ = mimetypes.guess_type(name, strict=False)
    if not guessed or _RISKY_TYPE.search(guessed):
        return "application/octet-stream"
    return guessed


# ------------------------------------------------------------------------------------------- create a run


@dataclass
class RunRequest:
    tool: Any
    context: str
    inputs: Any
    files: list[dict]
    session_files: str
    action: dict | None
    expected_state_rev: int | None


def _bad(field_name: str, **details: Any) -> ApiError:
    return ApiError(422, "invalid", details={"field": field_name, **details})


def parse_run_request(body: dict, caps: Caps) -> RunRequest:
    context = check_context(body.get("context", "production"))
    rev = body.get("expected_state_rev")
    if rev is not None and (not isinstance(rev, int) or isinstance(rev, bool) or rev < 0):
        raise _bad("expected_state_rev")
    mode = body.get("session_files") or "none"
    if mode not in SESSION_FILE_MODES:
        raise _bad("session_files", allowed=list(SESSION_FILE_MODES))
    action = body.get("action")
    if action is not None:
        if not isinstance(action, dict) or not isinstance(action.get("action_id"), str):
            raise _bad("action")
        if rev is None:
            raise _bad("expected_state_rev", reason="required for actions")
    files = body.get("files") or []
    if not isinstance(files, list):
        raise _bad("files")
    manifest = []
    for item in files:
        size = item.get("bytes") if isinstance(item, dict) else None
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name.strip() or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _bad("files", reason="each file needs a name and a size in bytes")
        manifest.append({"name": safe_file_name(name), "bytes": size})
    check_upload_limits(manifest, caps)
    for position, name in enumerate(unique_names([f["name"] for f in manifest])):
        manifest[position] = {"position": position, "name": name, "bytes": manifest[position]["bytes"]}
    return RunRequest(body.get("tool"), context, body.get("inputs"), manifest, mode, action, rev)


def check_upload_limits(files: list[dict], caps: Caps) -> None:
    """The platform's upload caps (§6), before anything is stored: 413 with what was too much."""
    if len(files) > caps.upload_max_files:
        raise ApiError(413, "too_many_files", details={"count": len(files), "max_files": caps.upload_max_files},
                       max=caps.upload_max_files)
    for f in files:
        if f["bytes"] > caps.upload_file_bytes:
            raise ApiError(413, "file_too_large", details={"name": f["name"], "bytes": f["bytes"],
                           "max_file_bytes": caps.upload_file_bytes}, name=f["name"], max_mb=caps.upload_file_bytes // 1_000_000)
    total = sum(f["bytes"] for f in files)
    if total > caps.upload_run_bytes:
        raise ApiError(413, "run_too_large", details={"bytes": total, "max_run_bytes": caps.upload_run_bytes},
                       max_mb=caps.upload_run_bytes // 1_000_000)


async def create_run(
    conn: AsyncConnection, user: str, body: dict, cleanup: list[str], policy: Policy = DEFAULT_POLICY,
    access: sandbox.SandboxAccess | None = None,
) -> dict:
    """Validate a run request completely (before any code runs) and create the ``running`` row.

    Order: the tool (404), the request's shape and upload limits (422/413), the session's rev under a row lock (409
    ``session_changed``: nothing created), the inputs or the action (422 ``invalid_inputs`` with issues).
    """
    caps = policy.caps
    app = await resolve_app(conn, body.get("tool"), check_context(body.get("context", "production")), access)
    request = parse_run_request(body, caps)
    session = await sessions.lock(conn, app["tool_id"], user, request.context)
    if request.expected_state_rev is not None and request.expected_state_rev != session["state_rev"]:
        raise ApiError(409, "session_changed", details={"state_rev": session["state_rev"]})

    # the session's files matter only to actions and to first runs that reuse them
    needs_files = request.action is not None or (request.session_files == "reuse" and not request.files)
    current_files = await sessions.files_of(conn, session["id"]) if needs_files else []
    given_files: list = []
    action_model = None
    if request.action is not None:
        if request.files:
            raise InvalidInputs([Issue("/files", "contract.input.files_unexpected", {"count": len(request.files)})])
        action_id = request.action["action_id"]
        values, issues = validate_action_input(session["offered_actions"], action_id, request.action.get("input"), caps=caps)
        given_files = current_files
        action_model = {"action_id": action_id, "input": values, "state": session["state"]}
    else:
        fields = app["input_schema"] or []
        if request.files:
            count = len(request.files)
        elif request.session_files == "reuse":
            given_files = current_files
            count = len(given_files)
        else:
            count = 0
        values, issues = normalize_inputs(fields, request.inputs, count, caps=caps)
        if request.session_files == "clear" and not request.files and not issues:
            await sessions.drop_files(conn, session["id"], cleanup)
    if issues:
        raise InvalidInputs(issues)
    if given_files:
        await sessions.touch_files(conn, session["id"])

    settings = await sessions.read_settings(conn, app["tool_id"], user, request.context, app["settings_schema"])
    timeout = policy.timeout(request.context)
    manifest = {
        "files": request.files,
        "session_files": [{"position": f["position"], "name": f["name"], "bytes": f["size"]} for f in given_files],
        "session_rev": session["state_rev"],  # the rev the result's state write expects
    }
    run = (
        await conn.execute(
            insert(runs)
            .values(
                tool_id=app["tool_id"], version_id=app["version_id"], snapshot_id=app.get("snapshot_id"),
                user_name=user, context=request.context,
                status="running", deadline_at=func.now() + timedelta(seconds=timeout + policy.grace),
                input_values=values, input_manifest=manifest,
                action_id=action_model["action_id"] if action_model else None, session_id=session["id"],
            )
            .returning(runs.c.id, runs.c.status, runs.c.context, runs.c.deadline_at, runs.c.requested_at)
        )
    ).mappings().one()
    run_id = str(run["id"])
    return {
        "run": {"id": run_id, "status": run["status"], "context": run["context"], "deadline_at": iso(run["deadline_at"]),
                "requested_at": iso(run["requested_at"])},
        "execution": {
            "source": app["source"], "entrypoint": app["entrypoint"], "inputs": values,
            "settings": settings["values"], "action": action_model, "timeout_seconds": timeout,
        },
        "uploads": [{**f, "url": f"runs/{run_id}/inputs/{f['position']}"} for f in request.files],
        "session_files": sessions.file_models(session["id"], given_files),
        "session": {"id": session["id"], "state_rev": session["state_rev"]},
    }


# ----------------------------------------------------------------------------------- uploads, artifacts


async def _lock_running(conn: AsyncConnection, user: str, run_id: uuid.UUID) -> Any:
    """The caller's own run, locked; 404 for anyone else's, 409 ``run_finished`` once it is over."""
    run = (
        await conn.execute(
            select(runs, func.now().label("db_now")).where(runs.c.id == run_id, runs.c.user_name == user).with_for_update(of=runs)
        )
    ).mappings().first()
    if run is None:
        raise ApiError(404, "run_not_found")
    if run["status"] != "running" or run["deadline_at"] <= run["db_now"]:
        raise ApiError(409, "run_finished")
    return run


def input_key(run_id: Any, position: int) -> str:
    return f"runs/{run_id}/inputs/{position}"


def artifact_key(run_id: Any, artifact_id: str) -> str:
    return f"runs/{run_id}/artifacts/{artifact_id}"


async def store_input(
    conn: AsyncConnection, store: BlobStore, user: str, run_id: uuid.UUID, position: int, data: bytes,
    policy: Policy = DEFAULT_POLICY,
) -> dict:
    """One announced input file, exactly the announced size. Kept under the run until the run finishes; a
    first run's uploads then become the session's files."""
    run = await _lock_running(conn, user, run_id)
    manifest = run["input_manifest"]
    files = manifest.get("files") or []
    if not 0 <= position < len(files):
        raise ApiError(404, "upload_not_found")
    announced = files[position]
    if len(data) > policy.caps.upload_file_bytes:
        raise ApiError(413, "file_too_large", details={"name": announced["name"], "bytes": len(data),
                       "max_file_bytes": policy.caps.upload_file_bytes},
                       name=announced["name"], max_mb=policy.caps.upload_file_bytes // 1_000_000)
    if len(data) != announced["bytes"]:
        raise ApiError(422, "size_mismatch", details={"expected": announced["bytes"], "received": len(data)},
                       name=announced["name"])
    await asyncio.to_thread(store.put, input_key(run_id, position), data)
    files[position] = {**announced, "received": True}
    await conn.execute(update(runs).where(runs.c.id == run_id).values(input_manifest={**manifest, "files": files}))
    return {"position": position, "name": announced["name"], "bytes": len(data)}


def check_artifact_id(artifact_id: str, rel_path: str) -> bool:
    """The id must be the one the contract gives the path (§7): its base id, or base_N after a clash."""
    base = artifact_id_for([rel_path])[rel_path]
    return artifact_id == base or re.fullmatch(re.escape(base) + r"_([2-9]|[1-9]\d+)", artifact_id) is not None


async def store_artifact(
    conn: AsyncConnection, store: BlobStore, user: str, run_id: uuid.UUID, artifact_id: str, path: Any,
    data: bytes, policy: Policy = DEFAULT_POLICY,
) -> dict:
    rel = relative_output_path(OUTPUT_PREFIX + path) if isinstance(path, str) else None
    if rel is None:
        raise ApiError(422, "invalid_artifact_path")
    if not check_artifact_id(artifact_id, rel):
        raise ApiError(422, "artifact_id_mismatch", details={"expected": artifact_id_for([rel])[rel]})
    await _lock_running(conn, user, run_id)
    existing = list(
        (await conn.execute(select(artifacts.c.artifact_id, artifacts.c.path, artifacts.c.bytes).where(artifacts.c.run_id == run_id))).mappings()
    )
    if any(a["path"] == rel and a["artifact_id"] != artifact_id for a in existing):
        raise ApiError(422, "artifact_id_mismatch", details={"expected": next(a["artifact_id"] for a in existing if a["path"] == rel)})
    total = sum(a["bytes"] for a in existing if a["artifact_id"] != artifact_id) + len(data)
    if total > policy.artifact_bytes_per_run:
        raise ApiError(413, "artifacts_too_large", details={"max_bytes": policy.artifact_bytes_per_run},
                       max_mb=policy.artifact_bytes_per_run // MiB)
    key = artifact_key(run_id, artifact_id)
    await asyncio.to_thread(store.put, key, data)
    values = {
        "path": rel, "bytes": len(data), "blob_key": key, "content_type": safe_content_type(rel),
        "expires_at": func.now() + policy.artifact_retention, "expired_at": None,
    }
    stmt = insert(artifacts).values(run_id=run_id, artifact_id=artifact_id, **values)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["run_id", "artifact_id"], set_=values))
    return {"id": artifact_id, "path": OUTPUT_PREFIX + rel, "bytes": len(data)}


# ------------------------------------------------------------------------------------------- finish a run


@dataclass
class Finished:
    body: dict
    conflict: bool = False
    cleanup: list[str] = field(default_factory=list)


def _log(text: Any, limit: int) -> str | None:
    if not isinstance(text, str) or not text:
        return None
    return truncate_utf8(text, limit)[0]


async def finish_run(
    conn: AsyncConnection, user: str, run_id: uuid.UUID, body: dict, cleanup: list[str],
    policy: Policy = DEFAULT_POLICY, lang: str = "en",
) -> Finished:
    """Store the result of a run: the normalized payload (authoritative), logs, the artifacts that were really
    uploaded, and the session (state with the rev the run was created with; offered actions; files).

    A state conflict does not lose the run: it is stored as failed and ``Finished.conflict`` is set, so the
    caller commits and then answers 409 ``session_changed``.
    """
    caps = policy.caps
    run = await _lock_running(conn, user, run_id)
    payload = normalize_result(body.get("envelope"), caps)

    # Only artifacts whose bytes arrived are offered, with the size actually stored.
    uploaded = {
        (a["artifact_id"], a["path"]): a
        for a in (await conn.execute(select(artifacts).where(artifacts.c.run_id == run_id))).mappings()
    }
    offered = []
    for entry in payload["artifacts"]:
        row = uploaded.pop((entry["id"], entry["path"][len(OUTPUT_PREFIX):]), None)
        if row is not None:
            offered.append({**entry, "bytes": row["bytes"]})
    payload["artifacts"] = offered
    for (artifact_id, _), row in uploaded.items():  # uploaded but not in the result: not offered, not kept
        await conn.execute(delete(artifacts).where(artifacts.c.run_id == run_id, artifacts.c.artifact_id == artifact_id))
        cleanup.append(row["blob_key"])

    stderr = body.get("stderr") if isinstance(body.get("stderr"), str) else ""
    traceback = body.get("traceback")
    if isinstance(traceback, str) and traceback and traceback not in stderr:
        stderr = (stderr + "\n" if stderr and not stderr.endswith("\n") else stderr) + traceback

    table = session_table
    session = (
        await conn.execute(
            select(table.c.id, table.c.state_rev, table.c.offered_actions)
            .where(table.c.id == run["session_id"])
            .with_for_update()
        )
    ).mappings().first()
    is_action = run["action_id"] is not None
    writes_state = is_action or bool(payload["next_actions"])
    conflict = session is None or (writes_state and session["state_rev"] != run["input_manifest"].get("session_rev"))
    if conflict:
        message = translate("error.session_changed", lang)
        payload = {**payload, "status": "failed", "error_summary": message, "next_actions": []}
    elif writes_state:
        new_session = {
            "state": payload["state"] if payload["state"] is not None else {},
            "offered_actions": payload["next_actions"], "state_rev": session["state_rev"] + 1,
        }
    else:
        # A first run without follow-ups leaves the state alone; earlier actions are no longer offered (and
        # other tabs that still show them must reload, hence the rev when there were any).
        new_session = {"offered_actions": [], "state_rev": session["state_rev"] + (1 if session["offered_actions"] else 0)}

    exec_ms = (body.get("timings") or {}).get("exec_ms") if isinstance(body.get("timings"), dict) else None
    started = func.now() - timedelta(milliseconds=exec_ms) if isinstance(exec_ms, int) and 0 <= exec_ms < 10**8 else None
    finished = (
        await conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(
                status=payload["status"], finished_at=func.now(), started_at=started,
                error_summary=payload["error_summary"], result_payload=payload,
                stdout=_log(body.get("stdout"), caps.stdout_bytes), stderr=_log(stderr, caps.stderr_bytes),
            )
            .returning(*runs.c)
        )
    ).mappings().one()

    input_files = run["input_manifest"].get("files") or []
    received = [f for f in input_files if f.get("received")]
    if conflict:
        cleanup.append(f"runs/{run_id}/inputs/")
        state_rev = session["state_rev"] if session else 0
    else:
        await conn.execute(
            update(session_table)
            .where(session_table.c.id == session["id"])
            .values(**new_session, last_run_id=run_id, updated_at=func.now())
        )
        state_rev = new_session["state_rev"]
        if not is_action and input_files:
            # A first run's uploads become the session's files, replacing earlier ones.
            await sessions.replace_files(conn, session["id"], [
                {"position": f["position"], "name": f["name"], "size": f["bytes"],
                 "blob_key": input_key(run_id, f["position"]), "content_type": safe_content_type(f["name"])}
                for f in received
            ], cleanup)
    result = {
        "run": run_summary(finished),
        "payload": payload,
        "session": {"id": run["session_id"], "state_rev": state_rev},
    }
    if run["context"] == "sandbox":  # the author's own sandbox run: the logs come back with the result
        result["logs"] = {"stdout": finished["stdout"] or "", "stderr": finished["stderr"] or ""}
    return Finished(result, conflict=conflict)


# ------------------------------------------------------------------------------------------ reading runs


def run_summary(row: Any, tool: Any = None) -> dict:
    model = {
        "id": str(row["id"]), "status": row["status"], "context": row["context"],
        "requested_at": iso(row["requested_at"]), "finished_at": iso(row["finished_at"]),
        "deadline_at": iso(row["deadline_at"]), "error_summary": row["error_summary"], "action_id": row["action_id"],
    }
    if tool is not None:
        model["tool"] = {"slug": tool["slug"], "title": tool["title"]}
    return model


async def list_runs(
    conn: AsyncConnection, user: str, *, limit: int = 20, before: str | None = None, tool: str | None = None,
    cleanup: list[str] | None = None,
) -> dict:
    """The caller's runs, newest first. ``before`` is the id of the last run of the previous page."""
    await sweep_overdue(conn, cleanup if cleanup is not None else [], user=user)
    limit = max(1, min(int(limit), 100))
    query = (
        select(runs, tools.c.slug, tools.c.title)
        .join(tools, tools.c.id == runs.c.tool_id)
        .where(runs.c.user_name == user)
        .order_by(runs.c.requested_at.desc(), runs.c.id.desc())
        .limit(limit + 1)
    )
    if tool:
        query = query.where(tools.c.slug == tool)
    if before:
        try:
            before_id = uuid.UUID(before)
        except ValueError:
            raise _bad("before") from None
        cursor = select(runs.c.requested_at, runs.c.id).where(runs.c.id == before_id, runs.c.user_name == user)
        anchor = (await conn.execute(cursor)).first()
        if anchor is None:
            raise _bad("before")
        query = query.where(tuple_(runs.c.requested_at, runs.c.id) < tuple_(anchor.requested_at, anchor.id))
    rows = list((await conn.execute(query)).mappings())
    page = rows[:limit]
    return {
        "runs": [run_summary(r, r) for r in page],
        "next_before": str(page[-1]["id"]) if len(rows) > limit else None,
    }


async def may_see_logs(conn: AsyncConnection, user: str, tool_id: int, is_author: bool, is_reviewer: bool) -> bool:
    """Run logs: reviewers and admins; authors for tools they own or maintain."""
    if is_reviewer:
        return True
    if not is_author:
        return False
    owner = (await conn.execute(select(tools.c.owner_name).where(tools.c.id == tool_id))).scalar()
    if owner == user:
        return True
    maintainer = await conn.execute(
        select(tool_maintainers.c.user_name).where(tool_maintainers.c.tool_id == tool_id, tool_maintainers.c.user_name == user)
    )
    return maintainer.first() is not None


async def get_run(
    conn: AsyncConnection, user: str, run_id: uuid.UUID, *, is_author: bool = False, is_reviewer: bool = False,
    cleanup: list[str] | None = None,
) -> dict:
    """A run with its payload: the owner, reviewers and admins; anyone else 404 (ids reveal nothing)."""
    await sweep_overdue(conn, cleanup if cleanup is not None else [], run_id=run_id)
    row = (
        await conn.execute(
            select(runs, tools.c.slug, tools.c.title).join(tools, tools.c.id == runs.c.tool_id).where(runs.c.id == run_id)
        )
    ).mappings().first()
    if row is None or (row["user_name"] != user and not is_reviewer):
        raise ApiError(404, "run_not_found")
    listed = (
        await conn.execute(select(artifacts).where(artifacts.c.run_id == run_id).order_by(artifacts.c.path))
    ).mappings()
    model = {
        **run_summary(row, row),
        "user_name": row["user_name"],
        "version_id": row["version_id"],
        "started_at": iso(row["started_at"]),
        "input_values": row["input_values"],
        "input_manifest": {
            "files": [{k: f[k] for k in ("position", "name", "bytes")} for f in row["input_manifest"].get("files") or []],
            "session_files": row["input_manifest"].get("session_files") or [],
        },
        "payload": row["result_payload"],
        "artifacts": [
            {"id": a["artifact_id"], "path": OUTPUT_PREFIX + a["path"], "bytes": a["bytes"],
             "expired": a["expired_at"] is not None, "url": f"runs/{run_id}/artifacts/{a['artifact_id']}"}
            for a in listed
        ],
    }
    if await may_see_logs(conn, user, row["tool_id"], is_author, is_reviewer):
        model["stdout"], model["stderr"] = row["stdout"], row["stderr"]
    return model


async def artifact_for_download(conn: AsyncConnection, user: str, run_id: uuid.UUID, artifact_id: str) -> Any:
    """An artifact of the caller's own run; 404 for anyone else's, 410 once retention removed it."""
    row = (
        await conn.execute(
            select(artifacts)
            .join(runs, runs.c.id == artifacts.c.run_id)
            .where(artifacts.c.run_id == run_id, artifacts.c.artifact_id == artifact_id, runs.c.user_name == user)
        )
    ).mappings().first()
    if row is None:
        raise ApiError(404, "artifact_not_found")
    if row["expired_at"] is not None:
        raise ApiError(410, "artifact_expired")
    return row


# ------------------------------------------------------------------------------------------------- sweeps


def never_completed_payload() -> dict:
    return {"contract_version": 2, "status": "failed", "error_summary": NEVER_COMPLETED, "outputs": [],
            "next_actions": [], "state": None, "artifacts": []}


async def sweep_overdue(
    conn: AsyncConnection, cleanup: list[str], *, user: str | None = None, run_id: uuid.UUID | None = None,
    limit: int = 500,
) -> int:
    """Runs still ``running`` after their deadline become ``failed`` ("the run never completed")."""
    overdue = select(runs.c.id).where(runs.c.status == "running", runs.c.deadline_at < func.now())
    if user is not None:
        overdue = overdue.where(runs.c.user_name == user)
    if run_id is not None:
        overdue = overdue.where(runs.c.id == run_id)
    overdue = overdue.limit(limit).with_for_update(skip_locked=True)
    swept = (
        await conn.execute(
            update(runs)
            .where(runs.c.id.in_(overdue.scalar_subquery()))
            .values(status="failed", finished_at=func.now(), error_summary=NEVER_COMPLETED,
                    result_payload=never_completed_payload())
            .returning(runs.c.id)
        )
    ).scalars().all()
    cleanup.extend(f"runs/{rid}/inputs/" for rid in swept)  # never adopted by the session
    return len(swept)


async def sweep(conn: AsyncConnection, cleanup: list[str], policy: Policy = DEFAULT_POLICY) -> dict:
    """The periodic clean-up: overdue runs, expired artifacts (rows stay, marked expired), idle session files."""
    swept_runs = await sweep_overdue(conn, cleanup, limit=policy.sweep_batch)
    due = (
        select(artifacts.c.run_id, artifacts.c.artifact_id)
        .where(artifacts.c.expired_at.is_(None), artifacts.c.expires_at < func.now())
        .limit(policy.sweep_batch)
        .with_for_update(skip_locked=True)
    )
    expired = (
        await conn.execute(
            update(artifacts)
            .where(tuple_(artifacts.c.run_id, artifacts.c.artifact_id).in_(due))
            .values(expired_at=func.now())
            .returning(artifacts.c.blob_key)
        )
    ).scalars().all()
    cleanup.extend(expired)
    idle = (
        select(session_files.c.id)
        .where(session_files.c.last_used_at < func.now() - policy.session_file_idle)
        .limit(policy.sweep_batch)
        .with_for_update(skip_locked=True)
    )
    dropped = (
        await conn.execute(
            delete(session_files).where(session_files.c.id.in_(idle.scalar_subquery())).returning(session_files.c.blob_key)
        )
    ).scalars().all()
    cleanup.extend(dropped)
    snapshots = await sandbox.sweep(conn, policy.sweep_batch)
    return {"runs": swept_runs, "artifacts": len(expired), "session_files": len(dropped),
            **({"snapshots": snapshots} if snapshots else {})}
