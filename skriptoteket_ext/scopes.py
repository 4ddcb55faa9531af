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
