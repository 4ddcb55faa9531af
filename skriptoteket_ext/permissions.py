"""THE table of who may call what: every JSON endpoint (route pattern + method) → one rule.

Rules are defined in ``scopes`` (all scope logic lives there): ``anyone``, ``teacher``, ``reader``, ``author``,
``maintainer``, ``reviewer``, ``admin``. Handler methods do not name their rule: they are decorated with
``@authorize``, which looks the rule up here by the handler's ``route`` and the request's method, so the
table and the code cannot drift. A method missing from the table fails closed (500, logged), and
tests/e2e/test_permissions.py (generated from this table) checks every registered ``api/v1/`` route against it.

``@authorize`` also opens the operation's one transaction (``self.db``), checks per-tool rules on the path's
``tool_id`` inside it, and writes the handler's return value as JSON only after the commit, so a client never
sees success for something that was rolled back.
"""

from __future__ import annotations

import functools
import logging

from . import db, scopes
from . import tools as tool_store
from .errors import ApiError

log = logging.getLogger(__name__)

_ID = r"\d{1,18}"
TOOL = rf"api/v1/tools/(?P<tool_id>{_ID})"
VERSION = rf"{TOOL}/versions/(?P<version_id>{_ID})"
SUGGESTION = rf"api/v1/suggestions/(?P<suggestion_id>{_ID})"
_SLUG = r"[a-z0-9]+(?:-[a-z0-9]+)*"
_UUID = r"[0-9a-fA-F-]{36}"

PERMISSIONS: dict[tuple[str, str], str] = {
    # platform
    ("api/v1/health", "GET"): "anyone",
    ("api/v1/me", "GET"): "teacher",
    ("api/v1/me", "PUT"): "teacher",
    # catalog (every user)
    ("api/v1/taxonomy", "GET"): "teacher",
    ("api/v1/catalog", "GET"): "teacher",
    ("api/v1/catalog/recent", "GET"): "teacher",
    ("api/v1/favorites", "GET"): "teacher",
    (rf"api/v1/favorites/(?P<tool_id>{_ID})", "PUT"): "reader",
    (rf"api/v1/favorites/(?P<tool_id>{_ID})", "DELETE"): "teacher",
    # suggestions
    ("api/v1/suggestions", "GET"): "teacher",  # my own suggestions
    ("api/v1/suggestions", "POST"): "teacher",
    (rf"{SUGGESTION}/accept", "POST"): "reviewer",
    (rf"{SUGGESTION}/deny", "POST"): "reviewer",
    # tools: authoring
    ("api/v1/tools", "GET"): "author",  # my tools
    ("api/v1/tools", "POST"): "author",
    (TOOL, "GET"): "reader",
    (TOOL, "PATCH"): "maintainer",  # reviewers: slug and published tools too (lifecycle.check_metadata_edit)
    (rf"{TOOL}/events", "GET"): "maintainer",
    (rf"{TOOL}/versions", "GET"): "maintainer",
    (rf"{TOOL}/versions", "POST"): "maintainer",  # save draft
    (VERSION, "GET"): "maintainer",
    (rf"{VERSION}/diff", "GET"): "maintainer",
    (rf"{VERSION}/submit", "POST"): "maintainer",
    (rf"{TOOL}/lock", "GET"): "maintainer",
    (rf"{TOOL}/lock", "PUT"): "maintainer",  # acquire or renew
    (rf"{TOOL}/lock", "DELETE"): "maintainer",  # release
    # review
    (rf"{TOOL}/lock/takeover", "POST"): "reviewer",
    (rf"{VERSION}/request-changes", "POST"): "reviewer",
    (rf"{VERSION}/publish", "POST"): "reviewer",
    (rf"{TOOL}/publish", "POST"): "reviewer",
    (rf"{TOOL}/depublish", "POST"): "reviewer",
    (rf"{TOOL}/maintainers", "GET"): "reviewer",
    (rf"{TOOL}/maintainers", "POST"): "reviewer",
    (rf"{TOOL}/maintainers/(?P<user_name>[^/]+)", "DELETE"): "reviewer",
    ("api/v1/review/queue", "GET"): "reviewer",
    ("api/v1/review/tools", "GET"): "reviewer",
    ("api/v1/review/suggestions", "GET"): "reviewer",
    # admin
    (rf"{VERSION}/rollback", "POST"): "admin",
    # runs, sessions, settings (handlers/runs.py; owner/maintainer checks on the objects happen inside)
    (rf"api/v1/apps/({_SLUG})", "GET"): "teacher",
    ("api/v1/runs", "GET"): "teacher",
    ("api/v1/runs", "POST"): "teacher",
    (rf"api/v1/runs/({_UUID})", "GET"): "teacher",
    (rf"api/v1/runs/({_UUID})/inputs/(\d{{1,4}})", "PUT"): "teacher",
    (rf"api/v1/runs/({_UUID})/artifacts/([A-Za-z0-9_]{{1,1024}})", "GET"): "teacher",
    (rf"api/v1/runs/({_UUID})/artifacts/([A-Za-z0-9_]{{1,1024}})", "PUT"): "teacher",
    (rf"api/v1/runs/({_UUID})/result", "POST"): "teacher",
    (rf"api/v1/sessions/({_SLUG})", "GET"): "teacher",
    (rf"api/v1/sessions/({_SLUG})", "DELETE"): "teacher",
    (r"api/v1/sessions/(\d{1,18})/files/(\d{1,4})", "GET"): "teacher",
    (rf"api/v1/settings/({_SLUG})", "GET"): "teacher",
    (rf"api/v1/settings/({_SLUG})", "PUT"): "teacher",
    # AI assistance for authors (handlers/ai.py; docs/ai.md)
    ("api/v1/ai/status", "GET"): "teacher",
    ("api/v1/ai/generate", "POST"): "author",
    (rf"{TOOL}/ai/edit", "POST"): "maintainer",
    (rf"{TOOL}/ai/explain", "POST"): "maintainer",
    (rf"{TOOL}/ai/complete", "POST"): "maintainer",
    # sandbox (authoring): snapshots of unsaved notebook content; the per-tool check is inside (404 otherwise)
    ("api/v1/sandbox/snapshots", "POST"): "author",
}

