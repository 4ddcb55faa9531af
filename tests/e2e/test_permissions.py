"""The permission matrix, generated from ``skriptoteket_ext.permissions.PERMISSIONS``.

Every endpoint of the table is called through the real hub, proxy and service as each persona: anonymous, a
teacher, an author who maintains the tool, an author who does not, a reviewer and an admin; each call must be
allowed or refused (401/403/404) exactly as the table's rule says. Calls are shaped so that an allowed call
passes the gate and then stops at validation (422/409) wherever it would otherwise change something that
later probes rely on. A second test checks that every route of the tornado app under ``api/v1/`` is in the
table (and nothing stale is), so a new endpoint without a rule fails here.
"""

from __future__ import annotations

import re

import httpx
import pytest
from tornado.web import RequestHandler

from skriptoteket_ext.handlers import default_handlers
from skriptoteket_ext.permissions import HTTP_METHODS, PERMISSIONS, declared_rule

PERSONAS = ("anonymous", "teacher", "author_maintainer", "author_other", "reviewer", "admin")
NAMES = {"teacher": "pm-tina", "author_maintainer": "pm-amy", "author_other": "pm-otto", "reviewer": "pm-rita", "admin": "admin"}
GROUPS = {"teacher": [], "author_maintainer": ["authors"], "author_other": ["authors"], "reviewer": ["reviewers"], "admin": []}

# Which personas each rule lets through; `reader` depends on whether the tool is published.
ALLOWED = {
    "anyone": set(PERSONAS),
    "teacher": set(PERSONAS) - {"anonymous"},
    "author": {"author_maintainer", "author_other", "reviewer", "admin"},
    "maintainer": {"author_maintainer", "reviewer", "admin"},
    "reviewer": {"reviewer", "admin"},
    "admin": {"admin"},
}


def allowed(rule: str, persona: str, published: bool) -> bool:
    if rule == "reader":
        return persona in (ALLOWED["teacher"] if published else ALLOWED["maintainer"])
    return persona in ALLOWED[rule]


def api_methods(handler) -> list[str]:
    return [m for m in HTTP_METHODS if getattr(handler, m.lower(), None) is not getattr(RequestHandler, m.lower(), None)]


def test_every_api_route_is_in_the_table():
    registered = set()
    for pattern, handler in default_handlers:
        if not pattern.startswith("api/v1/"):
            continue
        for method in api_methods(handler):
            registered.add((pattern, method))
            assert (pattern, method) in PERMISSIONS, f"{method} {pattern} ({handler.__name__}) has no rule in permissions.PERMISSIONS"
            fn = getattr(handler, method.lower())
            if getattr(fn, "uses_permission_table", False):
                assert handler.route == pattern, f"{handler.__name__}.route differs from its registered pattern"
            else:
                assert declared_rule(fn) == PERMISSIONS[(pattern, method)], (
                    f"{method} {pattern}: the handler declares {declared_rule(fn)!r}, the table says {PERMISSIONS[(pattern, method)]!r}")
    stale = set(PERMISSIONS) - registered
    assert not stale, f"rules for endpoints that do not exist: {sorted(stale)}"


# ------------------------------------------------------------------------------------------- the matrix

SAMPLES = [  # for positional groups of other modules' routes: a value that matches, pointing at nothing
    ("[0-9a-fA-F-]{36}", "00000000-0000-0000-0000-000000000000"),
    ("[a-z0-9]+(?:-[a-z0-9]+)*", "no-such-tool"),
    ("[A-Za-z0-9_]", "a0"),
    (r"\d", "1"),
]
_GROUP = re.compile(r"\((\?P<(\w+)>)?((?:[^()]|\((?:[^()])*\))*)\)")


def fill(pattern: str, ids: dict) -> tuple[str, bool]:
    """The path for a route pattern: named groups from ``ids``; others get a sample. Returns (path, known)."""
    known = True

    def sub(m):
        nonlocal known
        name, body = m.group(2), m.group(3)
        if name:
            return str(ids[name])
        known = False
        return next(v for k, v in SAMPLES if k in body)

    path = _GROUP.sub(sub, pattern)
    assert re.fullmatch(pattern, path), (pattern, path)
    return path, known


