"""Hostile code in a teacher's container is contained, and nobody else notices.

Tool code runs as the container's user (uid 1000). Here it is run with ``docker exec -u 1000:1000`` (and, for the
token, through the real runner's warm kernel pool inside the container). While each hostile action runs, the
hub's and the service's health stay OK and a second user's server keeps answering.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import threading
import time
from contextlib import contextmanager

import pytest

pytestmark = pytest.mark.timeout(600)


@contextmanager
def bystanders_keep_working(platform, bystander: str, interval: float = 0.5):
    """Poll the hub, the service and the bystander's server while the block runs; fail on any miss."""
    failures: list[str] = []
    checks = 0
    stop = threading.Event()

    def watch():
        nonlocal checks
        while not stop.is_set():
            if not platform.healthy():
                failures.append(f"hub or service unhealthy at {time.strftime('%X')}")
            if not platform.server_answers(bystander):
                failures.append(f"{bystander}'s server did not answer at {time.strftime('%X')}")
            checks += 1
            stop.wait(interval)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield failures
    finally:
        stop.set()
        thread.join(30)
    assert checks >= 1
    assert not failures, failures


def py(body: str) -> str:
    return textwrap.dedent(body).strip() + "\n"


def gateway(platform) -> str:
    out = subprocess.run(["docker", "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}",
                          platform.network], capture_output=True, text=True, check=True).stdout
    return out.strip()


def test_no_route_out_and_no_dns(docker_platform, two_teachers):
    alice, bob = two_teachers
    with bystanders_keep_working(docker_platform, bob):
        result = docker_platform.exec_python(alice, py("""
            import socket, time, json
            out = {}
            for name, target in [("ip", ("1.1.1.1", 443)), ("ip80", ("151.101.0.223", 80))]:
                t = time.monotonic()
                try:
                    socket.create_connection(target, timeout=5).close(); out[name] = "connected"
                except OSError as e:
                    out[name] = f"{type(e).__name__}: {e}"
                out[name + "_s"] = round(time.monotonic() - t, 3)
            t = time.monotonic()
            try:
                socket.getaddrinfo("pypi.org", 443); out["dns"] = "resolved"
            except OSError as e:
                out["dns"] = f"{type(e).__name__}: {e}"
            out["dns_s"] = round(time.monotonic() - t, 3)
            t = time.monotonic()
            try:
                import urllib.request
                urllib.request.urlopen("https://pypi.org/simple/", timeout=5); out["pypi"] = "fetched"
            except Exception as e:
                out["pypi"] = f"{type(e).__name__}: {e}"
            out["pypi_s"] = round(time.monotonic() - t, 3)
            print(json.dumps(out))
        """))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["ip"] != "connected" and out["ip80"] != "connected" and out["pypi"] != "fetched", out
    assert out["dns"] != "resolved", out
    # failing fast: no route (ENETUNREACH), no resolver, rather than hanging until a timeout
    assert out["ip_s"] < 1 and out["ip80_s"] < 1 and out["dns_s"] < 2 and out["pypi_s"] < 3, out


def test_cannot_reach_other_containers_or_the_database(docker_platform, two_teachers):
    alice, bob = two_teachers
    bob_ip = docker_platform.inspect(bob)["NetworkSettings"]["Networks"][docker_platform.network]["IPAddress"]
    gw = gateway(docker_platform)
    pg_port = int(docker_platform.env["SKRIPTOTEKET_PG_PORT"])
    proxy_api_port = int(docker_platform.env["SKRIPTOTEKET_PROXY_API_URL"].rsplit(":", 1)[1])
    hub_port = int(docker_platform.env["SKRIPTOTEKET_HUB_PORT"])
    service_port = int(docker_platform.env["SKRIPTOTEKET_SERVICE_PORT"])
    targets = {
        "bob": (bob_ip, 8888), "db_gw": (gw, pg_port), "db_lo": ("127.0.0.1", pg_port),
        "proxy_api": (gw, proxy_api_port), "hub": (gw, hub_port), "service": (gw, service_port),
    }
    with bystanders_keep_working(docker_platform, bob):
        result = docker_platform.exec_python(alice, py(f"""
            import json, socket
            out = {{}}
            for name, target in {targets!r}.items():
                try:
                    socket.create_connection(tuple(target), timeout=3).close(); out[name] = "connected"
                except OSError as e:
                    out[name] = type(e).__name__
            import urllib.request
            out["service_health"] = urllib.request.urlopen(
                "http://{gw}:{service_port}/services/skriptoteket/api/v1/health", timeout=5).status
            print(json.dumps(out))
        """))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["bob"] != "connected", out
    assert out["db_gw"] != "connected" and out["db_lo"] != "connected", out
    assert out["proxy_api"] != "connected", out
    # what the container must reach: the hub's API and the service
    assert out["hub"] == "connected" and out["service"] == "connected", out
    assert out["service_health"] == 200


