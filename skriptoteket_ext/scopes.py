"""All permission logic of the service: the ``custom:`` scopes, which group carries which, and the check.

JupyterHub defines the scopes and hands them out through roles on groups; it does not enforce them. The
service does, on every request, from the scopes of the caller's token (``GET /hub/api/user``). Every user is a
teacher: reaching the service at all (``access:services!service=skriptoteket``) is the teacher's permission.
"""

from __future__ import annotations

import functools

from .errors import ApiError

SERVICE_NAME = "skriptoteket"
PREFIX = f"custom:{SERVICE_NAME}:"

AUTHOR = PREFIX + "author"
REVIEW = PREFIX + "review"
ADMIN = PREFIX + "admin"

CUSTOM_SCOPES = {
    AUTHOR: {"description": "Author Skriptoteket tools the user maintains: drafts, sandbox runs, submit."},
    REVIEW: {"description": "Review Skriptoteket tools: publish, request changes, suggestions, maintainers."},
    ADMIN: {"description": "Administer Skriptoteket: roll back tools to a previously published version."},
}

# Skriptoteket role (= JupyterHub group) → the custom scopes its members get. Higher roles include lower ones.
GROUP_SCOPES = {
    "authors": [AUTHOR],
    "reviewers": [AUTHOR, REVIEW],
    "admins": [AUTHOR, REVIEW, ADMIN],
}

ROLE_FOR_SCOPE = {AUTHOR: "author", REVIEW: "reviewer", ADMIN: "admin"}


def has_scope(user: dict | None, scope: str) -> bool:
    return bool(user) and scope in set(user.get("scopes", ()))


def roles_of(user: dict | None) -> set[str]:
    """The Skriptoteket roles a user model's scopes grant (every user is a teacher)."""
    if not user:
        return set()
    return {"teacher"} | {ROLE_FOR_SCOPE[s] for s in CUSTOM_SCOPES if has_scope(user, s)}


def needs_scope(*scopes: str):
    """Declare what a handler method needs: a logged-in user, plus every scope named.

    With no scopes, any user who may reach the service (a teacher) is allowed.
    """

    def decorator(method):
        @functools.wraps(method)
        async def wrapper(self, *args, **kwargs):
            user = self.current_user
            if not user:
                return self.require_login()
            for scope in scopes:
                if not has_scope(user, scope):
                    raise ApiError(403, "missing_scope", role=ROLE_FOR_SCOPE.get(scope, scope))
            return await method(self, *args, **kwargs)

        wrapper.required_scopes = scopes
        return wrapper

    return decorator


def public(method):
    """Mark a handler method as reachable without logging in (health checks)."""
    method.required_scopes = None
    return method


# ---- rules: what an endpoint needs (permissions.py maps every endpoint to one of these) ---------------------
#
#   anyone      no login (health)
#   teacher     any logged-in user of the service
#   reader      teacher for a published tool; for an unpublished one, authoring rights on it (else 404)
#   author      the author scope (create tools, my tools)
#   maintainer  authoring rights on the tool: the author scope and a maintainer of it, or the review scope
#   reviewer    the review scope
#   admin       the admin scope

RULE_SCOPE = {
    "anyone": None,
    "teacher": None,
    "reader": None,
    "author": AUTHOR,
    "maintainer": AUTHOR,
    "reviewer": REVIEW,
    "admin": ADMIN,
}
RULES = tuple(RULE_SCOPE)
TOOL_RULES = frozenset({"reader", "maintainer"})  # need the tool's facts, from the path's tool_id


def may_author(user: dict | None, is_maintainer: bool) -> bool:
    """Authoring rights on one tool: reviewers and admins on every tool, authors on the tools they maintain."""
    return has_scope(user, REVIEW) or (has_scope(user, AUTHOR) and is_maintainer)


def is_reviewer(user: dict | None) -> bool:
    return has_scope(user, REVIEW)


def check_rule(rule: str, user: dict | None) -> None:
    """The scope part of a rule (before anything is looked up): 401 without a user, 403 without the scope."""
    if rule == "anyone":
        return
    if not user:
        raise ApiError(401, "unauthenticated")
    scope = RULE_SCOPE[rule]
    if scope and not has_scope(user, scope):
        raise ApiError(403, "missing_scope", role=ROLE_FOR_SCOPE[scope])


def check_tool_rule(rule: str, user: dict | None, *, exists: bool, published: bool, maintainer: bool) -> None:
    """The per-tool part: an unpublished tool is invisible (404) without authoring rights on it."""
    authoring = exists and may_author(user, maintainer)
    if not exists or (not published and not authoring):
        raise ApiError(404, "tool_not_found")
    if rule == "maintainer" and not authoring:
        raise ApiError(403, "not_maintainer")


def rule_of_scopes(required_scopes) -> str | None:
    """The rule a ``@needs_scope(...)``/``@public`` declaration amounts to (for the permissions table check)."""
    if required_scopes is None:
        return "anyone"
    strongest = {ADMIN: "admin", REVIEW: "reviewer", AUTHOR: "author"}
    for scope, rule in strongest.items():
        if scope in required_scopes:
            return rule
    return "teacher"
