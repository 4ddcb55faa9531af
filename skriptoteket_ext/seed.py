"""``skriptoteket seed``: put the example bank (notebooks/bank/*.ipynb) into a running platform, idempotently.

Every change goes through the service's own JSON API and the normal lifecycle (create → slug → save draft →
submit → publish version → optionally publish the tool), acting as a dedicated reviewer account,
``skriptoteket-bank``; nothing touches a database directly. See docs/bank.md.

Authentication: the command line's hub service token (``var/secrets/cli_token``, role ``skriptoteket-cli``) makes
sure the bot user exists and is in the ``reviewers`` group, then a short-lived API token is minted for the bot:

1. with the CLI token (``POST /hub/api/users/skriptoteket-bank/tokens``) when the ``skriptoteket-cli`` role has
   the ``tokens!user=skriptoteket-bank`` scope;
2. otherwise the bot's local account gets a new random password (never stored or shown), and the token is
   requested with it in the request body (JupyterHub's authenticator-backed token request).

Idempotent: a tool is created if its slug is new; otherwise a new version is saved and published only when the
bank's content differs from the active version, and metadata is patched only when it differs. A second seed
changes nothing and says so. Tools the bank did not create, and tools whose newest version someone else made
(a local edit or a pending draft), are left alone unless ``force``.
"""

from __future__ import annotations

import json
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BOT = "skriptoteket-bank"
BOT_GROUP = "reviewers"
BANK_DIR = Path(__file__).resolve().parent.parent / "notebooks" / "bank"
CONTENT_FIELDS = ("source", "entrypoint", "input_schema", "settings_schema", "usage_instructions")
TOKEN_SCOPES = ["access:services!service=skriptoteket", "custom:skriptoteket:author", "custom:skriptoteket:review"]
PROFILES = ("dev", "prod")


class SeedError(Exception):
    pass


@dataclass
class Outcome:
    slug: str
    action: str  # create | update | unchanged | skip | error
    details: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"  {self.action:<9} {self.slug:<24} {'; '.join(self.details)}".rstrip()


# ----------------------------------------------------------------------------------------------- the bank


def load_bank(profile: str, bank_dir: Path = BANK_DIR) -> list:
    """The bank's tools for a profile: ``dev`` all, ``prod`` the curated ones only."""
    from runner_kernel.authoring.notebook_format import read_tool_notebook

    if profile not in PROFILES:
        raise SeedError(f"unknown profile {profile!r} (use {' or '.join(PROFILES)})")
    tools = [read_tool_notebook(path) for path in sorted(Path(bank_dir).glob("*.ipynb"))]
    slugs = [t.slug for t in tools]
    if len(set(slugs)) != len(slugs):
        raise SeedError(f"duplicate slugs in the bank: {sorted({s for s in slugs if slugs.count(s) > 1})}")
    return [t for t in tools if profile == "dev" or t.meta["curated"]]


# ----------------------------------------------------------------------------------------------- HTTP