@pytest.fixture(scope="module")
def world(platform):
    for persona, name in NAMES.items():
        if name != "admin":
            platform.create_user(name, *GROUPS[persona])
    tokens = {p: platform.token_for(n) for p, n in NAMES.items()}
    api = f"{platform.service_url}/api/v1"

    def call(persona, method, path, **kw):
        r = httpx.request(method, f"{api}/{path}", headers={"Authorization": f"token {tokens[persona]}"}, timeout=30, **kw)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    amy, rita = "author_maintainer", "reviewer"
    body = {"title": "Matrix tool", "summary": "s", "professions": ["teacher"], "categories": ["other"]}
    unpublished = call(amy, "POST", "tools", json=body)
    u_v1 = call(amy, "POST", f"tools/{unpublished['id']}/versions", json={"expected_parent": None, "source": "x = 1"})
    published = call(amy, "POST", "tools", json={**body, "title": "Matrix published"})
    pid = published["id"]
    call(rita, "PATCH", f"tools/{pid}", json={"slug": "matrix-published"})
    p_v1 = call(amy, "POST", f"tools/{pid}/versions", json={"expected_parent": None, "source": "x = 1"})
    call(amy, "POST", f"tools/{pid}/versions/{p_v1['id']}/submit")
    p_active = call(rita, "POST", f"tools/{pid}/versions/{p_v1['id']}/publish", json={"expected_active": None})
    call(rita, "POST", f"tools/{pid}/publish")
    suggestion = call("teacher", "POST", "suggestions", json={"title": "Matrix idea"})
    call(rita, "POST", f"suggestions/{suggestion['id']}/deny", json={"rationale": "decided for the matrix"})
    return {
        "tokens": tokens, "service": platform.service_url,
        "unpublished": {"tool_id": unpublished["id"], "version_id": u_v1["id"], "suggestion_id": suggestion["id"], "user_name": "nobody"},
        "published": {"tool_id": pid, "version_id": p_active["id"], "suggestion_id": suggestion["id"], "user_name": "nobody"},
    }


def probes():
    for (pattern, method), rule in sorted(PERMISSIONS.items()):
        for published in ((False, True) if rule == "reader" else (False,)):
            yield pytest.param(pattern, method, rule, published, id=f"{method} {pattern} [{'published' if published else 'unpublished'}]")


@pytest.mark.hub
@pytest.mark.timeout(600)
@pytest.mark.parametrize("pattern,method,rule,published", list(probes()))
def test_matrix(world, pattern, method, rule, published):
    path, known = fill(pattern, world["published" if published else "unpublished"])
    # Strict checks (no 404 for allowed callers, 401 for anonymous) where we built the objects the call needs:
    # the endpoints that use the table through @authorize. Other modules' endpoints get the rule check only.
    handler = dict(default_handlers)[pattern]
    known = known and getattr(getattr(handler, method.lower()), "uses_permission_table", False)
    outcomes = {}
    for persona in PERSONAS:
        headers = {} if persona == "anonymous" else {"Authorization": f"token {world['tokens'][persona]}"}
        kw = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
        r = httpx.request(method, f"{world['service']}/{path}", headers=headers, timeout=30, **kw)
        code = r.json()["error"]["code"] if r.headers.get("content-type", "").startswith("application/json") and r.status_code >= 400 else None
        outcomes[persona] = (r.status_code, code)
        if allowed(rule, persona, published):
            assert r.status_code not in (401, 403), (persona, r.status_code, r.text)
            if known:  # our fixtures exist: a 404 would be a refusal in disguise, a 5xx a bug
                assert r.status_code != 404 and r.status_code < 500, (persona, r.status_code, r.text)
        else:
            assert r.status_code in (401, 403, 404), (persona, r.status_code, r.text)
            if persona == "anonymous" and known:  # other modules may answer 404 first
                assert r.status_code == 401 and code == "unauthenticated", (r.status_code, r.text)
    print(method, pattern, rule, outcomes)
