"""Suggestions for new tools (JSON). Rules: permissions.PERMISSIONS."""

from __future__ import annotations

from .. import suggestions as store
from ..errors import ApiError
from ..permissions import SUGGESTION, authorize, routes
from ..tables import SUGGESTION_STATUSES
from .base import APIHandler


class SuggestionsHandler(APIHandler):
    route = "api/v1/suggestions"

    @authorize
    async def get(self):
        return {"suggestions": await store.listing(self.db, user=self.user_name)}

    @authorize
    async def post(self):
        return 201, await store.create(self.db, self.user_name, self.json_body())


class AcceptHandler(APIHandler):
    route = rf"{SUGGESTION}/accept"

    @authorize
    async def post(self, suggestion_id):
        body = self.json_body() if self.request.body else {}
        return await store.decide(self.db, int(suggestion_id), self.user_name, "accepted", body.get("rationale"))


class DenyHandler(APIHandler):
    route = rf"{SUGGESTION}/deny"

    @authorize
    async def post(self, suggestion_id):
        body = self.json_body() if self.request.body else {}
        return await store.decide(self.db, int(suggestion_id), self.user_name, "denied", body.get("rationale"))


class ReviewSuggestionsHandler(APIHandler):
    route = "api/v1/review/suggestions"

    @authorize
    async def get(self):
        status = self.get_argument("status", None)
        if status is not None and status not in SUGGESTION_STATUSES:
            raise ApiError(422, "invalid_parameter", details={"parameter": "status", "allowed": list(SUGGESTION_STATUSES)},
                           parameter="status")
        return {"suggestions": await store.listing(self.db, status=status)}


default_handlers = routes(SuggestionsHandler, AcceptHandler, DenyHandler, ReviewSuggestionsHandler)
