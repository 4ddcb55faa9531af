"""The current user: who am I, which roles do I have, and my profile (display name, language)."""

from __future__ import annotations

from .. import profiles
from ..scopes import needs_scope, roles_of
from .base import APIHandler


class MeHandler(APIHandler):
    async def _model(self, conn) -> dict:
        return {"name": self.user_name, "roles": sorted(roles_of(self.current_user)), **await profiles.get(conn, self.user_name)}

    @needs_scope()
    async def get(self) -> None:
        async with self.engine.begin() as conn:
            await profiles.touch(conn, self.user_name)
            self.write_json(await self._model(conn))

    @needs_scope()
    async def put(self) -> None:
        changes = profiles.validate_profile(self.json_body())
        async with self.engine.begin() as conn:
            await profiles.update(conn, self.user_name, changes)
            self.write_json(await self._model(conn))


default_handlers = [(r"api/v1/me", MeHandler)]
