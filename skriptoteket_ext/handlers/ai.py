"""AI assistance for authors (docs/ai.md): status, generate, edit, explain, complete. Rules: permissions.PERMISSIONS.

A capability answers as JSON, or — with ``"stream": true`` in the body or ``Accept: text/event-stream`` — as
server-sent events relaying the model's stream::

    event: start   data: {"capability", "correlation_id"}
    event: delta   data: {"text": "..."}            (as the model writes)
    event: result  data: {... the JSON answer ...}  (after the answer was checked) — or
    event: error   data: {"error": {"code", "message", "details"}, "correlation_id"}

Refusals that happen before the model is called (permissions, a capability that is off, a limit) are ordinary
JSON envelopes with their HTTP status. The key stays here: the notebook only ever talks to this service.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
import uuid

import sqlalchemy as sa
from tornado.iostream import StreamClosedError

from .. import metrics, scopes
from .. import tools as tool_store
from ..ai import capabilities as caps
from ..ai import limits
from ..ai.client import ModelClient, warm_up
from ..ai.config import CAPABILITIES, MISCONFIGURED, AiSettings, resolve
from ..errors import ApiError, envelope
from ..permissions import TOOL, authorize, rule_for
from ..tables import runs
from .base import APIHandler

log = logging.getLogger("skriptoteket.ai")
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class AiRuntime:
    """The resolved settings and the shared model client of one service process."""

    def __init__(self, settings: AiSettings):
        self.settings = settings
        self.client = ModelClient()
        for cap in settings.capabilities.values():  # tell the administrator, once, what is on and why not
            if cap.state == MISCONFIGURED:
                log.warning("AI capability %s is misconfigured: %s", cap.capability, cap.reason)
            else:
                log.info("AI capability %s: %s%s", cap.capability, cap.state,
                         f" (model {cap.model})" if cap.on else "")
        if settings.any_on:
            threading.Thread(target=warm_up, name="ai-warm-up", daemon=True).start()


def runtime(handler) -> AiRuntime:
    app_settings = handler.application.settings
    if "ai_runtime" not in app_settings:
        service = handler.config
        app_settings["ai_runtime"] = AiRuntime(
            resolve(getattr(service, "ai", None) or {}, log_prompts=bool(getattr(service, "ai_log_prompts", False)))
        )
    return app_settings["ai_runtime"]


def ai_authorize(method):
    """The permissions table's rule for this route, checked like ``@authorize`` does — but the model call
    happens outside any database transaction (it may take a minute, and the answer may stream)."""

    @functools.wraps(method)
    async def wrapper(self, *args, **kwargs):
        rule = rule_for(self.route, self.request.method)
        scopes.check_rule(rule, self.current_user)
        if rule in scopes.TOOL_RULES:
            async with self.engine.begin() as conn:
                facts = await tool_store.access(conn, int(kwargs["tool_id"]), self.user_name)
            scopes.check_tool_rule(rule, self.current_user, **facts)
        return await method(self, *args, **kwargs)

    wrapper.uses_permission_table = True
    return wrapper


class AiStatusHandler(APIHandler):
    route = "api/v1/ai/status"

    @authorize
    async def get(self):
        settings = runtime(self).settings
        out = {}
        for cap in CAPABILITIES:
            config = settings[cap]
            out[cap] = config.public()
            if config.on:
                used = await limits.usage(self.db, self.user_name, cap)
                out[cap]["usage"] = {"requests_last_minute": used.requests_last_minute,
                                     "tokens_last_day": used.tokens_last_day}
        on = [cap for cap in CAPABILITIES if settings[cap].on]
        return {
            "enabled": bool(on),
            "capabilities": out,
            "message": self._("ai.status.on", capabilities=", ".join(on)) if on else self._("ai.status.off"),
        }


class _CapabilityHandler(APIHandler):
    capability = ""

    async def _current(self, tool_id: int | None, request: dict) -> None:
        """Fill in what the author did not send: the tool's draft head, a run's error and log."""
        needs_tool = request.get("current") is None and self.capability in ("edit", "explain")
        needs_run = bool(request.get("run_id"))
        if not (needs_tool or needs_run):
            return
        async with self.engine.begin() as conn:
            if needs_run:
                await self._load_run(conn, tool_id, request)
            if needs_tool:
                versions = await tool_store.list_versions(conn, tool_id)
                head = await tool_store.get_version(conn, tool_id, versions[0]["id"]) if versions else None
                request["current"] = caps.current_from_version(head)

    async def _load_run(self, conn, tool_id: int, request: dict) -> None:
        run_id = request["run_id"]
        row = None
        if _UUID_RE.match(run_id):
            row = (await conn.execute(
                sa.select(runs.c.tool_id, runs.c.user_name, runs.c.error_summary, runs.c.stderr, runs.c.input_values)
                .where(runs.c.id == uuid.UUID(run_id))
            )).first()
        # the run's log is for its own author, and for reviewers (platform.md: see run logs)
        if row is None or row.tool_id != tool_id or (row.user_name != self.user_name
                                                     and not scopes.is_reviewer(self.current_user)):
            raise ApiError(404, "ai_run_not_found")
        request["error"] = request.get("error") or row.error_summary or "(no error summary)"
        request["logs"] = request.get("logs") or (row.stderr or "")[-20_000:]
        if request.get("inputs") is None:
            request["inputs"] = row.input_values

    def _result(self, request: dict, text: str) -> dict:
        if self.capability == "generate":
            return caps.generate_result(text, self.lang)
        if self.capability == "edit":
            return caps.edit_result(text, request["current"], self.lang)
        if self.capability == "explain":
            return caps.explain_result(text, request["current"], self.lang)
        return caps.complete_result(text)

    def _wants_stream(self, body: dict) -> bool:
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise ApiError(422, "invalid_field", field="stream")
        return stream is True or "text/event-stream" in self.request.headers.get("Accept", "")

    async def _serve(self, tool_id: int | None) -> None:
        body = self.json_body()
        streaming = self._wants_stream(body)
        request = caps.parse_request(self.capability, body)
        ai = runtime(self)
        config = ai.settings[self.capability]
        if not config.on:
            raise ApiError(503, "ai_misconfigured" if config.state == MISCONFIGURED else "ai_off",
                           details={"capability": self.capability})
        await self._current(tool_id, request)
        messages = caps.messages_for(self.capability, request, self.lang)
        reservation = await limits.reserve(self.engine, self.user_name, config)
        started = time.monotonic()
        answer = None
        outcome = "failed"
        if ai.settings.log_prompts:
            log.info("AI %s prompt [%s]: %s", self.capability, self.correlation_id,
                     json.dumps(messages, ensure_ascii=False))
        try:
            if streaming:
                answer, outcome = await self._stream(ai, config, messages, request)
            else:
                answer = await ai.client.chat(config, messages)
                result = self._result(request, answer.text)
                outcome = "succeeded"
                self.write_json({**result, "capability": self.capability, "usage": _usage(answer)})
        finally:
            tokens = (answer.prompt_tokens, answer.completion_tokens) if answer else (0, 0)
            await limits.complete(self.engine, reservation, prompt_tokens=tokens[0], completion_tokens=tokens[1],
                                  succeeded=outcome == "succeeded")
            metrics.AI_CALLS.labels(self.capability, outcome).inc()
            log.info("AI %s for %s [%s]: %s, %d+%d tokens, %.0f ms", self.capability, self.user_name,
                     self.correlation_id, outcome, tokens[0], tokens[1], (time.monotonic() - started) * 1000)
            if ai.settings.log_prompts and answer is not None:
                log.info("AI %s answer [%s]: %s", self.capability, self.correlation_id, answer.text)

    async def _event(self, name: str, data: dict) -> None:
        self.write(f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n")
        await self.flush()

    async def _stream(self, ai: AiRuntime, config, messages: list[dict], request: dict):
        self.set_header("Content-Type", "text/event-stream; charset=UTF-8")
        self.set_header("X-Accel-Buffering", "no")  # reverse proxies must not buffer the stream
        answer = None
        try:
            await self._event("start", {"capability": self.capability, "correlation_id": self.correlation_id})

            async def on_delta(text: str) -> None:
                await self._event("delta", {"text": text})

            try:
                answer = await ai.client.chat(config, messages, on_delta=on_delta)
                result = self._result(request, answer.text)
            except ApiError as err:
                message = self._(f"error.{err.code}", **err.params)
                await self._event("error", envelope(err.code, message, err.details, self.correlation_id))
                outcome = "failed"
            else:
                await self._event("result", {**result, "capability": self.capability, "usage": _usage(answer)})
                outcome = "succeeded"
            self.finish()
            return answer, outcome
        except StreamClosedError:  # the author went away; the model call was abandoned
            return answer, "abandoned"


def _usage(answer) -> dict:
    return {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
            "estimated": not answer.usage_reported}


class AiGenerateHandler(_CapabilityHandler):
    route = "api/v1/ai/generate"
    capability = "generate"

    @ai_authorize
    async def post(self):
        await self._serve(None)


class AiEditHandler(_CapabilityHandler):
    route = rf"{TOOL}/ai/edit"
    capability = "edit"

    @ai_authorize
    async def post(self, tool_id):
        await self._serve(int(tool_id))


class AiExplainHandler(_CapabilityHandler):
    route = rf"{TOOL}/ai/explain"
    capability = "explain"

    @ai_authorize
    async def post(self, tool_id):
        await self._serve(int(tool_id))


class AiCompleteHandler(_CapabilityHandler):
    route = rf"{TOOL}/ai/complete"
    capability = "complete"

    @ai_authorize
    async def post(self, tool_id):
        await self._serve(int(tool_id))


default_handlers = [(h.route, h) for h in (AiStatusHandler, AiGenerateHandler, AiEditHandler, AiExplainHandler,
                                           AiCompleteHandler)]
