"""Prometheus metrics of the service (``GET /services/skriptoteket/metrics``), and admission control of new runs.

Three sources, one registry (docs/operations.md lists every series):

- **Per request** (``observe_request``, called from the request log hook): HTTP counts and latency by route
  (the handler's name, a bounded set), method and status; the runner's queue wait and exec time that the tool
  app reports in ``POST runs/{id}/result`` (``timings.queue_ms`` / ``exec_ms``).
- **From the database, on scrape** (``DatabaseFeed``, at most once per ``refresh_interval``): every run that
  finished since the last refresh (also runs the deadline sweep failed, and runs finished by another replica)
  feeds the runs counter and the requested→finished histogram; cheap gauges (sessions, session files, stored
  bytes, runs in flight) and the blob store's free space. With several replicas each reports the same
  database-derived series: scrape one, or aggregate them with ``max``.
- **Called by other code**: ``AI_CALLS.labels(capability, outcome).inc()``.

Access (``MetricsHandler``): a bearer token equal to the configured metrics token (the Prometheus scraper;
``$SKRIPTOTEKET_METRICS_TOKEN_FILE``), or a logged-in user with the admin scope. Anyone else: 401/403.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import shutil
import time
from datetime import datetime, timedelta, timezone

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import PlatformCollector, ProcessCollector
from sqlalchemy import text

from .errors import ApiError

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
RUN_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)

HTTP_REQUESTS = Counter("skriptoteket_http_requests_total", "HTTP requests answered by the service.",
                        ["route", "method", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram("skriptoteket_http_request_duration_seconds", "Time to answer an HTTP request.",
                         ["route", "method"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
HTTP_IN_FLIGHT = Gauge("skriptoteket_http_requests_in_flight", "Requests being handled by this process.",
                       registry=REGISTRY)
RUNS = Counter("skriptoteket_runs_total", "Runs that finished, by tool slug, final status and context.",
               ["tool", "status", "context"], registry=REGISTRY)
RUN_DURATION = Histogram("skriptoteket_run_duration_seconds", "A run from requested to finished (as stored).",
                         ["context"], buckets=RUN_BUCKETS, registry=REGISTRY)
RUNNER_EXEC = Histogram("skriptoteket_runner_exec_seconds", "Tool code execution time reported by the runner "
                        "(timings.exec_ms of the result).", buckets=RUN_BUCKETS, registry=REGISTRY)
RUNNER_QUEUE = Histogram("skriptoteket_runner_queue_wait_seconds", "Wait for a warm kernel in the user's server "
                         "(timings.queue_ms of the result).", buckets=LATENCY_BUCKETS, registry=REGISTRY)
RUNS_REFUSED = Counter("skriptoteket_runs_refused_total", "New runs refused with 503 busy (admission control).",
                       ["reason"], registry=REGISTRY)
CATALOG_CACHE = Counter("skriptoteket_catalog_searches_total", "Catalog searches: answered from memory (hit), "
                        "read from Postgres and kept (miss), or read past the cache (bypass: favorites only, or "
                        "the cache is off while its LISTEN connection is down).", ["result"], registry=REGISTRY)
RUNS_IN_FLIGHT = Gauge("skriptoteket_runs_in_flight", "Runs with status running (all replicas).", registry=REGISTRY)
SESSIONS = Gauge("skriptoteket_sessions", "Session rows (per user, tool and context).", registry=REGISTRY)
SESSION_FILES = Gauge("skriptoteket_session_files", "Files kept in sessions.", registry=REGISTRY)
STORED_BYTES = Gauge("skriptoteket_stored_bytes", "Bytes in the blob store, by kind (from the database).",
                     ["kind"], registry=REGISTRY)
BLOB_FREE_BYTES = Gauge("skriptoteket_blob_store_free_bytes", "Free bytes on the blob store's file system.",
                        registry=REGISTRY)
DB_POOL_CHECKED_OUT = Gauge("skriptoteket_db_pool_checked_out", "Database connections in use.", registry=REGISTRY)
DB_UP = Gauge("skriptoteket_db_up", "1 when the last metrics refresh reached the database.", registry=REGISTRY)
AI_CALLS = Counter("skriptoteket_ai_calls_total", "AI model calls by capability and outcome "
                   "(succeeded, failed, abandoned, refused).", ["capability", "outcome"], registry=REGISTRY)


# --------------------------------------------------------------------------------------- per request


def route_of(handler) -> str:
    return type(handler).__name__


def observe_request(handler, status: int, seconds: float) -> None:
    route, method = route_of(handler), handler.request.method
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_LATENCY.labels(route, method).observe(seconds)
    if route == "RunResultHandler" and status < 300:
        observe_result_timings(handler.request.body)


def observe_result_timings(body: bytes) -> None:
    """The runner's own figures, as the tool app reported them with the result."""
    try:
        timings = json.loads(body or b"{}").get("timings") or {}
    except (ValueError, AttributeError):
        return
    for key, histogram in (("queue_ms", RUNNER_QUEUE), ("exec_ms", RUNNER_EXEC)):
        value = timings.get(key) if isinstance(timings, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 10**8:
            histogram.observe(value / 1000)


# --------------------------------------------------------------------------------------- from the database


class DatabaseFeed:
    """Runs finished since the last refresh, and the gauges, read with a few cheap queries on scrape."""

    OVERLAP = timedelta(minutes=2)  # a run row commits a little after its finished_at (now() at its txn start)

    def __init__(self, engine, blob_dir: str | None, refresh_interval: float = 5.0) -> None:
        self.engine, self.blob_dir, self.refresh_interval = engine, blob_dir, refresh_interval
        self.watermark = datetime.now(timezone.utc)
        self.seen: dict[str, datetime] = {}
        self._last = 0.0
        self._lock = asyncio.Lock()

    async def refresh(self, force: bool = False) -> None:
        async with self._lock:
            if not force and time.monotonic() - self._last < self.refresh_interval:
                return
            self._last = time.monotonic()
            if self.blob_dir:
                try:
                    BLOB_FREE_BYTES.set((await asyncio.to_thread(shutil.disk_usage, self.blob_dir)).free)
                except OSError:
                    pass
            pool = getattr(self.engine, "pool", None)
            if pool is not None and hasattr(pool, "checkedout"):
                DB_POOL_CHECKED_OUT.set(pool.checkedout())
            try:
                await asyncio.wait_for(self._read(), 5)
                DB_UP.set(1)
            except Exception:  # noqa: BLE001 - metrics must answer while the database is down
                DB_UP.set(0)

    async def _read(self) -> None:
        since = self.watermark - self.OVERLAP
        async with self.engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT r.id::text AS id, t.slug, r.status, r.context, r.requested_at, r.finished_at "
                "FROM skriptoteket.runs r JOIN skriptoteket.tools t ON t.id = r.tool_id "
                "WHERE r.finished_at > :since ORDER BY r.finished_at LIMIT 20000"), {"since": since})).mappings().all()
            gauges = (await conn.execute(text(
                "SELECT (SELECT count(*) FROM skriptoteket.runs WHERE status = 'running') AS running, "
                "(SELECT count(*) FROM skriptoteket.sessions) AS sessions, "
                "(SELECT count(*) FROM skriptoteket.session_files) AS files, "
                "(SELECT coalesce(sum(size), 0) FROM skriptoteket.session_files) AS file_bytes, "
                "(SELECT coalesce(sum(bytes), 0) FROM skriptoteket.artifacts WHERE expired_at IS NULL) AS artifact_bytes"
            ))).mappings().one()
        for row in rows:
            if row["id"] in self.seen:
                continue
            self.seen[row["id"]] = row["finished_at"]
            RUNS.labels(row["slug"], row["status"], row["context"]).inc()
            RUN_DURATION.labels(row["context"]).observe(
                max(0.0, (row["finished_at"] - row["requested_at"]).total_seconds()))
            self.watermark = max(self.watermark, row["finished_at"])
        horizon = self.watermark - 2 * self.OVERLAP
        self.seen = {k: v for k, v in self.seen.items() if v >= horizon}
        RUNS_IN_FLIGHT.set(gauges["running"])
        SESSIONS.set(gauges["sessions"])
        SESSION_FILES.set(gauges["files"])
        STORED_BYTES.labels("session_files").set(gauges["file_bytes"])
        STORED_BYTES.labels("artifacts").set(gauges["artifact_bytes"])


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# --------------------------------------------------------------------------------------- access


