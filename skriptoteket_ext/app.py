"""The Skriptoteket service: a JupyterHub-managed tornado application configured with traitlets.

JupyterHub starts it (``python -m skriptoteket_ext``) with ``JUPYTERHUB_SERVICE_URL``,
``JUPYTERHUB_SERVICE_PREFIX`` and its API token in the environment. Its own settings come from
``skriptoteket_config.py`` (traitlets) and ``SKRIPTOTEKET_*`` environment variables.
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

from jinja2 import Environment, FileSystemLoader, select_autoescape
from jupyterhub.utils import url_path_join
from sqlalchemy import text as sa_text
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import Bool, Dict, Float, Integer, Unicode, default
from traitlets.config import Application

from . import __version__
from . import logging as ops_logging
from . import metrics
from .blobs import DirectoryBlobStore
from .catalog_cache import CatalogCache
from .db import create_engine
from .handlers import default_handlers, fallback_handler
from .handlers.runs import start_sweeper
from .hubauth import service_oauth_class
from .i18n import LANGUAGES
from .runs import Policy

HERE = Path(__file__).parent


class SkriptoteketService(Application):
    name = "skriptoteket"
    description = "The Skriptoteket hub service"
    version = __version__

    config_file = Unicode(
        "skriptoteket_config.py", help="The traitlets configuration file to load (if it exists)."
    ).tag(config=True)

    db_url = Unicode(help="SQLAlchemy URL of the service's Postgres database ($SKRIPTOTEKET_DB_URL).").tag(
        config=True
    )

    @default("db_url")
    def _db_url_default(self):
        return os.environ.get("SKRIPTOTEKET_DB_URL", "")

    db_pool_size = Integer(10, help="Connections kept in the pool.").tag(config=True)
    db_max_overflow = Integer(10, help="Extra connections allowed above the pool size.").tag(config=True)
    db_timeout = Float(5.0, help="Seconds to wait for a connection before failing with 503.").tag(config=True)
    health_db_timeout = Float(3.0, help="Seconds the health check waits for the database.").tag(config=True)

    default_language = Unicode(help="Language for users who have not chosen one (en or sv).").tag(config=True)

    @default("default_language")
    def _default_language_default(self):
        lang = os.environ.get("SKRIPTOTEKET_LANGUAGE", "en")
        return lang if lang in LANGUAGES else "en"

    base_url = Unicode(help="URL prefix of the service (from $JUPYTERHUB_SERVICE_PREFIX).").tag(config=True)

    @default("base_url")
    def _base_url_default(self):
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/skriptoteket/")

    hub_prefix = Unicode(help="URL prefix of the hub's pages (from $JUPYTERHUB_BASE_URL).").tag(config=True)

    @default("hub_prefix")
    def _hub_prefix_default(self):
        return url_path_join(self.public_prefix, "hub/")

    public_prefix = Unicode(help="URL prefix of the whole deployment (from $JUPYTERHUB_BASE_URL).").tag(config=True)

    @default("public_prefix")
    def _public_prefix_default(self):
        return os.environ.get("JUPYTERHUB_BASE_URL", "/")

    bind_url = Unicode(help="Where to listen (from $JUPYTERHUB_SERVICE_URL).").tag(config=True)

    @default("bind_url")
    def _bind_url_default(self):
        return os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101")

    cookie_secret_file = Unicode(
        help="File holding the secret that signs the service's OAuth cookies ($SKRIPTOTEKET_COOKIE_SECRET_FILE)."
    ).tag(config=True)

    @default("cookie_secret_file")
    def _cookie_secret_file_default(self):
        return os.environ.get("SKRIPTOTEKET_COOKIE_SECRET_FILE", "")

    blob_dir = Unicode(help="Directory of the blob store: uploads, session files, artifacts ($SKRIPTOTEKET_HOME/blobs).").tag(
        config=True
    )

    @default("blob_dir")
    def _blob_dir_default(self):
        return os.path.join(os.environ.get("SKRIPTOTEKET_HOME") or "var", "blobs")

    run_timeout = Integer(120, help="Wall-time limit of a production run, seconds.").tag(config=True)
    sandbox_run_timeout = Integer(60, help="Wall-time limit of an author's sandbox run, seconds.").tag(config=True)
    run_grace_period = Integer(
        60, help="Seconds after a run's time limit before a run that never reported back is marked failed."
    ).tag(config=True)
    sweep_interval = Float(60.0, help="Seconds between sweeps of overdue runs, expired artifacts, idle files (0: off).").tag(
        config=True
    )
    catalog_cache_max_age = Float(
        300.0, help="Seconds a catalog page may be answered from memory (kept correct by Postgres notifications; "
                    "the age is only a safety bound). 0: every search is read from Postgres."
    ).tag(config=True)
    artifact_retention_days = Float(7.0, help="Days an artifact stays downloadable.").tag(config=True)
    session_file_idle_hours = Float(24.0, help="Hours an unused session file is kept.").tag(config=True)
    ai = Dict(help="AI assistance per capability (generate, edit, explain, complete, or 'default' for all): "
                   "base_url, api_key, model, max_tokens, requests_per_minute, tokens_per_day, timeout, temperature. "
                   "Off unless configured; $SKRIPTOTEKET_AI_* give defaults (docs/ai.md).").tag(config=True)
    ai_log_prompts = Bool(False, help="Log AI prompts and answers (they hold authors' code).").tag(config=True)

    # ---- operations (docs/operations.md) ----
    json_logs = Bool(True, help="Log one JSON object per line ($SKRIPTOTEKET_LOG_FORMAT=text turns it off).").tag(
        config=True
    )

    @default("json_logs")
    def _json_logs_default(self):
        return os.environ.get("SKRIPTOTEKET_LOG_FORMAT", "json") != "text"

    metrics_token_file = Unicode(
        help="File holding the bearer token of the Prometheus scraper for /metrics ($SKRIPTOTEKET_METRICS_TOKEN_FILE); "
             "without it only admins may read the metrics."
    ).tag(config=True)

    @default("metrics_token_file")
    def _metrics_token_file_default(self):
        return os.environ.get("SKRIPTOTEKET_METRICS_TOKEN_FILE", "")

    max_in_flight = Integer(200, help="Refuse new runs (503 busy) while this process handles more requests (0: off).").tag(
        config=True
    )
    max_running_runs = Integer(0, help="Refuse new runs (503 busy) while this many runs are running (0: off).").tag(
        config=True
    )
    busy_retry_after = Integer(5, help="Retry-After seconds of a 503 busy answer.").tag(config=True)
    health_min_free_mb = Float(100.0, help="Health says the blob store is low below this many free MiB.").tag(config=True)

    def run_policy(self) -> Policy:
        return Policy(
            timeout_production=self.run_timeout, timeout_sandbox=self.sandbox_run_timeout, grace=self.run_grace_period,
            artifact_retention=timedelta(days=self.artifact_retention_days),
            session_file_idle=timedelta(hours=self.session_file_idle_hours),
        )

    def initialize(self, argv=None):
        super().initialize(argv)
        if self.config_file and os.path.exists(self.config_file):
            self.load_config_file(self.config_file)
        if self.json_logs:
            ops_logging.install(self.log)
        if not self.db_url:
            raise SystemExit("skriptoteket: no database configured (set SKRIPTOTEKET_DB_URL)")

    def cookie_secret(self) -> bytes:
        if self.cookie_secret_file and os.path.exists(self.cookie_secret_file):
            return Path(self.cookie_secret_file).read_bytes().strip()
        return os.urandom(32)

    def make_app(self) -> web.Application:
        self.engine = create_engine(
            self.db_url, pool_size=self.db_pool_size, max_overflow=self.db_max_overflow, timeout=self.db_timeout
        )
        # The singleton: the OAuth callback handler looks it up with HubOAuth.instance().
        hub_auth = service_oauth_class().instance(parent=self, cache_max_age=60)
        hub_auth.db_probe = self.db_probe  # a refused token while the database is down: 503, not 401
        prefix = self.base_url
        handlers = [(url_path_join(prefix, pattern), handler) for pattern, handler in default_handlers]
        handlers.append((url_path_join(prefix, "metrics"), metrics.handler_class()))
        handlers.append((url_path_join(prefix, "static/(.*)"), web.StaticFileHandler, {"path": str(HERE / "static")}))
        jinja_env = Environment(
            loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"])
        )
        return web.Application(
            handlers,
            default_handler_class=fallback_handler,
            hub_auth=hub_auth,
            engine=self.engine,
            blobs=DirectoryBlobStore(self.blob_dir),
            run_policy=self.run_policy(),
            skriptoteket=self,
            log_function=ops_logging.log_request,
            admission=metrics.Admission(
                self.engine, max_in_flight=self.max_in_flight, max_running_runs=self.max_running_runs,
                retry_after=self.busy_retry_after, pool_capacity=self.db_pool_size + self.db_max_overflow,
            ),
            metrics_feed=metrics.DatabaseFeed(self.engine, self.blob_dir),
            catalog_cache=CatalogCache(self.db_url, max_age=self.catalog_cache_max_age),
            jinja2_env=jinja_env,
            cookie_secret=self.cookie_secret(),
            # No tornado-level xsrf check: HubOAuth checks xsrf itself when a request is authenticated by
            # its cookie (token-authenticated API calls need none), as JupyterHub's own services do.
            static_path=str(HERE / "static"),
            static_url_prefix=url_path_join(prefix, "static/"),
            login_url=hub_auth.login_url,
        )

    async def db_probe(self) -> None:
        """Raises (answered as 503 ``db_unavailable``) when the database cannot be reached."""
        async with self.engine.connect() as conn:
            await conn.execute(sa_text("SELECT 1"))

    def start(self) -> None:
        asyncio.run(self.serve())

    async def serve(self) -> None:
        app = self.make_app()
        url = urlparse(self.bind_url)
        server = HTTPServer(app, xheaders=True, max_body_size=64 * 1024 * 1024)
        server.listen(url.port or 80, url.hostname or "127.0.0.1")
        self.log.info("Skriptoteket %s listening on %s%s", __version__, self.bind_url, self.base_url)
        sweeper = start_sweeper(app, self.sweep_interval, self.log)
        catalog_cache = app.settings["catalog_cache"]
        if self.catalog_cache_max_age > 0:
            catalog_cache.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        if sweeper:
            sweeper.stop()
        await catalog_cache.stop()
        server.stop()
        await self.engine.dispose()


main = SkriptoteketService.launch_instance
