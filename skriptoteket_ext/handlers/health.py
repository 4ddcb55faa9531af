"""Health: is the service up, can it reach its database, and can it write its blob store?"""

from __future__ import annotations

import asyncio
import os
import shutil
import time

from .. import __version__
from ..blobs import StorageFull
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
        blobs = await cached_blob_health(self.blobs, self.config.health_min_free_mb)
        body = {"status": "ok" if db_ok and blobs == "ok" else "degraded", "db": "ok" if db_ok else "down",
                "blobs": blobs, "version": __version__}
        self.write_json(body, 200 if db_ok and blobs in ("ok", "low") else 503)


_probe: dict = {"at": -1e9, "result": "ok"}


async def cached_blob_health(store, min_free_mb: float, max_age: float = 10.0) -> str:
    """The probe writes and fsyncs a blob; health is polled often (the tool app preconnects with it), so a
    result is reused for ``max_age`` seconds."""
    if time.monotonic() - _probe["at"] > max_age:
        _probe["result"] = await asyncio.to_thread(blob_store_health, store, min_free_mb)
        _probe["at"] = time.monotonic()
    return _probe["result"]


def blob_store_health(store, min_free_mb: float) -> str:
    """``ok``; ``low`` (writable, less than ``min_free_mb`` free: still 200, for monitoring); ``full`` (no space for
    a probe blob) or ``down`` (it cannot be written and read back): 503."""
    key = f"health/probe-{os.getpid()}"
    try:
        store.put(key, b"ok")
        with store.open(key) as f:
            ok = f.read() == b"ok"
        store.delete(key)
    except StorageFull:
        return "full"
    except Exception:  # noqa: BLE001 - any other failure (read-only, gone) is "down"
        return "down"
    if not ok:
        return "down"
    root = getattr(store, "root", None)
    if root is not None and shutil.disk_usage(root).free < min_free_mb * 1024 * 1024:
        return "low"
    return "ok"


default_handlers = [(r"api/v1/health", HealthHandler)]
