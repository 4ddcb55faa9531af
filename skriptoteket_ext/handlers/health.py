"""Health: is the service up, and can it reach its database?"""

from __future__ import annotations

from .. import __version__
from ..db import ping
from ..scopes import public
from .base import APIHandler


class HealthHandler(APIHandler):
    async def prepare(self) -> None:
        # Health must answer even when the hub cannot resolve a token: skip user resolution.
        self.set_correlation_id()

    @public
    async def get(self) -> None:
        db_ok = await ping(self.engine, timeout=self.config.health_db_timeout)
        body = {"status": "ok" if db_ok else "degraded", "db": "ok" if db_ok else "down", "version": __version__}
        self.write_json(body, 200 if db_ok else 503)


default_handlers = [(r"api/v1/health", HealthHandler)]