class Api:
    """A tiny JSON client (urllib: the command line needs no extra dependency)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30):
        self.base_url = base_url.rstrip("/") + "/"
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict | None = None, *, auth: bool = True):
        data = json.dumps(body).encode() if body is not None else (b"" if method in ("POST", "PUT", "PATCH") else None)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth and self.token:
            headers["Authorization"] = f"token {self.token}"
        request = urllib.request.Request(self.base_url + path.lstrip("/"), data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as err:
            raise ApiFailure(method, path, err.code, err.read()) from None
        return json.loads(payload) if payload else {}


class ApiFailure(SeedError):
    def __init__(self, method: str, path: str, status: int, body: bytes):
        self.status = status
        try:
            error = json.loads(body or b"{}")
            message = error.get("error", {}).get("message") or error.get("message") or ""
            self.code = error.get("error", {}).get("code")
        except (ValueError, AttributeError):
            message, self.code = body[:200].decode("utf-8", "replace"), None
        super().__init__(f"{method} {path}: {status} {message}".strip())


# ----------------------------------------------------------------------------------------------- auth


def bot_token(hub_api_url: str, cli_token: str, hub_db_url: str | None, *, create: bool = True) -> str | None:
    """An API token (1 hour) for the bank's reviewer account; None if it does not exist and ``create`` is off."""
    hub = Api(hub_api_url, cli_token)
    try:
        hub.call("GET", f"users/{BOT}")
    except ApiFailure as err:
        if err.status != 404:
            raise
        if not create:
            return None
        hub.call("POST", f"users/{BOT}")
    hub.call("POST", f"groups/{BOT_GROUP}/users", {"users": [BOT]})
    request = {"note": "skriptoteket seed", "expires_in": 3600, "scopes": TOKEN_SCOPES}
    try:
        return hub.call("POST", f"users/{BOT}/tokens", request)["token"]
    except ApiFailure as err:
        if err.status != 403:
            raise
    # The CLI role may not mint tokens for others: sign the bot in with a fresh random password instead.
    if not hub_db_url:
        raise SeedError("the skriptoteket-cli role cannot mint tokens and no hub database is configured")
    from .accounts import set_credentials

    password = secrets.token_urlsafe(32)
    set_credentials(hub_db_url, BOT, password)
    body = {**request, "auth": {"username": BOT, "password": password}}
    return Api(hub_api_url).call("POST", f"users/{BOT}/tokens", body, auth=False)["token"]


# ----------------------------------------------------------------------------------------------- seeding


def _differences(bank: dict, current: dict, fields) -> list[str]:
    out = []
    for name in fields:
        a, b = bank.get(name), current.get(name)
        if name in ("professions", "categories"):
            a, b = sorted(a or []), sorted(b or [])
        if a != b:
            out.append(name)
    return out


class Seeder:
    def __init__(self, api: Api, *, dry_run: bool = False, publish: bool = False, force: bool = False):
        self.api, self.dry_run, self.publish, self.force = api, dry_run, publish, force

    def existing(self) -> dict[str, dict]:
        return {t["slug"]: t for t in self.api.call("GET", "review/tools")["tools"]}

    def seed_tool(self, tool, existing: dict | None) -> Outcome:
        try:
            if existing is None:
                return self._create(tool)
            return self._update(tool, existing)
        except SeedError as err:
            return Outcome(tool.slug, "error", [str(err)])

    def _create(self, tool) -> Outcome:
        if self.dry_run:
            return Outcome(tool.slug, "create", ["would create: new tool, active version"
                                                 + (", published" if self.publish else "")])
        created = self.api.call("POST", "tools", tool.tool_metadata())
        tool_id = created["id"]
        self.api.call("PATCH", f"tools/{tool_id}", {"slug": tool.slug})
        active = self._publish_content(tool, tool_id, head=None, active=None)
        if self.publish:
            self.api.call("POST", f"tools/{tool_id}/publish", {})
        return Outcome(tool.slug, "create", [f"new tool, version {active['version_no']} active"]
                       + (["published"] if self.publish else ["not published"]))

    def _update(self, tool, brief: dict) -> Outcome:
        tool_id = brief["id"]
        current = self.api.call("GET", f"tools/{tool_id}")
        if current.get("owner") != BOT and not self.force:
            return Outcome(tool.slug, "skip", [f"a tool with this slug belongs to {current.get('owner')!r}, not the bank"])
        active, head = current.get("active_version"), current.get("head")
        active_content = self.api.call("GET", f"tools/{tool_id}/versions/{active['id']}") if active else None
        if not self.force:
            local = active_content and active_content.get("created_by") != BOT
            pending = head and (not active or head["id"] != active["id"])
            pending_author = self.api.call("GET", f"tools/{tool_id}/versions/{head['id']}")["created_by"] if pending else None
            if local or (pending and pending_author != BOT):
                who = active_content["created_by"] if local else pending_author
                what = "the active version" if local else f"a {head['state'].replace('_', ' ')} version"
                return Outcome(tool.slug, "skip", [f"{what} was made by {who!r}; not overwritten (use --force)"])

        changes = []
        meta_changed = _differences(tool.tool_metadata(), current, ("title", "summary", "professions", "categories"))
        if meta_changed:
            changes.append("metadata (" + ", ".join(meta_changed) + ")")
        content = tool.version_content()
        content_changed = _differences(content, active_content or {}, CONTENT_FIELDS) if active_content else ["all"]
        content_at = len(changes)
        if content_changed:
            changes.append("new active version (" + ", ".join(content_changed) + ")")
        publish = self.publish and not current.get("is_published")
        if publish:
            changes.append("published")
        if not changes:
            return Outcome(tool.slug, "unchanged", ["up to date" + ("" if current.get("is_published") else " (not published)")])
        if self.dry_run:
            return Outcome(tool.slug, "update", ["would change: " + ", ".join(changes)])
        if meta_changed:
            self.api.call("PATCH", f"tools/{tool_id}", {k: tool.tool_metadata()[k] for k in meta_changed})
        if content_changed:
            made = self._publish_content(tool, tool_id, head=head["id"] if head else None,
                                         active=active["id"] if active else None)
            changes[content_at] += f" → version {made['version_no']}"
        if publish:
            self.api.call("POST", f"tools/{tool_id}/publish", {})
        return Outcome(tool.slug, "update", changes)

    def _publish_content(self, tool, tool_id: int, *, head: int | None, active: int | None) -> dict:
        """Draft → in review → active, exactly as an author and a reviewer would. Returns the active version."""
        draft = self.api.call("POST", f"tools/{tool_id}/versions", {"expected_parent": head, **tool.version_content()})
        self.api.call("POST", f"tools/{tool_id}/versions/{draft['id']}/submit", {})
        return self.api.call("POST", f"tools/{tool_id}/versions/{draft['id']}/publish", {"expected_active": active})


