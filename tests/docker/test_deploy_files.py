"""The deployment files parse and carry what Docker mode and the Kubernetes path need (no engine needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


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
