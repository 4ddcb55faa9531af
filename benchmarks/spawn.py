"""Docker mode: cold spawn to a usable tool page, the memory of an idle teacher container, and the runner's
overhead inside the container. Needs a Docker engine and the user image (./scripts/build-image.sh).

    .venv/bin/python benchmarks/spawn.py [--rounds 5] [--cpu 1.0]
    .venv/bin/python benchmarks/spawn.py --compare-memory new=skriptoteket-user:latest old=IMAGE[,VAR=VALUE...]

Baselines measured in the same run, so ratios survive a busy machine:
  - container floor: `docker run --rm IMAGE python -c pass` with the same hardening flags and CPU limit;
  - import floor: `python -c "import runner_kernel.singleuser"` in such a container.
Goals (docs/docker.md): cold spawn to tool page <= 2 s p50 at 1 CPU; idle teacher container <= 200 MB.

"In a browser": Chromium (Debian's, through Playwright) opens /hub/user-redirect/?tool=<slug> of a published tool
with the teacher's server stopped, and the clock stops when the tool's form is on the page (the hub's spawn
page, the container start, Voila's page, the widgets). The HTTP figures (hub ready, first page HTML) come from
httpx in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.docker.conftest import (  # noqa: E402
    IMAGE, engine_problem, start_docker_platform, stop_docker_platform,
)
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, login  # noqa: E402
from tests.e2e.publishing import publish_tool  # noqa: E402

APP_READY = ".skr-app .skr-title, .skr-app .skr-message"

HARDENING = ["--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges", "--pids-limit=256",
             "--tmpfs=/tmp:rw,nosuid,nodev,size=256m", "--tmpfs=/home/skriptoteket:rw,nosuid,nodev,uid=1000,gid=1000",
             "--network=none", "--memory=1g"]


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def container_mem_mb(name: str) -> tuple[float, float]:
    """(docker stats' usage, i.e. without page cache; the cgroup's raw usage) in MB."""
    stats = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{json .}}", name],
                           capture_output=True, text=True, check=True).stdout
    usage = json.loads(stats)["MemUsage"].split("/")[0].strip()
    units = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "B": 1 / 1024 / 1024}
    value = next(float(usage[: -len(u)]) * f for u, f in units.items() if usage.endswith(u))
    raw = subprocess.run(["docker", "exec", name, "cat", "/sys/fs/cgroup/memory/memory.usage_in_bytes"],
                         capture_output=True, text=True).stdout.strip()
    return value * 1.048576, (int(raw) / 1e6 if raw.isdigit() else float("nan"))


def container_cpu_seconds(name: str) -> float:
    """CPU time used by the container's processes since it started (the cgroup's accounting, v1 or v2)."""
    cid = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True).stdout.strip()
    v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
    if v1.exists():
        return int(v1.read_text()) / 1e9
    for v2 in (Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat"), Path(f"/sys/fs/cgroup/docker/{cid}/cpu.stat")):
        if v2.exists():
            return int(v2.read_text().split("usage_usec", 1)[1].split()[0]) / 1e6
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cpu", type=float, default=1.0)
    parser.add_argument("--spares", type=int, default=1,
                        help="spare containers for the first hub; a second hub without spares is the baseline")
    parser.add_argument("--compare-memory", nargs="+", metavar="NAME=IMAGE[,VAR=VALUE...]",
                        help="only this: the idle server of each variant, side by side, without the hub")
    args = parser.parse_args()
    problem = engine_problem()
    if problem:
        print(f"skipped: {problem}")
        return 0
    if args.compare_memory:
        return compare_memory(args.compare_memory, args.cpu)
    cpus = f"--cpus={args.cpu}"
    print(f"image {IMAGE}, {args.rounds} rounds, cpu_limit {args.cpu}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")

    floor = [timed(["docker", "run", "--rm", cpus, *HARDENING, "--entrypoint", "python", IMAGE, "-c", "pass"])
             for _ in range(args.rounds)]
    imports = [timed(["docker", "run", "--rm", cpus, *HARDENING, "--entrypoint", "python", IMAGE, "-c",
                      "import runner_kernel.singleuser"]) for _ in range(args.rounds)]

    runs = [platform_rounds(args, spares, extras=(spares == args.spares)) for spares in dict.fromkeys([args.spares, 0])]

    print()
    print(f"container floor (docker run python -c pass)      p50 {median(floor):.2f} s")
    print(f"import runner_kernel.singleuser in a container    p50 {median(imports):.2f} s")
    for run in runs:
        how = "from a ready spare container" if run["spares"] else "a new container (no spare)"
        print(f"teacher server stopped, {how}:")
        print(f"  spawn -> hub ready                               p50 {median(run['ready']):.2f} s "
              f"(x{median(run['ready']) / median(floor):.1f} the container floor)")
        print(f"  spawn -> first tool page HTML (httpx)            p50 {median(run['page']):.2f} s")
        print(f"  spawn -> usable tool page in Chromium            p50 {median(run['browser']):.2f} s "
              f"(goal 2 s: x{median(run['browser']) / 2:.2f}); rounds {', '.join(f'{x:.2f}' for x in run['browser'])}")
        print(f"  next page, the first one left (warm pool)        p50 {median(run['page_warm']) * 1000:.0f} ms")
        if run["mem"]:
            print(f"  idle teacher container, one page open            {run['mem'][0]:.0f} MB "
                  f"(goal 200 MB: x{run['mem'][0] / 200:.2f})")
        if run["overhead"]:
            print(run["overhead"])
    if len(runs) == 2:
        print(f"usable tool page, spare / no spare: x{median(runs[0]['browser']) / median(runs[1]['browser']):.2f}")
    return 0


def platform_rounds(args, spares: int, extras: bool) -> dict:
    """The hub in Docker mode with ``spares`` spare containers: browser rounds, then HTTP rounds; with ``extras``
    the idle memory and the runner overhead in the container too."""
    tag = os.urandom(3).hex()
    network, prefix = f"skr-bench-{tag}", f"skrbench{tag}"
    home = Path(tempfile.mkdtemp(prefix="skr-bench-")) / "home"
    print(f"-- the hub with {spares} spare container(s)", flush=True)
    platform = start_docker_platform(home, network, prefix, {"SKRIPTOTEKET_CPU_LIMIT": str(args.cpu),
                                                             "SKRIPTOTEKET_SPARE_CONTAINERS": str(spares)})
    run = {"spares": spares, "ready": [], "page": [], "page_warm": [], "mem": None, "overhead": ""}
    try:
        user = "bench"
        platform.create_user(user)
        client = platform.login(user)
        publish_tool(platform, "bench-noop", "Bench")
        run["browser"], mem = browser_rounds(platform, user, args.rounds, spares)
        run["mem"] = mem if extras else None
        for i in range(args.rounds):
            if spares:
                wait_for_spare(platform)
            t0 = time.perf_counter()
            platform.start_server(user, timeout=180)
            run["ready"].append(time.perf_counter() - t0)
            response = client.get(f"/user/{user}/", timeout=120)
            run["page"].append(time.perf_counter() - t0)
            status = response.status_code
            leave_page(platform, client, user, response.text)
            t1 = time.perf_counter()
            client.get(f"/user/{user}/", timeout=120)
            run["page_warm"].append(time.perf_counter() - t1)
            logs = subprocess.run(["docker", "logs", platform.container(user)], capture_output=True, text=True)
            listening = next((l.split("listening after", 1)[1].strip() for l in (logs.stdout + logs.stderr).splitlines()
                              if "listening after" in l), "?")
            print(f"  round {i + 1}: hub ready {run['ready'][-1]:.2f} s, first page {run['page'][-1]:.2f} s (HTTP "
                  f"{status}, {len(response.content)} B), next page {run['page_warm'][-1] * 1000:.0f} ms; the server "
                  f"listened after {listening} of its own clock", flush=True)
            if i < args.rounds - 1:
                platform.stop_server(user)
        if extras:
            try:
                run["overhead"] = run_overhead_in_container(platform.container(user))
            except (subprocess.SubprocessError, OSError) as e:
                run["overhead"] = f"runner overhead in the container: failed ({e})"
    finally:
        stop_docker_platform(platform)
    return run


def leave_page(platform, client, user: str, html: str, timeout: float = 60) -> None:
    """What the tool page's front end does when it is left (beforeunload: shut its kernel down), then wait for the
    pool to refill: Docker mode keeps no spare page kernel while a page is open."""
    import re

    kernel = re.search(r'"kernelId": "([0-9a-f-]{36})"', html)
    xsrf = client.cookies.get("_xsrf", path=f"/user/{user}/") or client.cookies.get("_xsrf", path="/")
    if kernel and xsrf:
        client.post(f"/user/{user}/voila/api/shutdown/{kernel.group(1)}", data={"_xsrf": xsrf})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{platform.url}/user/{user}/ready", timeout=10).json().get("warm_kernels", 0) >= 1:
            return
        time.sleep(0.1)


def wait_for_spare(platform, timeout: float = 180) -> tuple[str, float]:
    """(id, CPU seconds used so far) of a spare container whose standby waits for a claim, after the machine had
    two quiet seconds: a spare made after the last round's claim would otherwise still be importing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter", f"name=^{platform.prefix}--spare-"],
                             capture_output=True, text=True).stdout.split()
        for cid in ids:
            logs = subprocess.run(["docker", "logs", cid], capture_output=True, text=True)
            if "ready for a claim" in logs.stderr + logs.stdout:
                time.sleep(2)
                return cid, container_cpu_seconds(cid)
        time.sleep(0.2)
    raise SystemExit(f"no spare container became ready in {timeout} s")


