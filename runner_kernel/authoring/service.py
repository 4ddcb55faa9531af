"""The authoring library's client of the service's lifecycle and sandbox API (docs/api.md, docs/authoring.md).

Synchronous (``httpx.Client``): notebook cells call it directly (``skr.save()``), and the lock renewal calls it
from a background thread. The preview, which runs inside widget callbacks on the kernel's event loop, uses the
tool app's asynchronous ``ServiceClient`` instead (``runner_kernel.client``).

The token: in the author's JupyterLab server, ``$JUPYTERHUB_API_TOKEN`` is the server's token, which the hub
configuration lets call the service as the author (``Spawner.server_token_scopes``, hub_config). Anywhere else
(CI, a script) pass ``token=`` or set ``SKRIPTOTEKET_TOKEN``.
"""

from __future__ import annotations

import os
import uuid
from typing import Any
from urllib.parse import quote

import httpx

from ..client import api_url_from_env


class AuthoringError(Exception):
    """A refusal or failure of the service, with its envelope; ``str()`` is the message an author reads."""

    def __init__(self, status: int, code: str, message: str = "", details: dict | None = None):
        self.status, self.code, self.message = status, code, message or code
        self.details = details or {}
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.message} [{self.status} {self.code}]" if self.status else self.message


def token_from_env() -> str:
    return os.environ.get("SKRIPTOTEKET_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN") or ""


class AuthoringAPI:
    def __init__(self, token: str | None = None, *, api_url: str | None = None, lang: str = "en",
                 timeout: float = 60.0):
        self.api_url = api_url or api_url_from_env()
        self.lang = lang
        self._token = token if token is not None else token_from_env()
        self._http = httpx.Client(base_url=self.api_url, timeout=httpx.Timeout(timeout, connect=5.0), trust_env=False)

    @property
    def token(self) -> str:
        return self._token

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, body: Any = None, *, params: dict | None = None) -> Any:
        headers = {"Authorization": f"token {self._token}", "Accept-Language": self.lang,
                   "X-Correlation-ID": uuid.uuid4().hex}
        try:
            response = self._http.request(method, path.lstrip("/"), json=body, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise AuthoringError(0, "service_unavailable",
                                 f"The Skriptoteket service cannot be reached at {self.api_url} ({exc}).") from exc
        if response.status_code >= 400:
            try:
                error = response.json().get("error") or {}
            except ValueError:
                error = {}
            raise AuthoringError(response.status_code, str(error.get("code") or "http_error"),
                                 str(error.get("message") or response.reason_phrase), error.get("details") or {})
        return response.json() if response.content else None

    # ---- tools ------------------------------------------------------------------------------------------

    def me(self) -> dict:
        return self.call("GET", "me")

    def my_tools(self) -> list[dict]:
        return self.call("GET", "tools")["tools"]

    def all_tools(self) -> list[dict]:
        """Every tool (reviewers and admins)."""
        return self.call("GET", "review/tools")["tools"]

    def find_tool(self, ref: str | int) -> dict:
        """A tool the caller may author, by id or slug (their own tools; every tool for reviewers)."""
        if isinstance(ref, int) or str(ref).isdigit():
            return self.tool(int(ref))
        for lister in (self.my_tools, self.all_tools):
            try:
                for tool in lister():
                    if tool["slug"] == ref:
                        return self.tool(tool["id"])
            except AuthoringError as exc:
                if exc.status != 403:
                    raise
        raise AuthoringError(404, "tool_not_found", f"You maintain no tool with the address {ref!r}.")

    def tool(self, tool_id: int) -> dict:
        return self.call("GET", f"tools/{tool_id}")

    def create_tool(self, title: str, summary: str = "", professions=(), categories=()) -> dict:
        return self.call("POST", "tools", {"title": title, "summary": summary, "professions": list(professions),
                                           "categories": list(categories)})

    def update_tool(self, tool_id: int, changes: dict) -> dict:
        return self.call("PATCH", f"tools/{tool_id}", changes)

    # ---- versions ---------------------------------------------------------------------------------------

    def versions(self, tool_id: int) -> list[dict]:
        return self.call("GET", f"tools/{tool_id}/versions")["versions"]

    def version(self, tool_id: int, version_id: int) -> dict:
        return self.call("GET", f"tools/{tool_id}/versions/{version_id}")

    def save_draft(self, tool_id: int, content: dict, expected_parent: int | None) -> dict:
        return self.call("POST", f"tools/{tool_id}/versions", {"expected_parent": expected_parent, **content})

    def submit(self, tool_id: int, version_id: int) -> dict:
        return self.call("POST", f"tools/{tool_id}/versions/{version_id}/submit", {})

    def diff(self, tool_id: int, version_id: int) -> dict:
        return self.call("GET", f"tools/{tool_id}/versions/{version_id}/diff")

    # ---- draft lock -------------------------------------------------------------------------------------

    def lock(self, tool_id: int) -> dict | None:
        return self.call("GET", f"tools/{tool_id}/lock")["lock"]

    def acquire_lock(self, tool_id: int) -> dict:
        return self.call("PUT", f"tools/{tool_id}/lock")["lock"]

    def release_lock(self, tool_id: int) -> None:
        self.call("DELETE", f"tools/{tool_id}/lock")

    # ---- sandbox ----------------------------------------------------------------------------------------

    def snapshot(self, tool: str | int, content: dict, base_version_id: int | None = None) -> dict:
        body = {"tool": tool, **content}
        if base_version_id is not None:
            body["base_version_id"] = base_version_id
        return self.call("POST", "sandbox/snapshots", body)

    def sandbox_app(self, slug: str, snapshot: str | None = None, version: int | None = None) -> dict:
        params = {"context": "sandbox", **({"snapshot": snapshot} if snapshot else {}),
                  **({"version": str(version)} if version else {})}
        return self.call("GET", f"apps/{quote(slug, safe='')}", params=params)
