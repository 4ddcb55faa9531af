"""Docker end-to-end fixtures: a real Docker engine, the locally built user image, and the real platform
(``skriptoteket up`` with ``SKRIPTOTEKET_SPAWNER=docker``) on a private internal network.

Skipped, with the reason, when no engine is reachable or the image has not been built
(``./scripts/build-image.sh``)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest


from ..conftest import private_tmpdir
from ..e2e.conftest import RunningPlatform, start_platform, stop_platform

IMAGE = os.environ.get("SKRIPTOTEKET_IMAGE", "skriptoteket-user:latest")


def _docker(*args: str, timeout: float = 60, check: bool = True, input: str | None = None):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check,
                          input=input)


def engine_problem() -> str | None:
    """Why the Docker suite cannot run here, or None."""
    if shutil.which("docker") is None:
        return "docker CLI not installed (apt-get install docker.io)"
    try:
        info = _docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return "the Docker engine does not answer"
    if info.returncode != 0:
        return f"no Docker engine reachable ({info.stderr.strip().splitlines()[-1] if info.stderr.strip() else 'docker info failed'})"
    if _docker("image", "inspect", IMAGE, check=False).returncode != 0:
        return f"the user image {IMAGE} is not built (./scripts/build-image.sh)"
    return None


def pytest_collection_modifyitems(config, items):
    """Tests that use the engine (the ``docker_platform`` fixture) are marked ``docker`` and skipped, with the
    reason, when it is not there; the file checks (compose, Kubernetes values) always run."""
    here = Path(__file__).parent
    mine = [item for item in items if Path(str(item.fspath)).is_relative_to(here)
            and "docker_platform" in getattr(item, "fixturenames", ())]
    for item in mine:
        item.add_marker(pytest.mark.docker)
    if mine:
        problem = engine_problem()
        if problem:
            for item in mine:
                item.add_marker(pytest.mark.skip(reason=f"Docker suite skipped: {problem}"))


class DockerPlatform(RunningPlatform):
    network: str = ""
    prefix: str = ""
    admin_token: str = ""

    # ---- the hub's REST API, as the admin -------------------------------------------------------------------
    def api(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/hub/api", timeout=60,
                            headers={"Authorization": f"token {self.admin_token}"})

    def start_server(self, user: str, name: str = "", timeout: float = 120) -> dict:
        """Start a user's server through the hub's API and wait until the hub calls it ready."""
        with self.api() as api:
            path = f"/users/{user}/servers/{name}" if name else f"/users/{user}/server"
            response = api.post(path)
            if response.status_code not in (201, 202, 400):  # 400: already running
                raise AssertionError(f"spawn {user}/{name}: {response.status_code} {response.text}")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                model = api.get(f"/users/{user}").json()
                server = model.get("servers", {}).get(name)
                if server and server.get("ready"):
                    return server
                if not model.get("servers", {}).get(name) and response.status_code != 400:
                    # spawn failed: the hub dropped the server
                    pending = model.get("pending")
                    if not pending:
                        raise AssertionError(f"the spawn of {user}/{name} failed:\n{self.log()[-3000:]}")
                time.sleep(0.2)
        raise AssertionError(f"{user}/{name} not ready in {timeout} s:\n{self.log()[-3000:]}")

    def stop_server(self, user: str, name: str = "") -> None:
        with self.api() as api:
            path = f"/users/{user}/servers/{name}" if name else f"/users/{user}/server"
            api.delete(path)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if name not in api.get(f"/users/{user}").json().get("servers", {}):
                    return
                time.sleep(0.2)

    def container(self, user: str, name: str = "") -> str:
        return f"{self.prefix}-{user}" + (f"--{name}" if name else "")

    def container_id(self, user: str, name: str = "") -> str:
        return _docker("inspect", "-f", "{{.Id}}", self.container(user, name)).stdout.strip()

    def inspect(self, user: str, name: str = "") -> dict:
        return json.loads(_docker("inspect", self.container(user, name)).stdout)[0]

    def exec_python(self, user: str, code: str, timeout: float = 60, name: str = "") -> subprocess.CompletedProcess:
        """Run Python in the user's container as the container's own user (uid 1000), like tool code."""
        return subprocess.run(
            ["docker", "exec", "-i", "-u", "1000:1000", self.container(user, name), "python", "-"],
            input=code, capture_output=True, text=True, timeout=timeout,
        )

    def healthy(self) -> bool:
        try:
            hub = httpx.get(f"{self.url}/hub/health", timeout=10)
            service = httpx.get(f"{self.service_url}/api/v1/health", timeout=10)
            return hub.status_code == 200 and service.status_code == 200
        except httpx.HTTPError:
            return False

    def server_answers(self, user: str) -> bool:
        """The user's server answers its readiness probe through the hub's proxy."""
        try:
            return httpx.get(f"{self.url}/user/{user}/ready", timeout=10).status_code == 200
        except httpx.HTTPError:
            return False


def start_docker_platform(home: Path, network: str, prefix: str, extra_env: dict | None = None) -> DockerPlatform:
    """``skriptoteket up`` in Docker mode: the e2e harness with the Docker settings of this test network."""
    env = {
        "SKRIPTOTEKET_SPAWNER": "docker",
        "SKRIPTOTEKET_IMAGE": IMAGE,
        "SKRIPTOTEKET_DOCKER_NETWORK": network,
        "SKRIPTOTEKET_DOCKER_PREFIX": prefix,
        **(extra_env or {}),
    }
    platform = start_platform(home, env, cls=DockerPlatform, timeout=150)
    platform.network, platform.prefix = network, prefix
    platform.admin_token = platform.token_for("admin")
    return platform


def remove_firewall_rules(network: str) -> None:
    """The hub's iptables rules for a test network (tagged skriptoteket:<network>) go with the network."""
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        return
    import shlex

    for chain in ("DOCKER-USER", "INPUT"):
        listing = subprocess.run(["iptables", "-S", chain], capture_output=True, text=True).stdout
        for line in listing.splitlines():
            if f"skriptoteket:{network}" in line and line.startswith("-A "):
                subprocess.run(["iptables", "-D", *shlex.split(line)[1:]], capture_output=True)


