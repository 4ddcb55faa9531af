"""The teacher's path (docs/api.md): apps, runs, uploads, artifacts, sessions, settings. Thin: parse the request,
call ``runs``/``sessions`` in one transaction, delete blobs after the commit, write the answer."""

from __future__ import annotations

import asyncio
import os
from urllib.parse import quote

from tornado.ioloop import PeriodicCallback

from .. import runs, sandbox, sessions
from ..blobs import BlobNotFound, delete_all
from ..errors import ApiError
from ..profiles import get as get_profile
from ..profiles import touch
from ..scopes import AUTHOR, REVIEW, has_scope, needs_scope
from .base import APIHandler, DownloadHandler

SLUG = r"([a-z0-9]+(?:-[a-z0-9]+)*)"
RUN_ID = r"([0-9a-fA-F-]{36})"
CHUNK = 256 * 1024


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback and the exact UTF-8 name (RFC 6266 / 5987)."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


class RunsBaseHandler(APIHandler):
    @property
    def policy(self) -> runs.Policy:
        return self.settings.get("run_policy") or runs.DEFAULT_POLICY

    def context_arg(self) -> str:
        return runs.check_context(self.get_argument("context", "production"))

    def sandbox_access(self, body: dict | None = None) -> sandbox.SandboxAccess:
        """Who asks for sandbox content and which (``snapshot``/``version`` from the query, or ``snapshot_id``/
        ``version_id`` from a run request's body); used only when the context is ``sandbox``."""
        if body is not None:
            return sandbox.SandboxAccess(self.current_user, body.get("snapshot_id"), body.get("version_id"))
        return sandbox.SandboxAccess(self.current_user, self.get_argument("snapshot", None),
                                     self.get_argument("version", None))

    def error_parts(self, status_code, exc_info):
        status, code, message, details = super().error_parts(status_code, exc_info)
        exc = exc_info[1] if exc_info else None
        if isinstance(exc, sessions.InvalidInputs):
            details = {**details, "issues": [issue.to_dict(self.lang) for issue in exc.issues]}
        return status, code, message, details

    async def send_blob(self, key: str, name: str, content_type: str | None, missing: ApiError) -> None:
        """Stream a blob as a download that a browser never renders: attachment, nosniff, a safe type."""
        try:
            handle = await asyncio.to_thread(self.blobs.open, key)
        except BlobNotFound:
            raise missing
        self.set_header("Content-Type", content_type if content_type else runs.safe_content_type(name))
        self.set_header("Content-Disposition", content_disposition(name))
        self.set_header("X-Content-Type-Options", "nosniff")
        try:
            self.set_header("Content-Length", str(os.fstat(handle.fileno()).st_size))
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                self.write(chunk)
                await self.flush()
        finally:
            handle.close()
        self.finish()


class AppHandler(RunsBaseHandler):
    @needs_scope()
    async def get(self, slug: str) -> None:
        async with self.transaction() as (conn, _):
            model = await runs.app_model(conn, self.user_name, slug, self.context_arg(), self.policy,
                                         self.sandbox_access())
            # the viewer's profile too (language), so opening a tool page is one call instead of this and GET me
            await touch(conn, self.user_name)
            model["viewer"] = await get_profile(conn, self.user_name)
        self.write_json(model)


class RunsHandler(RunsBaseHandler):
    @needs_scope()
    async def post(self) -> None:
        body = self.json_body()
        async with self.transaction() as (conn, cleanup):
            await touch(conn, self.user_name)
            created = await runs.create_run(conn, self.user_name, body, cleanup, self.policy, self.sandbox_access(body))
        self.write_json(created, status=201)

    @needs_scope()
    async def get(self) -> None:
        try:
            limit = int(self.get_argument("limit", "20"))
        except ValueError:
            raise ApiError(422, "invalid", details={"field": "limit"})
        async with self.transaction() as (conn, cleanup):
            self.write_json(await runs.list_runs(
                conn, self.user_name, limit=limit, before=self.get_argument("before", None),
                tool=self.get_argument("tool", None), cleanup=cleanup,
            ))


class RunHandler(RunsBaseHandler):
    @needs_scope()
    async def get(self, run_id: str) -> None:
        user = self.current_user
        async with self.transaction() as (conn, cleanup):
            model = await runs.get_run(
                conn, self.user_name, runs.parse_run_id(run_id), cleanup=cleanup,
                is_author=has_scope(user, AUTHOR), is_reviewer=has_scope(user, REVIEW),
            )
        self.write_json(model)


class RunInputHandler(RunsBaseHandler):
    @needs_scope()
    async def put(self, run_id: str, position: str) -> None:
        async with self.transaction() as (conn, _):
            stored = await runs.store_input(
                conn, self.blobs, self.user_name, runs.parse_run_id(run_id), int(position), self.request.body, self.policy
            )
        self.write_json(stored)


class ArtifactHandler(RunsBaseHandler, DownloadHandler):
    @needs_scope()
    async def put(self, run_id: str, artifact_id: str) -> None:
        async with self.transaction() as (conn, _):
            stored = await runs.store_artifact(
                conn, self.blobs, self.user_name, runs.parse_run_id(run_id), artifact_id,
                self.get_argument("path", None), self.request.body, self.policy,
            )
        self.write_json(stored)

    @needs_scope()
    async def get(self, run_id: str, artifact_id: str) -> None:
        async with self.transaction() as (conn, _):
            row = await runs.artifact_for_download(conn, self.user_name, runs.parse_run_id(run_id), artifact_id)
        await self.send_blob(
            row["blob_key"], row["path"].rsplit("/", 1)[-1], row["content_type"], ApiError(410, "artifact_expired")
        )