assert set(PERMISSIONS.values()) <= set(scopes.RULES), "unknown rule in the permissions table"

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def rule_for(route: str, method: str) -> str:
    try:
        return PERMISSIONS[(route, method)]
    except KeyError:
        log.error("No permission rule for %s %s: refusing (add it to permissions.PERMISSIONS)", method, route)
        raise ApiError(500, "internal_error") from None


def routes(*handlers) -> list[tuple[str, type]]:
    """``default_handlers`` entries for handler classes that carry their ``route``."""
    return [(h.route, h) for h in handlers]


def authorize(method=None, *, read_only: bool = False, connection: bool = True):
    """Check the table's rule for this handler's route and method; run ``method`` in one transaction
    (``self.db``) and write what it returns as JSON after the commit (``None`` → 204).

    ``@authorize(read_only=True)``: a method that only reads, with one statement (or several that need no
    common snapshot), runs on an autocommit connection instead (``db.reading``): no BEGIN/COMMIT round trips.
    ``connection=False``: the method opens a connection itself if it needs one (it may answer from memory).

    A handler whose writes change what the catalog shows says so with ``catalog_changes`` (``"catalog"`` or
    ``"favorites"``): this process's catalog cache forgets it right after the commit, so the next request sees
    it; other processes learn it from Postgres (``catalog_cache``)."""
    if method is None:
        return functools.partial(authorize, read_only=read_only, connection=connection)

    @functools.wraps(method)
    async def wrapper(self, *args, **kwargs):
        rule = rule_for(self.route, self.request.method)
        scopes.check_rule(rule, self.current_user)
        if rule == "anyone":
            return await method(self, *args, **kwargs)
        if connection:
            async with (db.reading(self.engine) if read_only else self.engine.begin()) as conn:
                self.db = conn
                if rule in scopes.TOOL_RULES:
                    facts = await tool_store.access(conn, int(kwargs["tool_id"]), self.user_name)
                    scopes.check_tool_rule(rule, self.current_user, **facts)
                result = await method(self, *args, **kwargs)
        else:
            result = await method(self, *args, **kwargs)
        changes = getattr(self, "catalog_changes", None) if self.request.method not in ("GET", "HEAD") else None
        if changes and self.settings.get("catalog_cache") is not None:
            self.settings["catalog_cache"].invalidate(self.user_name if changes == "favorites" else None)
        status = 200
        if isinstance(result, tuple):
            status, result = result
        if result is None:
            self.set_status(204)
            self.finish()
        else:
            self.write_json(result, status)

    wrapper.uses_permission_table = True
    return wrapper


def declared_rule(handler_method) -> str | None:
    """The rule a handler method declares some other way (``@needs_scope``/``@public``), for the table check."""
    if hasattr(handler_method, "required_scopes"):
        return scopes.rule_of_scopes(handler_method.required_scopes)
    return None