def remove_containers(prefix: str) -> None:
    names = _docker("ps", "-aq", "--filter", f"name=^{prefix}-", check=False).stdout.split()
    if names:
        _docker("rm", "-f", *names, check=False, timeout=120)


def stop_docker_platform(platform: DockerPlatform) -> None:
    """Ctrl-C to the hub, then what it leaves in the engine and the host: containers, network, firewall rules."""
    stop_platform(platform)
    remove_containers(platform.prefix)
    platform.postgres.stop(mode="immediate")
    _docker("network", "rm", platform.network, check=False)
    remove_firewall_rules(platform.network)


@pytest.fixture(scope="session")
def docker_platform() -> DockerPlatform:
    tag = secrets.token_hex(3)
    network, prefix = f"skr-test-{tag}", f"skrtest{tag}"
    path = Path(private_tmpdir("skr-docker-"))
    # every teacher server a new container: the suite inspects a cold start's container (its environment has the
    # token the tests scan for); tests/docker/test_spares.py covers servers started from spare containers
    running = start_docker_platform(path / "home", network, prefix, {"SKRIPTOTEKET_SPARE_CONTAINERS": "0"})
    try:
        yield running
    finally:
        stop_docker_platform(running)
        vols = _docker("volume", "ls", "-q", "--filter", f"name={prefix}-work-", check=False).stdout.split()
        if vols:
            _docker("volume", "rm", "-f", *vols, check=False)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def two_teachers(docker_platform):
    """Two teachers with running servers: the one tests attack from, and a bystander that must keep answering."""
    for name in ("alice", "bob"):
        docker_platform.create_user(name)
    for name in ("alice", "bob"):
        docker_platform.start_server(name)
    return "alice", "bob"