class RunResultHandler(RunsBaseHandler):
    @needs_scope()
    async def post(self, run_id: str) -> None:
        body = self.json_body()
        async with self.transaction() as (conn, cleanup):
            finished = await runs.finish_run(
                conn, self.user_name, runs.parse_run_id(run_id), body, cleanup, self.policy, self.lang
            )
        if finished.conflict:  # stored as failed (committed above); the client must reload
            raise ApiError(409, "session_changed", details={"run": finished.body["run"], "session": finished.body["session"]})
        self.write_json(finished.body)


class SessionHandler(RunsBaseHandler):
    @needs_scope()
    async def get(self, slug: str) -> None:
        context = self.context_arg()
        async with self.transaction() as (conn, _):
            app = await runs.resolve_app(conn, slug, context, self.sandbox_access())
            session = await sessions.find(conn, app["tool_id"], self.user_name, context)
            self.write_json(await sessions.model(conn, session))

    @needs_scope()
    async def delete(self, slug: str) -> None:
        context = self.context_arg()
        async with self.transaction() as (conn, cleanup):
            app = await runs.resolve_app(conn, slug, context, self.sandbox_access())
            model = await sessions.clear(conn, app["tool_id"], self.user_name, context, cleanup)
        self.write_json(model)


class SessionFileHandler(RunsBaseHandler, DownloadHandler):
    @needs_scope()
    async def get(self, session_id: str, position: str) -> None:
        async with self.transaction() as (conn, _):
            row = await sessions.file_for_download(conn, self.user_name, int(session_id), int(position))
        await self.send_blob(row["blob_key"], row["name"], row["content_type"], ApiError(404, "file_not_found"))


class SettingsHandler(RunsBaseHandler):
    @needs_scope()
    async def get(self, slug: str) -> None:
        context = self.context_arg()
        async with self.transaction() as (conn, _):
            app = await runs.resolve_app(conn, slug, context, self.sandbox_access())
            self.write_json(await sessions.read_settings(conn, app["tool_id"], self.user_name, context, app["settings_schema"]))

    @needs_scope()
    async def put(self, slug: str) -> None:
        context = self.context_arg()
        body = self.json_body()
        async with self.transaction() as (conn, _):
            app = await runs.resolve_app(conn, slug, context, self.sandbox_access())
            await touch(conn, self.user_name)
            saved = await sessions.save_settings(
                conn, app["tool_id"], self.user_name, context, app["settings_schema"], body.get("values"),
                caps=self.policy.caps,
            )
        self.write_json(saved)


# ------------------------------------------------------------------------------------ sandbox (authoring)


class SandboxSnapshotsHandler(RunsBaseHandler):
    @needs_scope(AUTHOR)
    async def post(self) -> None:
        """Store unsaved notebook content for sandbox runs (docs/authoring.md); 201 ``{id, expires_at, ...}``."""
        body = self.json_body()
        async with self.transaction() as (conn, _):
            await touch(conn, self.user_name)
            created = await sandbox.create_snapshot(conn, self.current_user, body, lang=self.lang,
                                                    retention=self.policy.snapshot_retention)
        self.write_json(created, status=201)


def start_sweeper(app, interval_seconds: float, log) -> PeriodicCallback | None:
    """Run ``runs.sweep`` every ``interval_seconds`` (0 turns it off): overdue runs, expired artifacts, idle
    session files. Safe with several service replicas (row locks with SKIP LOCKED)."""
    if interval_seconds <= 0:
        return None
    engine, store, policy = app.settings["engine"], app.settings["blobs"], app.settings.get("run_policy") or runs.DEFAULT_POLICY

    async def sweep_once() -> None:
        cleanup: list[str] = []
        try:
            async with engine.begin() as conn:
                counts = await runs.sweep(conn, cleanup, policy)
            await asyncio.to_thread(delete_all, store, cleanup)
            if any(counts.values()):
                log.info("Sweep: %s", counts)
        except Exception as exc:  # noqa: BLE001 - a database outage must not stop the next sweep
            log.warning("Sweep failed: %s", exc)

    callback = PeriodicCallback(sweep_once, interval_seconds * 1000)
    callback.start()
    return callback


default_handlers = [
    (rf"api/v1/apps/{SLUG}", AppHandler),
    (r"api/v1/runs", RunsHandler),
    (rf"api/v1/runs/{RUN_ID}", RunHandler),
    (rf"api/v1/runs/{RUN_ID}/inputs/(\d{{1,4}})", RunInputHandler),
    (rf"api/v1/runs/{RUN_ID}/artifacts/([A-Za-z0-9_]{{1,1024}})", ArtifactHandler),
    (rf"api/v1/runs/{RUN_ID}/result", RunResultHandler),
    (rf"api/v1/sessions/{SLUG}", SessionHandler),
    (r"api/v1/sessions/(\d{1,18})/files/(\d{1,4})", SessionFileHandler),
    (rf"api/v1/settings/{SLUG}", SettingsHandler),
    (r"api/v1/sandbox/snapshots", SandboxSnapshotsHandler),
]