def browser_rounds(platform, user: str, rounds: int, spares: int) -> tuple[list[float], tuple[float, float]]:
    """Cold spawn to a usable tool page in Chromium: the server is stopped before each round (and, with spares,
    a spare container is ready). After the last, the idle container's memory with that one page open (a warm
    Voila pool and a warm runner pool)."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = chromium.new_context()
        page = login(context, platform.url, user, platform.passwords[user])
        phases, cpu = [], []
        for i in range(rounds):
            platform.stop_server(user)
            spare = wait_for_spare(platform) if spares else None
            log_start, html = len(platform.log()), []
            on_response = (lambda r: html.append(time.time())
                           if "/user/" in r.url and "?tool=" in r.url and r.status == 200 else None)
            page.on("response", on_response)
            t0, wall0 = time.perf_counter(), time.time()
            page.goto(f"{platform.url}/hub/user-redirect/?tool=bench-noop")
            page.wait_for_selector(APP_READY, timeout=180_000)
            times.append(time.perf_counter() - t0)
            cpu.append(container_cpu_seconds(platform.container(user)) - (spare[1] if spare else 0))
            page.remove_listener("response", on_response)
            phases.append(spawn_phases(platform, user, log_start, wall0, html[0] if html else None, times[-1]))
            if spare and not platform.container_id(user).startswith(spare[0]):
                raise SystemExit(f"round {i + 1}: the server did not start from the ready spare {spare[0]}")
            print(f"  browser round {i + 1}: usable tool page {times[-1]:.2f} s (load {os.getloadavg()[0]:.1f}), "
                  f"container CPU used by then {cpu[-1]:.2f} s"
                  + (f" after the claim ({spare[1]:.2f} s as a spare before it); " if spare else "; ")
                  + ", ".join(f"{k} {v:.2f}" for k, v in phases[-1].items()), flush=True)
        print_phase_medians(phases)
        # at --cpu 1 the wall time to a usable page cannot be shorter than the CPU the container spends on it
        print(f"  container CPU from {'the claim' if spares else 'start'} to usable page: p50 {median(cpu):.2f} s")
        time.sleep(25)  # the runner's pool warms after the first page; then idle
        body = httpx.get(f"{platform.url}/user/{user}/ready", timeout=10).json()
        mem = container_mem_mb(platform.container(user))
        print(f"  idle container, one tool page open in Chromium: {mem[0]:.0f} MB (docker stats), {mem[1]:.0f} MB "
              f"(cgroup incl. cache); ready: {body}")
        print(processes_mb(platform.container(user)))
        if spares:
            spare = wait_for_spare(platform)[0]
            print(f"  the next spare, idle: {container_mem_mb(spare)[0]:.0f} MB (docker stats)")
            print(processes_mb(spare))
        chromium.close()
    platform.stop_server(user)
    return times, mem


# the moments of a cold spawn, in order: (label, where it is read, what marks it)
PHASE_MARKS = [
    ("container started", "hub", "Starting container"),
    ("spare claimed", "hub", "started from spare container"),
    ("server listening", "container", "listening after"),
    ("hub ready", "hub", "is ready"),
    ("page kernel taken", "container", "Using pre-heated kernel"),
    ("tool app drawn", "container", "page opened in"),
]


def spawn_phases(platform, user: str, log_start: int, wall0: float, html_at: float | None, usable: float) -> dict:
    """Seconds from the click to each moment of one cold spawn: the hub's log, the container's (docker logs -t)
    and the browser's response for the page."""
    import datetime
    import re

    stamp = re.compile(r"\[[IDWE] (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)")
    seen = {}
    for line in platform.log()[log_start:].splitlines():
        m = stamp.search(line)
        for label, where, mark in PHASE_MARKS:
            if m and where == "hub" and mark in line and label not in seen:
                seen[label] = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp() - wall0
    logs = subprocess.run(["docker", "logs", "-t", platform.container(user)], capture_output=True, text=True)
    for line in (logs.stdout + logs.stderr).splitlines():
        when, _, text = line.partition(" ")
        for label, where, mark in PHASE_MARKS:
            if where == "container" and mark in text and label not in seen:
                at = datetime.datetime.fromisoformat(when[:26]).replace(tzinfo=datetime.timezone.utc)
                seen[label] = at.timestamp() - wall0
    if html_at is not None:
        seen["page HTML"] = html_at - wall0
    seen["usable"] = usable
    return dict(sorted(seen.items(), key=lambda kv: kv[1]))


