"""Spare teacher containers (skriptoteket_ext/docker_spares.py, runner_kernel/standby.py): the hub keeps one ready,
a teacher's server starts from it, and a broken one falls back to a new container.

A hub of its own (the session's Docker hub runs without spares), started with a stale spare of an "earlier hub"
in the engine, which it must remove.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import time
from pathlib import Path

import pytest

from tests.browser.conftest import browser, login  # noqa: F401 - module-scoped Chromium
from tests.docker.conftest import IMAGE, _docker, start_docker_platform, stop_docker_platform
from tests.e2e.conftest import private_tmpdir, stop_platform
from tests.e2e.publishing import publish_tool

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

LABEL = "org.skriptoteket.spare"
PORT = 8889
APP_READY = ".skr-app .skr-title, .skr-app .skr-message"

HOSTNAME_TOOL = r'''
import socket

def run_tool(input_dir, output_dir):
    return {"outputs": [{"kind": "notice", "level": "info", "message": "ran on " + socket.gethostname()}]}
'''


@pytest.fixture(scope="module")
def spare_platform(docker_platform):  # the session's hub first: its network and image checks run once
    tag = secrets.token_hex(3)
    network, prefix = f"skr-spare-{tag}", f"skrspare{tag}"
    # what an earlier hub left: a spare whose secret nobody knows any more
    _docker("run", "-d", "--name", f"{prefix}--spare-stale000", "--label", f"{LABEL}={prefix}", "--network", "none",
            IMAGE, "python", "-c", "import time; time.sleep(900)")
    # a tag of its own, which a test moves to a new image (an update) without touching the suite's
    image = f"skr-spare-test:{tag}"
    _docker("tag", IMAGE, image)
    path = Path(private_tmpdir("skr-spares-"))
    running = start_docker_platform(path / "home", network, prefix, {"SKRIPTOTEKET_SPARE_CONTAINERS": "1",
                                                                     "SKRIPTOTEKET_IMAGE": image})
    running.image = image
    try:
        yield running
    finally:
        stop_docker_platform(running)
        _docker("rmi", image, check=False)
        shutil.rmtree(path, ignore_errors=True)


def spares(platform) -> list[str]:
    return _docker("ps", "-aq", "--no-trunc", "--filter", f"name=^{platform.prefix}--spare-",
                   check=False).stdout.split()


def ready_spare(platform, timeout: float = 180, other_than: str = "") -> str:
    """The id of a spare the hub counts as ready (its standby waits for a claim)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = platform.log()
        for cid in spares(platform):
            if cid != other_than and f"spare teacher container {cid[:12]} ready" in log:
                return cid
        time.sleep(0.3)
    raise AssertionError(f"no ready spare in {timeout} s; containers {spares(platform)}\n{platform.log()[-3000:]}")


def inspect(cid: str) -> dict:
    return json.loads(_docker("inspect", cid).stdout)[0]


def inspect_image(name: str) -> str:
    return _docker("image", "inspect", "-f", "{{.Id}}", name).stdout.strip()


def ip_of(info: dict, network: str) -> str:
    return info["NetworkSettings"]["Networks"][network]["IPAddress"]


def send_claim(ip: str, message: dict) -> dict:
    with socket.create_connection((ip, PORT), timeout=10) as s:
        s.sendall(json.dumps(message).encode() + b"\n")
        return json.loads(s.makefile().readline())


NOT_READABLE = r"""
import pathlib
for proc in pathlib.Path("/proc").glob("[0-9]*"):
    try:
        if (proc / "cmdline").read_bytes().split(b"\0")[1:3] == [b"-m", b"runner_kernel.standby"]:
            print("server")
            try:
                (proc / "environ").read_bytes()
                print("readable")
            except OSError as e:
                print(type(e).__name__)
    except OSError:
        pass
"""


def test_the_hub_keeps_a_hardened_spare_and_removes_stale_ones(spare_platform):
    cid = ready_spare(spare_platform)
    assert not any("stale000" in inspect(c)["Name"] for c in spares(spare_platform))
    info = inspect(cid)
    assert info["Config"]["Labels"][LABEL] == spare_platform.prefix
    assert info["Config"]["User"] == "1000:1000"
    assert "runner_kernel.standby" in " ".join(info["Config"]["Cmd"])
    # made like a teacher's container: the same limits and flags (tests/docker/test_spawn.py checks the values)
    host = info["HostConfig"]
    assert host["Memory"] == 1024**3 and host["PidsLimit"] == 256
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert host["ReadonlyRootfs"] is True and set(host["Tmpfs"]) == {"/tmp", "/home/skriptoteket"}
    assert list(info["NetworkSettings"]["Networks"]) == [spare_platform.network]
    # and it belongs to nobody yet: no user, no hub token
    names = {line.split("=", 1)[0] for line in info["Config"]["Env"]}
    assert "JUPYTERHUB_API_TOKEN" not in names and "JUPYTERHUB_USER" not in names
    assert "SKRIPTOTEKET_STANDBY_SECRET" in names


