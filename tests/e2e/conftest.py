"""The real platform for end-to-end tests: ``skriptoteket up`` (embedded Postgres, jupyterhub,
configurable-http-proxy, the service) in a private home directory, on free ports."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from skriptoteket_ext.pgserver import EmbeddedPostgres, free_port

from ..conftest import private_tmpdir

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "admin-password-1"


@dataclass
class RunningPlatform:
    home: Path
    url: str
    env: dict
    proc: subprocess.Popen
    log_path: Path
    postgres: EmbeddedPostgres
    passwords: dict = field(default_factory=lambda: {"admin": ADMIN_PASSWORD})

    @property
    def service_url(self) -> str:
        return f"{self.url}/services/skriptoteket"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def create_user(self, name: str, *groups: str, password: str | None = None) -> str:
        password = password or f"{name}-password-1"
        args = [sys.executable, "-m", "skriptoteket_ext.cli", "create-user", name, "--password", password]
        for group in groups:
            args += ["--group", group]
        subprocess.run(args, env=self.env, check=True, capture_output=True, timeout=60)
        self.passwords[name] = password
        return password

    def login(self, name: str, password: str | None = None) -> httpx.Client:
        """A browser-like client logged in through the hub's login form."""
        client = httpx.Client(base_url=self.url, follow_redirects=True, timeout=30)
        client.get("/hub/login")
        response = client.post(
            "/hub/login",
            data={"username": name, "password": password or self.passwords[name], "_xsrf": client.cookies.get("_xsrf")},
        )
        response.raise_for_status()
        return client

    def token_for(self, name: str) -> str:
        """An API token of the user's own, made through the hub's REST API with their session."""
        client = self.login(name)
        client.get("/hub/token")
        response = client.post(
            f"/hub/api/users/{name}/tokens", json={"note": "test"},
            headers={"X-XSRFToken": client.cookies.get("_xsrf", path="/hub/")},
        )
        response.raise_for_status()
        return response.json()["token"]


def start_platform(home: Path, extra_env: dict | None = None, *, cls: type = RunningPlatform,
                   timeout: float = 120) -> RunningPlatform:
    port = free_port()
    env = dict(os.environ)
    env.update(
        SKRIPTOTEKET_HOME=str(home),
        SKRIPTOTEKET_BIND_URL=f"http://127.0.0.1:{port}",
        SKRIPTOTEKET_PG_PORT=str(free_port()),
        SKRIPTOTEKET_HUB_PORT=str(free_port()),
        SKRIPTOTEKET_PROXY_API_URL=f"http://127.0.0.1:{free_port()}",
        SKRIPTOTEKET_SERVICE_PORT=str(free_port()),
        SKRIPTOTEKET_ADMIN_PASSWORD=ADMIN_PASSWORD,
        SKRIPTOTEKET_SPAWNER="demo",
        SKRIPTOTEKET_SEED="none",  # tests publish exactly the tools they need
    )
    for name in ("SKRIPTOTEKET_HUB_DB_URL", "SKRIPTOTEKET_DB_URL"):
        env.pop(name, None)
    env.update(extra_env or {})
    log_path = home / "up.log"
    home.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "skriptoteket_ext.cli", "up"], env=env, stdout=log, stderr=subprocess.STDOUT,
        cwd=str(ROOT), start_new_session=True,
    )
    platform = cls(
        home=home, url=env["SKRIPTOTEKET_BIND_URL"], env=env, proc=proc, log_path=log_path,
        postgres=EmbeddedPostgres(home / "postgres", port=int(env["SKRIPTOTEKET_PG_PORT"])),
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"skriptoteket up exited with {proc.returncode}:\n{platform.log()[-4000:]}")
        if "Skriptoteket is running at" in platform.log():
            return platform
        time.sleep(0.3)
    stop_platform(platform)
    raise RuntimeError(f"the platform did not come up in time:\n{platform.log()[-4000:]}")


def stop_platform(platform: RunningPlatform) -> int:
    """Ctrl-C, as a person would press it; the whole process group is killed if it hangs."""
    if platform.proc.poll() is None:
        platform.proc.send_signal(signal.SIGINT)
        try:
            platform.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(platform.proc.pid, signal.SIGKILL)
            platform.proc.wait()
    return platform.proc.returncode


@pytest.fixture(scope="session")
def platform() -> RunningPlatform:
    path = Path(private_tmpdir("skr-platform-"))
    running = start_platform(path / "home")
    _running.append(running)
    yield running
    _running.remove(running)
    stop_platform(running)
    running.postgres.stop(mode="immediate")
    shutil.rmtree(path, ignore_errors=True)


def find_correlation_id(text: str) -> bool:
    return bool(re.search(r"[0-9a-f]{32}", text))


_running: list[RunningPlatform] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of the platform's log (hub, proxy, service, user servers) to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _running:
        report.sections.append(("platform log (tail)", _running[-1].log()[-6000:]))


def wait_for(predicate, timeout: float, interval: float = 0.5, message: str = "condition", describe=None):
    """``describe()`` (optional) says what the platform looked like when the wait timed out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}" + (f"\n{describe()}" if describe else ""))