def print_phase_medians(phases: list[dict]) -> None:
    labels = sorted({k for p in phases for k in p}, key=lambda k: median([p[k] for p in phases if k in p]))
    previous = 0.0
    print("  cold spawn in Chromium, medians from the click (and the step from the moment before):")
    for label in labels:
        at = median([p[label] for p in phases if label in p])
        print(f"    {label:<20} {at:6.2f} s  (+{at - previous:.2f})")
        previous = at


def processes_mb(container: str) -> str:
    """Each process of the container: RSS and PSS (from the host's /proc, so non-dumpable ones too)."""
    top = subprocess.run(["docker", "top", container, "-eo", "pid,args"], capture_output=True, text=True).stdout
    lines = []
    for row in top.splitlines()[1:]:
        pid, _, args = row.strip().partition(" ")
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        fields = {k: int(v.split()[0]) for k, v in (l.split(":", 1) for l in rollup.splitlines()[1:] if ":" in l)}
        lines.append(f"    pid {pid:>7}  rss {fields.get('Rss', 0) / 1024:6.1f} MB  pss {fields.get('Pss', 0) / 1024:6.1f} MB"
                     f"  {args.strip()[:90]}")
    return "  processes:\n" + "\n".join(lines)


def compare_memory(specs: list[str], cpu: float) -> int:
    """Idle memory of the teacher's server per variant (image and extra environment), all started at once with
    `docker run`, the hub's variables but no hub, the spawner's hardening: server + preheated page kernel + the
    runner's fork server and warm kernel (no page is open). For A/B of image or environment changes."""
    hub_env = {"JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/x/", "JUPYTERHUB_SERVICE_PREFIX": "/user/x/",
               "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api", "JUPYTERHUB_API_TOKEN": "not-a-token",
               "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-x", "JUPYTERHUB_USER": "x",
               "JUPYTER_RUNTIME_DIR": "/home/skriptoteket/.local/share/jupyter/runtime"}
    cmd = ["python", "-m", "runner_kernel.singleuser", "--notebook=/srv/skriptoteket/notebooks/tool_app.ipynb",
           "--template=skriptoteket", "--pool-size=1", "--SkriptoteketVoila.runner_start_wait=3"]
    containers = {}
    print(f"idle memory, {len(specs)} variants side by side; load average {os.getloadavg()[0]:.1f}")
    try:
        for i, spec in enumerate(specs):
            name, _, rest = spec.partition("=")
            image, *pairs = rest.split(",")
            env = [x for kv in [*(f"{k}={v}" for k, v in hub_env.items()), *pairs] for x in ("-e", kv)]
            container = f"skr-bench-mem-{os.getpid()}-{i}"
            hardening = [h for h in HARDENING if not h.startswith("--tmpfs=/home")]
            subprocess.run(["docker", "run", "-d", "--name", container, f"--cpus={cpu}", "--user=1000:1000", *hardening,
                            "--tmpfs=/home/skriptoteket:rw,nosuid,nodev,size=256m,uid=1000,gid=1000,mode=0700",
                            *env, image, *cmd], check=True, capture_output=True)
            containers[name] = container
        deadline, waiting = time.monotonic() + 300, set(containers)
        while waiting and time.monotonic() < deadline:
            for name in list(waiting):
                logs = subprocess.run(["docker", "logs", containers[name]], capture_output=True, text=True)
                top = subprocess.run(["docker", "top", containers[name]], capture_output=True, text=True).stdout
                # init, server, page kernel, fork server, its kernel
                if "warm kernel(s)" in logs.stdout + logs.stderr and len(top.splitlines()) - 1 >= 5:
                    waiting.discard(name)
            time.sleep(1)
        time.sleep(20)  # idle
        for name, container in containers.items():
            listing = processes_mb(container)
            total = sum(float(line.split("pss")[1].split()[0]) for line in listing.splitlines()[1:])
            print(f"{name}: PSS total {total:.1f} MB{' (runner not warm in 300 s)' if name in waiting else ''}")
            print(listing)
    finally:
        for container in containers.values():
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)
    return 0


def run_overhead_in_container(container: str) -> str:
    script = ROOT / "benchmarks" / "run_overhead.py"
    if not script.exists():
        return "runner overhead in the container: skipped (benchmarks/run_overhead.py not present yet)"
    # /tmp is a tmpfs and the root is read-only, so `docker cp` cannot write there: pipe the file in
    subprocess.run(["docker", "exec", "-i", "-u", "1000:1000", container, "sh", "-c",
                    "mkdir -p /tmp/bench && cat > /tmp/bench/run_overhead.py"], input=script.read_bytes(), check=True)
    result = subprocess.run(["docker", "exec", "-u", "1000:1000", "-w", "/tmp/bench", container, "python",
                             "/tmp/bench/run_overhead.py", "--n", "10"], capture_output=True, text=True, timeout=900)
    return "runner overhead in the container:\n" + (result.stdout + result.stderr[-2000:])


if __name__ == "__main__":
    sys.exit(main())
