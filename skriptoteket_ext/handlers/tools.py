"""Tools, versions, review, draft locks and maintainers (JSON). Rules: permissions.PERMISSIONS."""

from __future__ import annotations

from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from .. import lifecycle as lc
from .. import maintainers
from .. import tools as store
from ..errors import ApiError
from ..permissions import TOOL, VERSION, authorize, routes
from ..scopes import is_reviewer
from .base import APIHandler


def _required(body: dict, field: str):
    if field not in body:
        raise lc.Refused("field_required", field=field)
    return body[field]


def _optional_id(value, field: str) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise lc.Refused("invalid_field", field=field)
    return value


class ToolsHandler(APIHandler):
    route = "api/v1/tools"

    @authorize
    async def get(self):
        return {"tools": await store.list_tools(self.db, maintainer=self.user_name)}

    @authorize
    async def post(self):
        return 201, await store.create_tool(self.db, self.user_name, self.json_body())


class ToolHandler(APIHandler):
    route = TOOL
    catalog_changes = "catalog"

    @authorize
    async def get(self, tool_id):
        tool = await store.get_tool(self.db, int(tool_id))
        # Authoring details are for those who may author it; teachers see the catalog card.
        facts = await store.access(self.db, int(tool_id), self.user_name)
        if not (is_reviewer(self.current_user) or facts["maintainer"]):
            tool = {k: tool[k] for k in ("id", "slug", "title", "summary", "professions", "categories", "is_published")}
        return tool

    @authorize
    async def patch(self, tool_id):
        return await store.update_tool(self.db, int(tool_id), self.user_name, self.json_body(),
                                       reviewer=is_reviewer(self.current_user))


class ToolEventsHandler(APIHandler):
    route = rf"{TOOL}/events"

    @authorize
    async def get(self, tool_id):
        return {"events": await store.events(self.db, int(tool_id))}


class PublishToolHandler(APIHandler):
    route = rf"{TOOL}/publish"
    catalog_changes = "catalog"

    @authorize
    async def post(self, tool_id):
        return await store.publish_tool(self.db, int(tool_id), self.user_name)


class DepublishToolHandler(APIHandler):
    route = rf"{TOOL}/depublish"
    catalog_changes = "catalog"

    @authorize
    async def post(self, tool_id):
        return await store.depublish_tool(self.db, int(tool_id), self.user_name)


class VersionsHandler(APIHandler):
    route = rf"{TOOL}/versions"

    @authorize
    async def get(self, tool_id):
        return {"versions": await store.list_versions(self.db, int(tool_id))}

    @authorize
    async def post(self, tool_id):
        """Save a draft: {expected_parent, source?, entrypoint?, input_schema?, settings_schema?, usage_instructions?}."""
        body = self.json_body()
        expected = _optional_id(_required(body, "expected_parent"), "expected_parent")
        unknown = sorted(set(body) - {"expected_parent", *store.CONTENT_FIELDS})
        if unknown:
            raise ApiError(422, "unknown_fields", details={"unknown_fields": unknown}, fields=", ".join(unknown))
        content = store.validate_content(body, self.lang)
        return 201, await store.save_draft(self.db, int(tool_id), self.user_name, content, expected)


class VersionHandler(APIHandler):
    route = VERSION

    @authorize
    async def get(self, tool_id, version_id):
        return await store.get_version(self.db, int(tool_id), int(version_id))


class DiffHandler(APIHandler):
    route = rf"{VERSION}/diff"

    @authorize
    async def get(self, tool_id, version_id):
        return await store.diff(self.db, int(tool_id), int(version_id))


class SubmitHandler(APIHandler):
    route = rf"{VERSION}/submit"

    @authorize
    async def post(self, tool_id, version_id):
        return await store.submit(self.db, int(tool_id), int(version_id), self.user_name)


class RequestChangesHandler(APIHandler):
    route = rf"{VERSION}/request-changes"

    @authorize
    async def post(self, tool_id, version_id):
        message = self.json_body().get("message")
        return 201, await store.request_changes(self.db, int(tool_id), int(version_id), self.user_name, message)


