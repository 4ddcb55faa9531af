"""A user's server is a hardened container from the user image, on the internal network."""

from __future__ import annotations

import json
import subprocess
import time

import httpx


def test_server_spawns_in_a_container(docker_platform, two_teachers):
    alice, _ = two_teachers
    with docker_platform.api() as api:
        model = api.get(f"/users/{alice}").json()
    server = model["servers"][""]
    assert server["ready"]
    info = docker_platform.inspect(alice)
    assert info["State"]["Running"]
    assert info["Config"]["Image"].startswith("skriptoteket-user")
    # the hub's URL for the server is the container's address on the users' network
    ip = info["NetworkSettings"]["Networks"][docker_platform.network]["IPAddress"]
    assert ip and ip in server.get("url", "") or server["url"].startswith(f"/user/{alice}/")
    # the server is the Voila single-user server, running as the image's non-root user
    assert info["Config"]["User"] == "1000:1000"
    assert "runner_kernel.singleuser" in " ".join(info["Config"]["Cmd"])
    # and it answers through the hub's proxy
    ready = httpx.get(f"{docker_platform.url}/user/{alice}/ready", timeout=30)
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ok"


def test_limits_and_flags_are_applied(docker_platform, two_teachers):
    alice, _ = two_teachers
    host = docker_platform.inspect(alice)["HostConfig"]
    assert host["Memory"] == 1024**3
    assert host["NanoCpus"] == 10**9 or (host["CpuQuota"], host["CpuPeriod"]) == (100000, 100000)
    assert host["PidsLimit"] == 256
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["ReadonlyRootfs"] is True
    assert set(host["Tmpfs"]) == {"/tmp", "/home/skriptoteket"}
    assert "uid=1000" in host["Tmpfs"]["/home/skriptoteket"]
    assert not host["Privileged"]
    # the network: internal, no inter-container traffic
    net = json.loads(subprocess.run(["docker", "network", "inspect", docker_platform.network],
                                    capture_output=True, text=True, check=True).stdout)[0]
    assert net["Internal"] is True
    assert net["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert list(docker_platform.inspect(alice)["NetworkSettings"]["Networks"]) == [docker_platform.network]
    # from the inside: the cgroup limits the kernel enforces, the process's capabilities and flags
    probe = docker_platform.exec_python(alice, r"""
import os, pathlib
def read(*paths):
    for p in paths:
        try: return pathlib.Path(p).read_text().strip()
        except OSError: pass
status = dict(l.split(":", 1) for l in pathlib.Path("/proc/self/status").read_text().splitlines() if ":" in l)
print("uid", os.getuid())
print("mem", read("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"))
print("cpu", read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu.max"))
print("pids", read("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"))
print("capeff", status["CapEff"].strip())
print("nnp", status["NoNewPrivs"].strip())
""")
    assert probe.returncode == 0, probe.stderr
    values = dict(line.split(" ", 1) for line in probe.stdout.splitlines())
    assert values["uid"] == "1000"
    assert values["mem"] == str(1024**3)
    assert values["cpu"].split()[0] == "100000"
    assert values["pids"] == "256"
    assert int(values["capeff"], 16) == 0
    assert values["nnp"] == "1"


def test_the_image_is_clean(docker_platform, two_teachers):
    alice, _ = two_teachers
    result = subprocess.run(
        ["docker", "exec", "-u", "1000:1000", docker_platform.container(alice), "sh", "-c",
         "pip check && python -c 'import importlib.util as u; print(u.find_spec(\"rfc3987_syntax\"))'"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No broken requirements" in result.stdout
    assert result.stdout.strip().endswith("None")


def test_teacher_kernels_have_no_debugger(docker_platform, two_teachers):
    """A teacher's processes (server, page kernels, tool kernels) leave debugpy out: ~8 MB per kernel."""
    alice, _ = two_teachers
    probe = docker_platform.exec_python(alice, "import ipykernel.debugger as d\nprint(d._is_debugpy_available)")
    assert probe.stdout.strip() == "False", probe.stderr
    maps = subprocess.run(["docker", "exec", docker_platform.container(alice), "sh", "-c",
                           "cat /proc/[0-9]*/maps 2>/dev/null | grep -c debugpy || true"],
                          capture_output=True, text=True, timeout=60)
    assert maps.stdout.strip() == "0", maps.stdout


def test_the_tool_page_renders_through_the_hub(docker_platform, two_teachers):
    """The owner opens their server through the hub's OAuth and Voila renders the tool app from the image."""
    alice, bob = two_teachers
    client = docker_platform.login(alice)
    page = client.get(f"/user/{alice}/", timeout=120)
    if page.status_code != 200:
        logs = subprocess.run(["docker", "logs", "--tail", "60", docker_platform.container(alice)],
                              capture_output=True, text=True).stderr
        listing = subprocess.run(["docker", "exec", docker_platform.container(alice), "sh", "-c",
                                  "id; ls -lan /home/skriptoteket /home/skriptoteket/.local /home/skriptoteket/.local/share"],
                                 capture_output=True, text=True)
        raise AssertionError(f"{page.status_code}\n{logs[-1500:]}\n{listing.stdout}{listing.stderr}")
    assert "voila" in page.text.lower() or "jupyter-widgets" in page.text.lower()
    # another user is refused by alice's server
    other = docker_platform.login(bob).get(f"/user/{alice}/", timeout=60)
    assert other.status_code == 403 or f"/user/{bob}/" in str(other.url)


def test_authors_get_jupyterlab_teachers_do_not(docker_platform, two_teachers):
    alice, _ = two_teachers
    docker_platform.create_user("ada", "authors")
    docker_platform.start_server("ada", "lab", timeout=180)
    info = docker_platform.inspect("ada", "lab")
    assert "jupyterhub-singleuser" in " ".join(info["Config"]["Cmd"])
    assert "--LabApp.expose_app_in_browser=True" in info["Config"]["Cmd"]  # the assistant's Accept needs it
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/home/skriptoteket/work"]["Type"] == "volume"
    assert mounts["/home/skriptoteket/work"]["Name"] == f"{docker_platform.prefix}-work-ada"
    assert info["HostConfig"]["ReadonlyRootfs"] is True and info["HostConfig"]["CapDrop"] == ["ALL"]
    # the author's files persist in the volume, writable by the container's user
    write = docker_platform.exec_python("ada", "open('/home/skriptoteket/work/t.py', 'w').write('x = 1')\nprint('ok')",
                                        name="lab")
    assert write.stdout.strip() == "ok", write.stderr
    # authors keep JupyterLab's debugger (the image leaves debugpy out only without SKRIPTOTEKET_DEBUGGER=1)
    debugger = docker_platform.exec_python("ada", "import ipykernel.debugger as d\nprint(d._is_debugpy_available)",
                                           name="lab")
    assert debugger.stdout.strip() == "True", debugger.stderr
    docker_platform.stop_server("ada", "lab")
    # a teacher asking for JupyterLab is refused with a sentence
    with docker_platform.api() as api:
        response = api.post(f"/users/{alice}/servers/lab")
        if response.status_code in (201, 202):
            time.sleep(3)
            model = api.get(f"/users/{alice}").json()
            assert "lab" not in model["servers"] or not model["servers"]["lab"].get("ready")
        else:
            assert response.status_code in (400, 403, 500), response.text
    assert "JupyterLab is for tool authors" in docker_platform.log()