def seed(*, profile: str = "dev", dry_run: bool = False, publish: bool = False, force: bool = False,
         platform=None, bank_dir: Path = BANK_DIR, out=None) -> int:
    """Seed the bank into the running platform; prints one line per tool and a summary. Returns an exit code."""
    out = out or sys.stdout
    if platform is None:
        from .launcher import Platform

        platform = Platform()
    tools = load_bank(profile, bank_dir)
    print(f"Seeding the example bank ({profile}: {len(tools)} tools){' — dry run, nothing changes' if dry_run else ''}",
          file=out, flush=True)
    try:
        token = bot_token(platform.hub_api_url(), platform.secret("cli_token"), platform.hub_db_url(), create=not dry_run)
    except (urllib.error.URLError, OSError) as err:
        print(f"Could not reach the hub at {platform.hub_api_url()} ({err}). Is the platform running?", file=out)
        return 1
    except SeedError as err:
        print(f"Could not sign in as {BOT}: {err}", file=out)
        return 1

    if token is None:  # a dry run before the first seed: the bank has made nothing yet
        outcomes = [Outcome(t.slug, "create", ["would create (no bank account yet; slugs not checked)"]) for t in tools]
    else:
        service = Api(platform.bind_url.rstrip("/") + "/services/skriptoteket/api/v1/", token)
        seeder = Seeder(service, dry_run=dry_run, publish=publish, force=force)
        try:
            existing = seeder.existing()
        except (SeedError, urllib.error.URLError, OSError) as err:
            print(f"Could not reach the Skriptoteket service: {err}", file=out)
            return 1
        outcomes = [seeder.seed_tool(t, existing.get(t.slug)) for t in tools]

    for outcome in outcomes:
        print(outcome.line(), file=out, flush=True)
    counts = {a: sum(o.action == a for o in outcomes) for a in ("create", "update", "unchanged", "skip", "error")}
    if counts["create"] + counts["update"] == 0 and not counts["error"]:
        print(f"Nothing to change: {counts['unchanged']} up to date, {counts['skip']} skipped.", file=out)
    else:
        verbs = ("Would create", "would update") if dry_run else ("Created", "updated")
        print(f"{verbs[0]} {counts['create']}, {verbs[1]} {counts['update']}; {counts['unchanged']} unchanged, "
              f"{counts['skip']} skipped, {counts['error']} failed.", file=out)
    return 1 if counts["error"] else 0