class PublishVersionHandler(APIHandler):
    route = rf"{VERSION}/publish"

    @authorize
    async def post(self, tool_id, version_id):
        """{expected_active: id|null}: the active version the review compared against (the diff's base)."""
        expected = _optional_id(_required(self.json_body(), "expected_active"), "expected_active")
        return 201, await store.publish_version(self.db, int(tool_id), int(version_id), self.user_name, expected)


class RollbackHandler(APIHandler):
    route = rf"{VERSION}/rollback"

    @authorize
    async def post(self, tool_id, version_id):
        return 201, await store.rollback(self.db, int(tool_id), int(version_id), self.user_name)


class LockHandler(APIHandler):
    route = rf"{TOOL}/lock"

    @authorize
    async def get(self, tool_id):
        return {"lock": await store.get_lock(self.db, int(tool_id))}

    @authorize
    async def put(self, tool_id):
        return {"lock": await store.acquire_lock(self.db, int(tool_id), self.user_name)}

    @authorize
    async def delete(self, tool_id):
        await store.release_lock(self.db, int(tool_id), self.user_name)


class LockTakeoverHandler(APIHandler):
    route = rf"{TOOL}/lock/takeover"

    @authorize
    async def post(self, tool_id):
        return {"lock": await store.acquire_lock(self.db, int(tool_id), self.user_name, force=True)}


async def hub_user_exists(hub_auth, name: str) -> bool:
    """Ask the hub, with the service's own token (scope read:users:name), whether a user exists."""
    url = f"{hub_auth.api_url.rstrip('/')}/users/{quote(name, safe='')}"
    try:
        await AsyncHTTPClient().fetch(url, headers={"Authorization": f"token {hub_auth.api_token}"}, request_timeout=10)
        return True
    except HTTPClientError as err:
        if err.code == 404:
            return False
        raise ApiError(503, "hub_unavailable") from err
    except OSError as err:
        raise ApiError(503, "hub_unavailable") from err


class MaintainersHandler(APIHandler):
    route = rf"{TOOL}/maintainers"

    @authorize
    async def get(self, tool_id):
        return await maintainers.list_maintainers(self.db, int(tool_id))

    @authorize
    async def post(self, tool_id):
        """{user, reason}: add a maintainer (the hub must know the user)."""
        body = self.json_body()
        reason = maintainers.check_reason(body.get("reason"))
        user = maintainers.check_user_name(body.get("user"))
        if not await hub_user_exists(self.hub_auth, user):
            raise ApiError(422, "unknown_user", user=user)
        return 201, await maintainers.add(self.db, int(tool_id), user, self.user_name, reason)


class MaintainerHandler(APIHandler):
    route = rf"{TOOL}/maintainers/(?P<user_name>[^/]+)"

    @authorize
    async def delete(self, tool_id, user_name):
        """Remove a maintainer; the reason comes in the body ({reason}) or as ?reason=."""
        body = self.json_body() if self.request.body else {}
        reason = body.get("reason", self.get_argument("reason", None))
        return await maintainers.remove(self.db, int(tool_id), user_name, self.user_name, reason)


class ReviewQueueHandler(APIHandler):
    route = "api/v1/review/queue"

    @authorize
    async def get(self):
        return {"pending": await store.review_queue(self.db)}


class ReviewToolsHandler(APIHandler):
    route = "api/v1/review/tools"

    @authorize
    async def get(self):
        return {"tools": await store.list_tools(self.db)}


default_handlers = routes(
    ToolsHandler, ToolHandler, ToolEventsHandler, PublishToolHandler, DepublishToolHandler, VersionsHandler,
    VersionHandler, DiffHandler, SubmitHandler, RequestChangesHandler, PublishVersionHandler, RollbackHandler,
    LockHandler, LockTakeoverHandler, MaintainersHandler, MaintainerHandler, ReviewQueueHandler, ReviewToolsHandler,
)
