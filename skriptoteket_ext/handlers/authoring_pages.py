"""Pages for authors and reviewers: my tools, a tool's draft and versions, the review queue and a review,
and suggestions. They only read; every button posts to the JSON API (see ``static/skriptoteket.js``)."""

from __future__ import annotations

import json

from .. import catalog, maintainers, scopes, suggestions
from .. import tools as tool_store
from ..scopes import AUTHOR, REVIEW, needs_scope
from .pages import PageHandler

ID = r"(\d{1,18})"


class GovernancePage(PageHandler):
    async def taxonomy(self, conn) -> dict:
        return await catalog.taxonomy(conn, self.lang)

    async def check_tool(self, conn, tool_id: int, rule: str = "maintainer") -> None:
        facts = await tool_store.access(conn, tool_id, self.user_name)
        scopes.check_tool_rule(rule, self.current_user, **facts)


class MyToolsPage(GovernancePage):
    @needs_scope(AUTHOR)
    async def get(self) -> None:
        reviewer = scopes.is_reviewer(self.current_user)
        async with self.engine.begin() as conn:
            mine = await tool_store.list_tools(conn, maintainer=self.user_name)
            everything = await tool_store.list_tools(conn) if reviewer else []
            taxonomy = await self.taxonomy(conn)
        self.render_page("tools.html", mine=mine, everything=everything, taxonomy=taxonomy)


class ToolPage(GovernancePage):
    @needs_scope(AUTHOR)
    async def get(self, tool_id: str) -> None:
        tool_id = int(tool_id)
        async with self.engine.begin() as conn:
            await self.check_tool(conn, tool_id)
            tool = await tool_store.get_tool(conn, tool_id)
            versions = await tool_store.list_versions(conn, tool_id)
            head = await tool_store.get_version(conn, tool_id, tool["head"]["id"]) if tool["head"] else None
            people = await maintainers.list_maintainers(conn, tool_id)
            events = await tool_store.events(conn, tool_id)
            taxonomy = await self.taxonomy(conn)
        self.render_page(
            "tool.html", tool=tool, versions=versions, head=head, people=people, events=events[-20:],
            taxonomy=taxonomy, pretty=_pretty, is_reviewer=scopes.is_reviewer(self.current_user),
            is_admin=scopes.has_scope(self.current_user, scopes.ADMIN),
        )


class ReviewQueuePage(GovernancePage):
    @needs_scope(REVIEW)
    async def get(self) -> None:
        async with self.engine.begin() as conn:
            queue = await tool_store.review_queue(conn)
            pending = await suggestions.listing(conn, status="pending")
        self.render_page("review_queue.html", queue=queue, pending=pending)


class ReviewPage(GovernancePage):
    @needs_scope(REVIEW)
    async def get(self, tool_id: str, version_id: str) -> None:
        tool_id, version_id = int(tool_id), int(version_id)
        async with self.engine.begin() as conn:
            await self.check_tool(conn, tool_id)
            tool = await tool_store.get_tool(conn, tool_id)
            version = await tool_store.get_version(conn, tool_id, version_id)
            diff = await tool_store.diff(conn, tool_id, version_id)
        self.render_page("review.html", tool=tool, version=version, diff=diff)


class SuggestionsPage(GovernancePage):
    @needs_scope()
    async def get(self) -> None:
        async with self.engine.begin() as conn:
            mine = await suggestions.listing(conn, user=self.user_name)
            taxonomy = await self.taxonomy(conn)
        self.render_page("suggestions.html", mine=mine, taxonomy=taxonomy)


def _pretty(value) -> str:
    return "" if value is None else json.dumps(value, indent=2, ensure_ascii=False)


default_handlers = [
    (r"tools", MyToolsPage),
    (rf"tools/{ID}", ToolPage),
    (r"review", ReviewQueuePage),
    (rf"review/{ID}/{ID}", ReviewPage),
    (r"suggestions", SuggestionsPage),
]