def test_a_claim_without_the_secret_is_refused(spare_platform):
    cid = ready_spare(spare_platform)
    ip = ip_of(inspect(cid), spare_platform.network)
    cmd = ["python", "-m", "runner_kernel.singleuser"]
    assert send_claim(ip, {"secret": "guess", "env": {"JUPYTERHUB_USER": "mallory"}, "cmd": cmd}) == {
        "ok": False, "error": "forbidden"}
    # still a spare, still waiting
    assert cid in spares(spare_platform) and "claimed" not in _docker("logs", cid).stderr


def test_a_teachers_server_starts_from_the_spare_and_runs_a_tool(spare_platform, browser):  # noqa: F811
    cid = ready_spare(spare_platform)
    publish_tool(spare_platform, "spare-host", "Where", source=HOSTNAME_TOOL)
    teacher = "erin"
    spare_platform.create_user(teacher)
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    try:
        page = login(context, spare_platform.url, teacher, spare_platform.passwords[teacher])
        page.goto(f"{spare_platform.url}/hub/user-redirect/?tool=spare-host")
        try:
            page.wait_for_selector(APP_READY, timeout=180_000)
        except Exception:
            raise AssertionError(f"no tool page at {page.url}:\n{page.inner_text('body')[:2000]}\n"
                                 f"{spare_platform.log()[-3000:]}")
        # the teacher's container is the spare, renamed
        info = spare_platform.inspect(teacher)
        assert info["Id"] == cid
        assert info["Name"] == f"/{spare_platform.prefix}-{teacher}"
        page.click("button.skr-run-button")
        page.wait_for_selector(".skr-app.skr-done-1", state="attached", timeout=120_000)
        notice = page.inner_text(".skr-result .skr-output-notice")
        assert notice.strip().endswith("ran on " + info["Config"]["Hostname"]), notice
    finally:
        context.close()
    # the hub token never was in the container's configuration; the claim port closed with the claim
    assert not any(line.startswith("JUPYTERHUB_API_TOKEN=") for line in info["Config"]["Env"])
    with pytest.raises(OSError):
        socket.create_connection((ip_of(info, spare_platform.network), PORT), timeout=5).close()
    assert f"Server of {teacher} started from spare container {cid[:12]}" in spare_platform.log()
    # the server holds the hub token now: non-dumpable, like a server started with it (tool code's uid cannot read
    # its /proc files)
    probe = spare_platform.exec_python(teacher, NOT_READABLE)
    assert probe.returncode == 0 and probe.stdout.split() == ["server", "PermissionError"], probe.stdout + probe.stderr
    # and another spare takes its place
    assert ready_spare(spare_platform, other_than=cid) != cid


def test_a_broken_spare_falls_back_to_a_new_container(spare_platform):
    cid = ready_spare(spare_platform)
    _docker("kill", cid)  # gone (auto-removed), while the hub still counts it as ready
    teacher = "frank"
    spare_platform.create_user(teacher)
    spare_platform.start_server(teacher, timeout=180)
    assert spare_platform.container_id(teacher) != cid
    assert spare_platform.server_answers(teacher)
    assert f"Spare container {cid[:12]} removed" in spare_platform.log()
    assert ready_spare(spare_platform) != cid  # the pool made another


def test_a_spare_from_the_image_before_an_update_is_not_used(spare_platform):
    old = ready_spare(spare_platform)
    # an update: the tag now names another image (the same content with one more label)
    _docker("build", "-q", "-t", spare_platform.image, "--label", f"org.skriptoteket.test={secrets.token_hex(3)}", "-",
            input=f"FROM {IMAGE}\n", timeout=120)
    updated = inspect_image(spare_platform.image)
    assert inspect(old)["Image"] != updated
    teacher = "gina"
    spare_platform.create_user(teacher)
    spare_platform.start_server(teacher, timeout=180)
    assert spare_platform.container_id(teacher) != old
    assert spare_platform.inspect(teacher)["Image"] == updated
    assert f"Spare container {old[:12]} removed (the image was updated)" in spare_platform.log()
    assert inspect(ready_spare(spare_platform, other_than=old))["Image"] == updated  # and the next is new


# last: it stops this module's hub
def test_the_hub_removes_its_spares_when_it_stops(spare_platform):
    assert ready_spare(spare_platform)
    stop_platform(spare_platform)
    deadline = time.monotonic() + 30
    while spares(spare_platform) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert spares(spare_platform) == []
