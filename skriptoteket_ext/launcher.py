"""The embedded default: Postgres from a wheel, migrations, a bootstrap admin, then JupyterHub.

``skriptoteket up`` runs this. Everything lives under one project-local directory (``var/`` by default, or
``$SKRIPTOTEKET_HOME``) that persists across restarts, so a second start reuses the same users and data.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .pgserver import EmbeddedPostgres

ROOT = Path(__file__).resolve().parent.parent
HUB_DB = "jupyterhub"
SERVICE_DB = "skriptoteket"
SECRET_FILES = ("jupyterhub_cookie_secret", "service_cookie_secret", "proxy_auth_token", "cli_token")

DEMO_WARNING = """
    ************************************************************************************
    *  DEMO MODE: user servers run as local processes under one account.              *
    *  Nothing is isolated between users: any tool can read any other user's files.    *
    *  Use the Docker mode (docker-compose.yml) for real classrooms.                    *
    ************************************************************************************
"""


def default_home() -> Path:
    return Path(os.environ.get("SKRIPTOTEKET_HOME") or ROOT / "var").resolve()


@dataclass
class Platform:
    home: Path = field(default_factory=default_home)
    bind_url: str = field(default_factory=lambda: os.environ.get("SKRIPTOTEKET_BIND_URL", "http://127.0.0.1:8000"))
    pg_port: int = field(default_factory=lambda: int(os.environ.get("SKRIPTOTEKET_PG_PORT", "5433")))

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()
        self.postgres = EmbeddedPostgres(self.home / "postgres", port=self.pg_port)

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    def secret(self, name: str) -> str:
        return (self.secrets_dir / name).read_text().strip()

    def ensure_secrets(self) -> None:
        self.secrets_dir.mkdir(parents=True, exist_ok=True)
        self.secrets_dir.chmod(0o700)
        for name in SECRET_FILES:
            path = self.secrets_dir / name
            if not path.exists():
                path.write_text(secrets.token_hex(32))
                path.chmod(0o600)

    # --- databases ----------------------------------------------------------------------------------------

    def hub_db_url(self) -> str:
        return os.environ.get("SKRIPTOTEKET_HUB_DB_URL") or self.postgres.url(HUB_DB)

    def service_db_url(self) -> str:
        return os.environ.get("SKRIPTOTEKET_DB_URL") or self.postgres.url(SERVICE_DB)

    def uses_embedded_postgres(self) -> bool:
        return not (os.environ.get("SKRIPTOTEKET_HUB_DB_URL") and os.environ.get("SKRIPTOTEKET_DB_URL"))

    def start_postgres(self) -> None:
        if self.uses_embedded_postgres():
            self.postgres.start()
            self.postgres.create_database(HUB_DB)
            self.postgres.create_database(SERVICE_DB)

    def migrate(self) -> None:
        from .migrate import upgrade

        upgrade(self.service_db_url())

    # --- the hub -----------------------------------------------------------------------------------------

    def proxy_command(self) -> str:
        return os.environ.get("SKRIPTOTEKET_PROXY_CMD") or str(ROOT / "node_modules" / ".bin" / "configurable-http-proxy")

    def hub_api_url(self) -> str:
        return self.bind_url.rstrip("/") + "/hub/api"

    def hub_env(self, admin: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SKRIPTOTEKET_HOME=str(self.home),
            SKRIPTOTEKET_HUB_DB_URL=self.hub_db_url(),
            SKRIPTOTEKET_DB_URL=self.service_db_url(),
            SKRIPTOTEKET_BIND_URL=self.bind_url,
            SKRIPTOTEKET_ADMIN_USERS=admin,
            SKRIPTOTEKET_PROXY_CMD=self.proxy_command(),
        )
        env.setdefault("SKRIPTOTEKET_SPAWNER", "demo")
        return env

    def hub_command(self) -> list[str]:
        return [sys.executable, "-m", "jupyterhub", "-f", str(ROOT / "hub_config" / "jupyterhub_config.py")]

    def bootstrap_admin(self, name: str) -> str:
        """Create the bootstrap admin once, and say how to log in."""
        from .accounts import account_exists, generate_password, set_credentials

        if account_exists(self.hub_db_url(), name):
            return f"Log in as '{name}' with the password set when the account was created."
        password = os.environ.get("SKRIPTOTEKET_ADMIN_PASSWORD")
        if password:
            set_credentials(self.hub_db_url(), name, password)
            return f"Log in as '{name}' with the password from SKRIPTOTEKET_ADMIN_PASSWORD."
        password = generate_password()
        set_credentials(self.hub_db_url(), name, password)
        return (
            f"Log in as '{name}' with the password: {password}\n"
            "(It is shown only this once; set SKRIPTOTEKET_ADMIN_PASSWORD before the first start to choose one.)"
        )

    def up(self, admin: str) -> int:
        if not Path(self.proxy_command()).exists() and not shutil.which(self.proxy_command()):
            print(f"configurable-http-proxy not found at {self.proxy_command()}; run ./scripts/setup.sh", file=sys.stderr)
            return 2
        self.ensure_secrets()
        self.start_postgres()
        try:
            self.migrate()
            how_to_log_in = self.bootstrap_admin(admin)
            env = self.hub_env(admin)
            if env["SKRIPTOTEKET_SPAWNER"] == "demo":
                print(DEMO_WARNING, flush=True)
            banner = (
                f"\nSkriptoteket is running at {self.bind_url}/\n{how_to_log_in}\n"
                f"Data is kept in {self.home}. Press Ctrl-C to stop.\n"
            )
            return self._run_hub(env, banner)
        finally:
            if self.uses_embedded_postgres():
                self.postgres.stop()
                print("Stopped PostgreSQL.", flush=True)

    def _wait_until_ready(self, hub: subprocess.Popen, timeout: float = 120) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and hub.poll() is None:
            try:
                with urllib.request.urlopen(self.bind_url.rstrip("/") + "/hub/health", timeout=2):
                    return True
            except OSError:
                time.sleep(0.3)
        return False

    def _seed_in_background(self) -> None:
        """Optional: seed the example bank (docs/bank.md), published, once the hub answers.
        ``SKRIPTOTEKET_SEED=dev|prod|none`` (default dev: the demo shows the whole bank; see docs/bank.md)."""
        profile = os.environ.get("SKRIPTOTEKET_SEED", "dev").strip().lower()
        if profile in ("", "none"):
            return
        import threading

        from .seed import seed

        def run() -> None:
            try:
                seed(profile=profile, publish=True, platform=self)
            except Exception as err:  # noqa: BLE001 - the demo runs on without the bank
                print(f"Seeding the example bank failed: {err}", flush=True)

        threading.Thread(target=run, name="skriptoteket-seed", daemon=True).start()

    def _run_hub(self, env: dict[str, str], banner: str) -> int:
        hub = subprocess.Popen(self.hub_command(), env=env, cwd=str(self.home))
        if self._wait_until_ready(hub):
            print(banner, flush=True)
            self._seed_in_background()

        def forward(signum, _frame):
            if hub.poll() is None:
                hub.send_signal(signal.SIGTERM)

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while True:
                try:
                    return hub.wait()
                except KeyboardInterrupt:
                    forward(signal.SIGINT, None)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