def read_token(path: str | None) -> str:
    if path and os.path.exists(path):
        return open(path).read().strip()
    return ""


def bearer_matches(auth_header: str, token: str) -> bool:
    if not token:
        return False
    scheme, _, supplied = auth_header.partition(" ")
    return scheme.lower() in ("bearer", "token") and hmac.compare_digest(supplied.strip().encode(), token.encode())


# --------------------------------------------------------------------------------------- admission control


class Admission:
    """Refuse a new run with 503 ``busy`` + ``Retry-After`` instead of letting it queue until it times out.

    A new run (``POST api/v1/runs``) is refused when this process already handles ``max_in_flight`` requests,
    when the database pool has no free connection left (everything else would wait for ``db_timeout`` and then
    fail), or when ``max_running_runs`` runs are running on the whole platform (0 turns a check off). Only run
    creation is refused: uploads and results of runs already admitted always go through, so admitted work
    finishes.
    """

    def __init__(self, engine, *, max_in_flight: int = 200, max_running_runs: int = 0, retry_after: int = 5,
                 pool_capacity: int | None = None) -> None:
        self.engine, self.max_in_flight, self.max_running_runs = engine, max_in_flight, max_running_runs
        self.retry_after, self.pool_capacity = retry_after, pool_capacity
        self.in_flight = 0
        self._running_at, self._running = 0.0, 0

    @staticmethod
    def applies(request) -> bool:
        return request.method == "POST" and request.path.rstrip("/").endswith("/api/v1/runs")

    def enter(self) -> None:
        self.in_flight += 1
        HTTP_IN_FLIGHT.set(self.in_flight)

    def leave(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        HTTP_IN_FLIGHT.set(self.in_flight)

    def refuse(self, handler, reason: str) -> None:
        RUNS_REFUSED.labels(reason).inc()
        handler.set_header("Retry-After", str(self.retry_after))
        raise ApiError(503, "busy", details={"reason": reason, "retry_after": self.retry_after})

    async def check(self, handler) -> None:
        if self.max_in_flight and self.in_flight > self.max_in_flight:  # this request counts itself
            self.refuse(handler, "requests")
        pool = getattr(self.engine, "pool", None)
        if self.pool_capacity and pool is not None and hasattr(pool, "checkedout"):
            if pool.checkedout() >= self.pool_capacity:
                self.refuse(handler, "database_pool")
        if self.max_running_runs:
            if time.monotonic() - self._running_at > 1.0:  # one cheap indexed count per second at most
                async with self.engine.connect() as conn:
                    self._running = (await conn.execute(text(
                        "SELECT count(*) FROM skriptoteket.runs WHERE status = 'running'"))).scalar_one()
                self._running_at = time.monotonic()
            if self._running >= self.max_running_runs:
                self.refuse(handler, "running_runs")
            self._running += 1  # until the next count, admitted runs count too


# --------------------------------------------------------------------------------------- the endpoint


def handler_class():
    """``GET metrics``: the Prometheus text format, for the scraper's token or an admin (defined lazily: the
    handlers package imports this module's counters)."""
    from .handlers.base import APIHandler
    from .scopes import ADMIN, has_scope

    class MetricsHandler(APIHandler):
        async def prepare(self) -> None:
            self.set_correlation_id()
            token = read_token(self.config.metrics_token_file)
            self.scraper = bearer_matches(self.request.headers.get("Authorization", ""), token)
            if not self.scraper:
                await super().prepare()

        async def get(self) -> None:
            if not self.scraper:
                if not self.current_user:
                    raise ApiError(401, "unauthenticated")
                if not has_scope(self.current_user, ADMIN):
                    raise ApiError(403, "missing_scope", role="admin")
            feed = self.settings.get("metrics_feed")
            if feed is not None:
                await feed.refresh()
            body, content_type = exposition()
            self.set_header("Content-Type", content_type)
            self.finish(body)

    MetricsHandler.get.required_scopes = (ADMIN,)  # for the permissions table: admins (or the scraper's token)
    return MetricsHandler
