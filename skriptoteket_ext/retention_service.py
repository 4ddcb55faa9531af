"""The retention service: a JupyterHub-managed process that runs the retention jobs on a schedule.

The hub starts it (``python -m skriptoteket_ext.retention_service``, see hub_config/jupyterhub_config.py) and
restarts it if it dies. It has no URL and its hub token has no scopes: it needs only the service's database and
the blob store directory. Settings come from ``skriptoteket_config.py`` (the service's file, in
``$SKRIPTOTEKET_HOME``) as ``c.Retention.*``; the artifact and session-file ages default to the service's own
``c.SkriptoteketService.artifact_retention_days`` / ``session_file_idle_hours``, so one setting drives both.
``skriptoteket retention [--dry-run]`` runs the same jobs once.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import sqlalchemy as sa
from traitlets import Bool, Float, Integer, Unicode, default
from traitlets.config import Application

from . import __version__
from . import logging as ops_logging
from .blobs import DirectoryBlobStore
from .db import async_url
from .retention import RetentionPolicy, run_all


class Retention(Application):
    name = "skriptoteket-retention"
    description = "Runs Skriptoteket's retention jobs on a schedule"
    version = __version__

    config_file = Unicode(help="The traitlets file to load (default: $SKRIPTOTEKET_HOME/skriptoteket_config.py).").tag(
        config=True
    )

    @default("config_file")
    def _config_file_default(self):
        return os.path.join(os.environ.get("SKRIPTOTEKET_HOME") or ".", "skriptoteket_config.py")

    db_url = Unicode(help="The service's database ($SKRIPTOTEKET_DB_URL).").tag(config=True)

    @default("db_url")
    def _db_url_default(self):
        return os.environ.get("SKRIPTOTEKET_DB_URL", "")

    blob_dir = Unicode(help="The blob store directory (default: the service's, $SKRIPTOTEKET_HOME/blobs).").tag(config=True)

    @default("blob_dir")
    def _blob_dir_default(self):
        service = self.config.get("SkriptoteketService", {})
        return service.get("blob_dir") or os.path.join(os.environ.get("SKRIPTOTEKET_HOME") or "var", "blobs")

    interval = Float(900.0, help="Seconds between two passes (0: run once and exit).").tag(config=True)
    dry_run = Bool(False, help="Only log what would be removed.").tag(config=True)
    artifact_days = Float(help="Days an artifact's bytes are kept (default: SkriptoteketService.artifact_retention_days, 7).").tag(
        config=True
    )

    @default("artifact_days")
    def _artifact_days_default(self):
        return float(self.config.get("SkriptoteketService", {}).get("artifact_retention_days", 7.0))

    session_file_idle_hours = Float(help="Hours an unused session file is kept (default: the service's, 24).").tag(
        config=True
    )

    @default("session_file_idle_hours")
    def _session_file_idle_hours_default(self):
        return float(self.config.get("SkriptoteketService", {}).get("session_file_idle_hours", 24.0))

    snapshot_hours = Float(24.0, help="Hours a sandbox snapshot is kept at most.").tag(config=True)
    input_grace_hours = Float(1.0, help="Hours after a run finished before its unadopted input blobs go.").tag(config=True)
    batch = Integer(500, help="Rows per transaction.").tag(config=True)

    def initialize(self, argv=None):
        super().initialize(argv)
        if self.config_file and os.path.exists(self.config_file):
            self.load_config_file(self.config_file)
        ops_logging.install(self.log)

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(artifact_days=self.artifact_days, session_file_idle_hours=self.session_file_idle_hours,
                               snapshot_hours=self.snapshot_hours, input_grace_hours=self.input_grace_hours,
                               batch=self.batch)

    def engine(self):
        return sa.create_engine(async_url(self.db_url), pool_size=1, max_overflow=1, pool_pre_ping=True,
                                connect_args={"connect_timeout": 5, "application_name": "skriptoteket-retention"})

    def run_once(self, engine=None, dry_run: bool | None = None) -> list[dict]:
        own = engine is None
        engine = engine or self.engine()
        try:
            results = run_all(engine, DirectoryBlobStore(self.blob_dir), self.policy(),
                              dry_run=self.dry_run if dry_run is None else dry_run)
        finally:
            if own:
                engine.dispose()
        return [r.summary() for r in results]

    def start(self) -> None:
        if not self.db_url:
            raise SystemExit("skriptoteket-retention: no database configured (set SKRIPTOTEKET_DB_URL)")
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        engine = self.engine()
        self.log.info("Retention every %.0f s: %s", self.interval, json.dumps(self.policy().__dict__))
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    results = self.run_once(engine)
                    done = {r["job"]: r["count"] for r in results if r["count"]}
                    self.log.info("Retention pass in %.0f ms: %s", (time.monotonic() - started) * 1000, done or "nothing due")
                except Exception as exc:  # noqa: BLE001 - a database outage must not end the service
                    self.log.warning("Retention pass failed (next in %.0f s): %s", self.interval, exc)
                if self.interval <= 0:
                    break
                stop.wait(self.interval)
        finally:
            engine.dispose()


main = Retention.launch_instance

if __name__ == "__main__":
    main()
