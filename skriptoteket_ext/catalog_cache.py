"""Catalog pages kept in memory, correct because Postgres says when they change.

The catalog changes a few times a day (a publish, an edit of a title or its tags) and is read on every visit
to the landing page, the same few searches over and over. So the service keeps the shared part of each page
(the cards, in order, without the user's favorite flags) and each user's favorite tool ids, and answers a
repeated search without asking Postgres.

Correctness does not rest on expiry. Triggers (migration 0003) notify ``skriptoteket_catalog`` when tools or
their tags change, and ``skriptoteket_favorites`` (with the user's name) when favorites do, whoever writes.
One listening connection per service process receives them:

- a notification clears what it concerns and bumps ``generation``; a page read from Postgres is only kept if
  no notification arrived while it was being read, so a read that raced a commit is never kept;
- while the listening connection is down (Postgres restarting) nothing is served from memory: every search
  goes to Postgres, and the cache is emptied again once LISTEN holds, so a change missed meanwhile cannot
  survive;
- the service also forgets locally, right after its own commits (``invalidate``), so whoever changed a tool or
  starred one sees it on the next request, before the notification has come back;
- entries older than ``max_age`` are read again anyway, a bound on any failure not foreseen here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

import psycopg

from . import catalog, db
from .metrics import CATALOG_CACHE

CATALOG_CHANNEL = "skriptoteket_catalog"
FAVORITES_CHANNEL = "skriptoteket_favorites"
# A half-open connection (a dropped network path) is noticed by the probe after a quiet minute, or by keepalives.
LISTEN_PROBE_AFTER = 60.0
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}

log = logging.getLogger("skriptoteket.catalog_cache")


class _LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_fresh(self, key, max_age: float):
        entry = self.get(key)
        if entry is None or time.monotonic() - entry[0] > max_age:
            return None
        self.move_to_end(key)
        return entry[1]

    def put(self, key, value) -> None:
        self[key] = (time.monotonic(), value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class CatalogCache:
    """One per service process. ``start()`` on the service's loop; until LISTEN holds, every search is a miss."""

    def __init__(self, db_url: str, *, max_pages: int = 1024, max_users: int = 4096, max_age: float = 300.0):
        self.conninfo = db.libpq_url(db_url)
        self.max_age = max_age
        self.generation = 0
        self.listening = False
        self._pages = _LRU(max_pages)
        self._favorites = _LRU(max_users)
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------------------------------ reading

    async def search_json(self, engine, user: str, *, q: str, professions: list[str], categories: list[str],
                          favorites_only: bool, limit: int, offset: int) -> str:
        """``catalog.search_json``'s answer, from memory when it can be."""
        query = {"q": q, "professions": professions, "categories": categories, "limit": limit, "offset": offset}
        if favorites_only or not self.listening:
            CATALOG_CACHE.labels("bypass").inc()
            async with db.reading(engine) as conn:
                return await catalog.search_json(conn, user, favorites_only=favorites_only, **query)
        key = (catalog.search_terms(q) if q else None, tuple(professions), tuple(categories), limit, offset)
        page = self._pages.get_fresh(key, self.max_age)
        favorites = self._favorites.get_fresh(user, self.max_age)
        CATALOG_CACHE.labels("hit" if page is not None and favorites is not None else "miss").inc()
        if page is None or favorites is None:
            generation = self.generation
            async with db.reading(engine) as conn:
                if page is None:
                    page = await catalog.shared_page(conn, **query)
                if favorites is None:
                    favorites = await catalog.favorite_ids(conn, user)
            if generation == self.generation and self.listening:  # nothing changed while we read
                self._pages.put(key, page)
                self._favorites.put(user, favorites)
        return catalog.page_json(page, favorites, limit=limit, offset=offset)

    def invalidate(self, user: str | None = None) -> None:
        """Forget ``user``'s favorites, or (no user) everything."""
        self.generation += 1
        if user is None:
            self._pages.clear()
            self._favorites.clear()
        else:
            self._favorites.pop(user, None)

    # ------------------------------------------------------------------------------------------ listening

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._listen_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _listen_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - Postgres down or restarting: serve from Postgres meanwhile
                if self.listening:
                    delay = 0.5
                    log.warning("Catalog cache off (searches go to Postgres) until LISTEN holds again: %s", e)
                else:
                    log.debug("LISTEN for catalog changes failed: %s", e)
            finally:
                self.listening = False
                self.invalidate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _listen(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, connect_timeout=5, application_name="skriptoteket-listen", **KEEPALIVE)
        async with conn:
            await conn.execute(f"LISTEN {CATALOG_CHANNEL}")
            await conn.execute(f"LISTEN {FAVORITES_CHANNEL}")
            self.invalidate()  # whatever changed before LISTEN held
            self.listening = True
            log.info("Catalog cache on: listening for catalog changes")
            while True:
                async for note in conn.notifies(timeout=LISTEN_PROBE_AFTER):
                    self.invalidate(note.payload if note.channel == FAVORITES_CHANNEL else None)
                await conn.execute("SELECT 1")