def test_read_only_root(docker_platform, two_teachers):
    alice, _ = two_teachers
    result = docker_platform.exec_python(alice, py("""
        import json, os
        out = {}
        for path in ["/opt/skriptoteket/lib/python3.11/site-packages/evil.py", "/etc/evil", "/srv/skriptoteket/x",
                     "/usr/local/bin/evil", "/var/tmp/evil", "/evil"]:
            try:
                with open(path, "w") as f: f.write("x")
                out[path] = "written"
            except OSError as e:
                out[path] = e.strerror
        for path in ["/tmp/ok", os.path.expanduser("~/ok")]:
            with open(path, "w") as f: f.write("x")
            out[path] = "written"
        print(json.dumps(out))
    """))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out.pop("/tmp/ok") == "written" and out.pop("/home/skriptoteket/ok") == "written"
    assert all(v != "written" for v in out.values()), out


def test_memory_beyond_the_limit_is_contained(docker_platform, two_teachers):
    alice, bob = two_teachers
    with bystanders_keep_working(docker_platform, bob):
        result = docker_platform.exec_python(alice, py("""
            chunks = []
            for i in range(40):  # 40 x 64 MiB = 2.5 GiB > the 1 GiB limit
                chunks.append(bytearray(64 * 1024 * 1024))
            print("allocated everything")
        """), timeout=120)
    assert "allocated everything" not in result.stdout
    assert result.returncode in (137, -9, 1), (result.returncode, result.stderr[-500:])  # OOM-killed or MemoryError
    # the victim's own server survives its tool: the kernel OOM-killer takes the biggest process
    state = docker_platform.inspect(alice)["State"]
    assert state["Running"], state
    assert docker_platform.server_answers(alice)


def test_fork_bomb_is_contained_by_the_pids_limit(docker_platform, two_teachers):
    alice, bob = two_teachers
    with bystanders_keep_working(docker_platform, bob):
        result = docker_platform.exec_python(alice, py("""
            import os, signal, time
            pids, error = [], None
            t = time.monotonic()
            while time.monotonic() - t < 20:
                try:
                    pid = os.fork()
                except OSError as e:
                    error = type(e).__name__; break
                if pid == 0:
                    time.sleep(30); os._exit(0)
                pids.append(pid)
            print(len(pids), error, flush=True)
            time.sleep(3)  # hold the processes while the bystanders are checked
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            for pid in pids:
                os.waitpid(pid, 0)
        """), timeout=120)
    first = result.stdout.split()
    assert len(first) >= 2, (result.stdout, result.stderr)
    assert first[1] == "BlockingIOError" and int(first[0]) < 256, result.stdout
    time.sleep(1)
    assert docker_platform.server_answers(alice)


RUNNER_SCRIPT = r'''
import asyncio
from runner_kernel import KernelPool, RunLimits, Runner, RunRequest

TOOL = """
import os, json
TOKEN = __TOKEN__
def run_tool(input_dir, output_dir):
    found = [f"env:{k}" for k, v in os.environ.items() if "TOKEN" in k or v == TOKEN]
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        for what in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{what}", "rb") as f:
                    data = f.read(1 << 20)
            except OSError:
                continue
            if b"JUPYTERHUB_API_TOKEN" in data or TOKEN.encode() in data:
                found.append(f"{what}:{pid}")
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if b"singleuser" in cmdline:  # the process that holds the token: its memory must not even open
            try:
                with open(f"/proc/{pid}/mem", "rb"):
                    found.append(f"mem:{pid}")
            except OSError:
                pass
        elif pid == "1":  # tini, an ordinary process of the uid: if its memory opens, the token is not in it
            try:
                maps, mem = open("/proc/1/maps"), open("/proc/1/mem", "rb")
            except OSError:  # Landlock's ptrace rule (where the kernel has it)
                continue
            with maps, mem:
                for region in maps:
                    start, end = (int(x, 16) for x in region.split()[0].split("-"))
                    try:
                        mem.seek(start)
                        if TOKEN.encode() in mem.read(end - start):
                            found.append("mem:1")
                    except OSError:
                        continue
    print("FOUND=" + json.dumps(found))
    return ""
"""

async def main():
    async with KernelPool(size=1, limits=RunLimits(timeout=60)) as pool:
        await pool.wait_ready()
        outcome = await Runner(pool).run(RunRequest(source=TOOL.replace("__TOKEN__", repr(TOKEN))))
        print(outcome.status, outcome.stdout, outcome.stderr, outcome.traceback)

asyncio.run(main())
'''


