"""Publish tools through the service's own lifecycle API (create → save → submit → publish), as an author and a
reviewer would, so tests get real published tools without touching the database."""

from __future__ import annotations

import httpx

NOOP_SOURCE = "def run_tool(input_dir, output_dir):\n    return {'outputs': []}\n"


class Api:
    def __init__(self, platform, user: str):
        self.client = httpx.Client(
            base_url=f"{platform.service_url}/api/v1/", timeout=30,
            headers={"Authorization": f"token {platform.token_for(user)}"},
        )

    def call(self, method: str, path: str, body: dict | None = None, expect: int | tuple = (200, 201, 204)) -> dict:
        response = self.client.request(method, path, json=body)
        expected = expect if isinstance(expect, tuple) else (expect,)
        assert response.status_code in expected, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else {}


def ensure_roles(platform, author: str = "pub-author", reviewer: str = "pub-reviewer") -> tuple[str, str]:
    for name, group in ((author, "authors"), (reviewer, "reviewers")):
        if name not in platform.passwords:
            platform.create_user(name, group)
    return author, reviewer


def publish_tool(platform, slug: str, title: str, *, source: str = NOOP_SOURCE, summary: str = "",
                 input_schema: list | None = None, settings_schema: list | None = None,
                 usage_instructions: str | None = None, professions=("teacher",), categories=("other",),
                 author: str | None = None, reviewer: str | None = None) -> dict:
    """A published tool with one active version; returns ``{"tool_id", "version_id", "slug"}``."""
    author, reviewer = ensure_roles(platform, author or "pub-author", reviewer or "pub-reviewer")
    writer, checker = Api(platform, author), Api(platform, reviewer)
    tool = writer.call("POST", "tools", {"title": title, "summary": summary, "professions": list(professions),
                                         "categories": list(categories)})
    tool_id = tool["id"]
    checker.call("PATCH", f"tools/{tool_id}", {"slug": slug})
    version = writer.call("POST", f"tools/{tool_id}/versions", {
        "expected_parent": None,  # a new tool has no versions yet
        "source": source, "input_schema": input_schema or [], "settings_schema": settings_schema, "usage_instructions": usage_instructions,
    })
    version_id = version["id"]
    writer.call("POST", f"tools/{tool_id}/versions/{version_id}/submit", {})
    active = checker.call("POST", f"tools/{tool_id}/versions/{version_id}/publish", {"expected_active": None})
    checker.call("POST", f"tools/{tool_id}/publish", {})
    return {"tool_id": tool_id, "version_id": active.get("id", version_id), "slug": slug}
