"""The deployment files parse and carry what Docker mode and the Kubernetes path need (no engine needed)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import IMAGE, engine_problem, remove_firewall_rules

ROOT = Path(__file__).resolve().parents[2]
HUB_IMAGE = os.environ.get("SKRIPTOTEKET_HUB_IMAGE", "skriptoteket-hub:latest")


def test_compose_file_has_the_stack():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "hub", "user-image"} <= set(services)
    hub = services["hub"]
    assert hub["network_mode"] == "host"
    assert "/var/run/docker.sock:/var/run/docker.sock" in hub["volumes"]
    assert hub["environment"]["SKRIPTOTEKET_SPAWNER"] == "docker"
    assert hub["build"]["dockerfile"] == "hub.Dockerfile"
    assert services["user-image"]["build"]["dockerfile"] == "Dockerfile"
    # every image name can be changed for an air-gapped site
    for name in ("postgres", "hub", "user-image"):
        assert services[name]["image"].startswith("${SKRIPTOTEKET_")
    # Postgres only on loopback: user containers cannot reach it
    assert all(p.startswith("127.0.0.1:") for p in services["postgres"]["ports"])


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_compose_config_validates(tmp_path):
    # a copy of the checkout's layout: the build context exists only after scripts/build-image.sh has run
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    (tmp_path / "build" / "image-context").mkdir(parents=True)
    env = tmp_path / ".env"
    env.write_text((ROOT / "deploy" / "env.example").read_text())
    result = subprocess.run(["docker-compose", "--env-file", str(env), "-f", str(tmp_path / "docker-compose.yml"),
                             "config", "-q"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_z2jh_values_have_the_needed_keys():
    values = yaml.safe_load((ROOT / "deploy" / "z2jh-values.yaml").read_text())
    hub = values["hub"]
    assert hub["db"]["type"] == "postgres" and hub["db"]["url"].startswith("postgresql")
    service = hub["services"]["skriptoteket"]
    assert service["command"] == ["python", "-m", "skriptoteket_ext"] and service["url"].endswith(":10101")
    assert "access:services!service=skriptoteket" in hub["loadRoles"]["user"]["scopes"]
    assert hub["config"]["JupyterHub"]["allow_named_servers"] is True
    single = values["singleuser"]
    assert single["cmd"][:3] == ["python", "-m", "runner_kernel.singleuser"]
    assert single["uid"] == 1000
    assert single["extraEnv"]["SKRIPTOTEKET_SERVICE_API_URL"].startswith("http://hub:10101/services/skriptoteket/")
    container = single["extraContainerConfig"]
    assert container["readOnlyRootFilesystem"] is True and container["capabilities"]["drop"] == ["ALL"]
    assert container["allowPrivilegeEscalation"] is False
    assert single["memory"]["limit"] and single["cpu"]["limit"]
    assert single["networkPolicy"]["enabled"] is True
    assert not any(single["networkPolicy"]["egressAllowRules"].values())
    assert values["cull"]["enabled"] is True


# hub_config/docker.py as the compose hub runs it: in the hub image, host network, the Docker socket, NET_ADMIN
_LOAD_DOCKER_CONFIG = """
from traitlets.config import Config
c = Config()
path = '/srv/skriptoteket/hub_config/docker.py'
exec(compile(open(path).read(), path, 'exec'), {'get_config': lambda: c, '__name__': 'docker_config'})
"""


def _hub_image_problem() -> str | None:
    problem = engine_problem()
    if problem:
        return problem
    if subprocess.run(["docker", "image", "inspect", HUB_IMAGE], capture_output=True).returncode != 0:
        return f"the hub image {HUB_IMAGE} is not built (./scripts/build-image.sh --hub)"
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        return "reading the host's iptables rules needs root and iptables"
    return None


def _run_hub_config(network: str, *docker_args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "host", "-v", "/var/run/docker.sock:/var/run/docker.sock",
         *docker_args, "-e", f"SKRIPTOTEKET_DOCKER_NETWORK={network}", "-e", "SKRIPTOTEKET_DOCKER_FIREWALL=on",
         "-e", f"SKRIPTOTEKET_IMAGE={IMAGE}", HUB_IMAGE, "python", "-c", _LOAD_DOCKER_CONFIG],
        capture_output=True, text=True, timeout=120)


@pytest.mark.docker
def test_the_compose_hub_applies_the_firewall_rules():
    """The hub image has iptables, and with compose's NET_ADMIN its rules land in the host's firewall: a connection
    out of the users' network fails at once (ENETUNREACH) instead of hanging. Without NET_ADMIN, ``on`` refuses."""
    problem = _hub_image_problem()
    if problem:
        pytest.skip(problem)
    network = f"skr-fw-{secrets.token_hex(3)}"
    try:
        refused = _run_hub_config(network)  # no NET_ADMIN: iptables cannot list DOCKER-USER
        assert refused.returncode != 0 and "needs root, iptables and NET_ADMIN" in refused.stderr, refused.stderr
        applied = _run_hub_config(network, "--cap-add", "NET_ADMIN")
        assert applied.returncode == 0, applied.stderr[-2000:]
        assert f"firewall rules for {network} applied" in applied.stderr
        tag = f"skriptoteket:{network}"
        rules = [line for chain in ("DOCKER-USER", "INPUT") for line in subprocess.run(
            ["iptables", "-S", chain], capture_output=True, text=True, check=True).stdout.splitlines() if tag in line]
        assert len(rules) == 3, rules
        assert any("icmp-net-unreachable" in r for r in rules) and any("tcp-reset" in r for r in rules)
        probe = subprocess.run(
            ["docker", "run", "--rm", "--network", network, "--entrypoint", "python", IMAGE, "-c",
             "import socket, time\nt = time.monotonic()\ns = socket.socket()\ns.settimeout(10)\n"
             "print(s.connect_ex(('192.0.2.1', 80)), round(time.monotonic() - t, 2))"],
            capture_output=True, text=True, timeout=120)
        errno, seconds = probe.stdout.split()
        assert int(errno) == 101 and float(seconds) < 2, probe.stdout + probe.stderr  # ENETUNREACH, at once
    finally:
        remove_firewall_rules(network)
        subprocess.run(["docker", "network", "rm", network], capture_output=True)
