"""runner_kernel.standby, the real process outside Docker: it prepares (imports, the runner's fork server), takes
exactly one valid claim over TCP and becomes that user's server, adopting the fork server it started."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from runner_kernel.standby import proof
from skriptoteket_ext.pgserver import free_port

from ..conftest import memory_contains, private_tmpdir
from .conftest import wait_for

pytestmark = [pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cret-" + secrets.token_hex(8)
TOKEN = "tok-" + secrets.token_hex(16)  # the server's hub token: never in what its kernels can read
OPTIONS = ["--notebook=notebooks/tool_app.ipynb", "--template=skriptoteket", "--pool-size=1"]
SERVER = ["python", "-m", "runner_kernel.singleuser", *OPTIONS]


def send_claim(port: int, message: dict) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(json.dumps(message).encode() + b"\n")
        return json.loads(sock.makefile("rb").readline())


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def zygotes(pid: int) -> list[psutil.Process]:
    """The fork servers among ``pid``'s children (their own children, forked kernels, read the same)."""
    found = []
    for child in psutil.Process(pid).children():
        try:
            if any(arg.endswith("_zygote.py") for arg in child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


@pytest.fixture
def standby():
    port, server_port = free_port(), free_port()
    workdir = Path(private_tmpdir("skr-standby-"))
    log_path = workdir / "standby.log"
    env = {**os.environ, "SKRIPTOTEKET_STANDBY_SECRET": SECRET, "SKRIPTOTEKET_STANDBY_PORT": str(port)}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "runner_kernel.standby", *OPTIONS], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: accepts(port) or (proc.poll() is not None and pytest.fail(
            "the standby exited:\n" + log_path.read_text()[-4000:])), 60, interval=0.2, message="the standby")
        yield {"proc": proc, "port": port, "server_port": server_port, "log": log_path}
    finally:
        descendants = []
        try:
            descendants = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        for child in descendants:  # kernels run in sessions of their own
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        if os.environ.get("SKT_SHOW_HUB_LOG"):
            print(log_path.read_text())
        shutil.rmtree(workdir, ignore_errors=True)


def user_env(server_port: int) -> dict:
    return {
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{server_port}/user/x/",
        "JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api",
        "JUPYTERHUB_SERVICE_PREFIX": "/user/x/",
        "JUPYTERHUB_API_TOKEN": TOKEN,
        "JUPYTERHUB_USER": "x",
        "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-x",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": "/user/x/oauth_callback",
    }


def test_the_standby_takes_one_valid_claim_and_becomes_the_users_server(standby):
    proc, port = standby["proc"], standby["port"]
    env = user_env(standby["server_port"])
    before = zygotes(proc.pid)
    assert len(before) == 1, "the standby starts the runner's fork server before it is claimed"

    # the hub's first question: a nonce, answered with its HMAC under the secret
    assert send_claim(port, {"nonce": "n0nce"}) == {"proof": proof(SECRET, "n0nce")}
    assert send_claim(port, {"secret": "x", "env": env, "cmd": SERVER}) == {"ok": False, "error": "forbidden"}
    refused = send_claim(port, {"secret": SECRET, "env": env, "cmd": ["jupyterhub-singleuser"]})
    assert refused["ok"] is False and refused["error"]
    assert send_claim(port, {"secret": SECRET, "env": env, "cmd": SERVER}) == {"ok": True}

    # one claim only: the port closes
    wait_for(lambda: not accepts(port), 10, interval=0.1, message="the standby port to close")

    ready_url = f"http://127.0.0.1:{standby['server_port']}/user/x/ready"

    def ready():
        try:
            r = httpx.get(ready_url, timeout=5)
        except httpx.TransportError:
            return None
        return r.status_code == 200 and r.json()["status"] == "ok" and r.json()["warm_kernels"] >= 1 and r.json()

    describe = lambda: standby["log"].read_text()[-4000:]  # noqa: E731
    wait_for(lambda: proc.poll() is None and ready(), 60, interval=0.2, message="a warm page kernel",
             describe=describe)

    # the prestarted fork server was adopted, not a second one started
    after = zygotes(proc.pid)
    assert [p.pid for p in after] == [p.pid for p in before], describe()

    # the warm page kernel is a child of that fork server; the server's hub token is not in its memory
    kernels = after[0].children()
    assert kernels, "the warm page kernel is forked from the fork server"
    assert memory_contains(proc.pid, TOKEN.encode()), "the check can see the token where it is"
    for kernel in kernels:
        # /proc/<pid>/environ is the fork server's start-up environment; the kernel's own is in its memory
        assert TOKEN.encode() not in Path(f"/proc/{kernel.pid}/environ").read_bytes()
        assert not memory_contains(kernel.pid, TOKEN.encode())