def test_the_servers_token_is_not_readable_by_tool_code(docker_platform, two_teachers):
    alice, _ = two_teachers
    env = docker_platform.inspect(alice)["Config"]["Env"]
    token = next(v.split("=", 1)[1] for v in env if v.startswith("JUPYTERHUB_API_TOKEN="))
    assert token
    # the token's value reaches the probe through its source code only (never an environment variable)
    script = f"TOKEN = {token!r}\n" + RUNNER_SCRIPT
    result = subprocess.run(
        ["docker", "exec", "-i", "-u", "1000:1000", docker_platform.container(alice), "python", "-"],
        input=script, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    line = next((l for l in result.stdout.splitlines() if "FOUND=" in l), None)
    assert line, result.stdout + result.stderr
    found = json.loads(line.split("FOUND=", 1)[1])
    assert found == [], found
    # PID 1 is tini, started without the token (scripts/image/skriptoteket-init)
    pid1 = subprocess.run(["docker", "exec", docker_platform.container(alice), "cat", "/proc/1/comm"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert pid1 == "tini"


RUN_SOURCE = r'''
import asyncio
from runner_kernel import KernelPool, RunLimits, Runner, RunRequest

async def main():
    async with KernelPool(size=1, limits=RunLimits(timeout=60)) as pool:  # the image's settings: Landlock auto
        await pool.wait_ready()
        outcome = await Runner(pool).run(RunRequest(source=SOURCE))
        print(outcome.status, outcome.stdout, outcome.stderr, outcome.traceback)

asyncio.run(main())
'''

CONFINED_TOOL = r'''
import glob, json, os, socket

def run_tool(input_dir, output_dir):
    out = {"files": {}, "tcp": {}, "signal": {}}
    for path in [*PAGE_FILES, *glob.glob("/tmp/skr-runner-*/*"), "/home/skriptoteket/.bash_history"]:
        try:
            with open(path, "rb") as f:
                f.read(1)
            out["files"][path] = "read"
        except OSError as e:
            out["files"][path] = type(e).__name__
    out["runner_dirs"] = (glob.glob("/tmp/skr-runner-*") + glob.glob("/tmp/voila_*")
                          + glob.glob("/home/skriptoteket/.local/*"))
    for name, target in TARGETS.items():
        try:
            socket.create_connection(tuple(target), timeout=3).close()
            out["tcp"][name] = "connected"
        except OSError as e:
            out["tcp"][name] = type(e).__name__
    for pid in SERVER_PIDS:
        try:
            os.kill(pid, 0)
            out["signal"][pid] = "allowed"
        except OSError as e:
            out["signal"][pid] = type(e).__name__
    # what a tool needs still works: its own directories, the libraries, fonts
    with open(os.path.join(output_dir, "ok.txt"), "w") as f:
        f.write("ok")
    import pandas, weasyprint
    out["pandas"] = int(pandas.DataFrame({"a": [1, 2]})["a"].sum())
    print("OUT=" + json.dumps(out))
    return ""
'''


def test_tool_kernels_are_landlocked_away_from_the_server(docker_platform, two_teachers):
    """Tool kernels share uid 1000 with the server and its page kernels; Landlock keeps them from the page
    kernels' connection files and ports, the runner host's directory, the hub, and signalling the server."""
    alice, _ = two_teachers
    container = docker_platform.container(alice)
    # the page kernels' connection files and ports, and the server's processes, seen from outside the sandbox
    probe = docker_platform.exec_python(alice, py("""
        import glob, json, os
        files = glob.glob("/tmp/voila_*/kernel-*.json")  # Voila keeps its kernels' connection files there
        files += glob.glob(os.path.expanduser("~/.local/share/jupyter/runtime/kernel-*.json"))
        ports = [json.load(open(f))["shell_port"] for f in files]
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()
                and b"runner_kernel.singleuser" in open(f"/proc/{p}/cmdline", "rb").read()]
        print(json.dumps({"files": files, "ports": ports, "pids": pids}))
    """))
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    assert seen["files"] and seen["ports"] and seen["pids"], seen  # a page kernel is running (Voila's pool)
    hub_port = int(docker_platform.env["SKRIPTOTEKET_HUB_PORT"])
    targets = {f"page_kernel_{p}": ("127.0.0.1", p) for p in seen["ports"]}
    targets["hub"] = (gateway(docker_platform), hub_port)
    tool = (f"PAGE_FILES = {seen['files']!r}\nTARGETS = {targets!r}\nSERVER_PIDS = {seen['pids']!r}\n"
            + CONFINED_TOOL)
    script = f"SOURCE = {tool!r}\n" + RUN_SOURCE
    result = subprocess.run(["docker", "exec", "-i", "-u", "1000:1000", container, "python", "-"],
                            input=script, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next((l for l in result.stdout.splitlines() if "OUT=" in l), None)
    assert line, result.stdout + result.stderr
    out = json.loads(line.split("OUT=", 1)[1])
    assert out["pandas"] == 3
    assert set(out["files"].values()) <= {"PermissionError", "FileNotFoundError"}, out["files"]
    assert all(out["files"][f] == "PermissionError" for f in seen["files"]), out["files"]
    assert out["runner_dirs"] == [], out  # not even listable
    assert set(out["tcp"].values()) == {"PermissionError"}, out["tcp"]
    assert set(out["signal"].values()) == {"PermissionError"}, out["signal"]
