"""A classroom: N teachers log in at once and each runs a light, realistic tool M times, through the real path.

    .venv/bin/python benchmarks/classroom.py [--teachers 20] [--runs 5] [--browser 1] [--think 1.0] [--think-spread 0] [--stagger 1]
                                             [--no-barrier]

What runs: ``skriptoteket up`` (demo mode: hub, proxy, service, embedded Postgres) in a temp home; one user
server per teacher (standalone Voila with preheated kernels and a warm runner pool), spawned by the first tool
link. Each teacher logs in through the hub's form and opens ``/hub/user-redirect/?tool=class-groups``; once
every teacher's tool is open (``Gate``), all press Run M times. A run's latency is click → the page has the
result (the app's ``skr-done-<n>`` marker): widget event → Voila kernel → POST runs → runner kernel → POST
result → widget updates back to the page.

Two kinds of teacher, reported separately:

- protocol teachers (the default; ``teacher_client.ProtocolTeacher``): the page's HTTP and kernel-websocket
  traffic without a browser (login form, spawn and pending page, OAuth, Voila page, widget state, the Run
  button's click message, the widget updates). Same servers and network path, no rendering: in a classroom
  the browsers run on the teachers' own machines, not on the server's cores.
- browser teachers (``--browser N``, default 1): the first N teachers are headless Chromium contexts (one
  browser process) that click the real button and wait for the drawn result, so the rendering path stays
  covered. Their CPU is on the same 2 cores (measured and printed, so its share is visible).

Reported per kind: p50/p95/max run latency, tool-open latency (after login → Run button available, includes
the server spawn), errors (anything that is not the tool's result; "busy" answers are counted separately); and
CPU seconds / peak RSS of the hub, the service, the user servers (with their kernels), Chromium and this
process (the protocol teachers), sampled with psutil. The exit status is 1, with a FAILED line, when any
teacher failed to open the tool, any run errored or a run is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.teacher_client import ProtocolTeacher, RunOutcome
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.tools import publish
from tests.e2e.conftest import start_platform, stop_platform

CLASS_GROUPS = r'''
import random

CLASS = ["Ada", "Bo", "Cy", "Dee", "Ed", "Fia", "Gus", "Hal", "Ida", "Jon", "Kim", "Liv", "Mo", "Nea", "Ola",
         "Pia", "Rut", "Sam", "Tor", "Una", "Vim", "Wil", "Xi", "Yo", "Zeb", "Åsa", "Ärn", "Öla"]

def run_tool(input_dir, output_dir):
    pupils = list(CLASS)
    random.shuffle(pupils)
    groups = [pupils[i::6] for i in range(6)]
    with open(f"{output_dir}/groups.csv", "w") as f:
        f.write("group,name\n" + "".join(f"{g + 1},{n}\n" for g, names in enumerate(groups) for n in names))
    return {"outputs": [
        {"kind": "notice", "level": "success", "message": f"{len(pupils)} pupils in {len(groups)} groups"},
        {"kind": "table", "title": "Groups", "columns": [{"key": "g", "label": "Group"}, {"key": "n", "label": "Names"}],
         "rows": [{"g": i + 1, "n": ", ".join(names)} for i, names in enumerate(groups)]},
    ]}
'''
RESULT = ".skr-result .skr-output-notice"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Sampler:
    """CPU seconds and peak RSS per role, from psutil, every ``interval`` seconds.

    A process's role is decided once, when it is first seen (its command line, and for kernels the Voila
    server above it); later samples only read its CPU times and RSS. The sampler runs in the protocol
    teachers' process, so a cheap sample matters: a full scan with environments every second took CPU from
    them."""

    ROLES = ("hub", "proxy", "service", "voila servers", "page kernels", "tool kernels", "chromium", "postgres",
             "benchmark")

    def __init__(self, platform, interval: float = 1.0):
        self.platform, self.interval = platform, interval
        self.peak_rss: dict[str, int] = {}
        self.cpu: dict[str, dict[int, float]] = {}
        self.cpu_start: dict[str, float] = {}
        self._task = None
        self._me = psutil.Process()
        self._known: dict[int, tuple[str | None, psutil.Process | None]] = {self._me.pid: ("benchmark", self._me)}

    def _role(self, proc: psutil.Process) -> str | None:
        home, hub_port = str(self.platform.home), f":{self.platform.env['SKRIPTOTEKET_HUB_PORT']}/"
        cmd = proc.cmdline()
        if not cmd:
            return None
        ancestors = [self._known.get(a.pid, (None, None))[0] for a in proc.parents()]
        if "benchmark" in ancestors and "chrom" in cmd[0]:
            return "chromium"
        if "voila servers" in ancestors:  # the runner's fork server and its kernels, or Voila's page kernels
            return "tool kernels" if any(c.endswith(("_zygote.py", "_launch.py")) for c in cmd) else "page kernels"
        if "postgres" in ancestors:
            return "postgres"
        if cmd[1:3] == ["-m", "jupyterhub"] or cmd[-2:] == ["-m", "skriptoteket_ext"]:
            if proc.environ().get("SKRIPTOTEKET_HOME") == home:
                return "hub" if cmd[1:3] == ["-m", "jupyterhub"] else "service"
        elif "runner_kernel.singleuser" in " ".join(cmd):
            if hub_port in proc.environ().get("JUPYTERHUB_API_URL", ""):
                return "voila servers"
        elif any("configurable-http-proxy" in c for c in cmd) and f"{urlparse(self.platform.url).port}" in " ".join(cmd):
            return "proxy"
        elif "postgres" in cmd[0] and home in " ".join(cmd):
            return "postgres"
        return None

    def roles(self) -> dict[str, list[psutil.Process]]:
        out: dict[str, list[psutil.Process]] = {role: [] for role in self.ROLES}
        for pid in sorted(psutil.pids()):  # parents (lower pids, mostly) are classified before their children
            if pid not in self._known:
                try:
                    proc = psutil.Process(pid)
                    self._known[pid] = (self._role(proc), proc)
                except psutil.Error:
                    continue
            role, proc = self._known[pid]
            if role is not None:
                out[role].append(proc)
        return out

    def sample(self) -> None:
        for role, procs in self.roles().items():
            rss, cpu = 0, self.cpu.setdefault(role, {})
            for p in procs:
                try:
                    rss += p.memory_info().rss
                    times = p.cpu_times()
                    cpu[p.pid] = times.user + times.system
                except psutil.Error:
                    pass
            self.peak_rss[role] = max(self.peak_rss.get(role, 0), rss)

    def start(self) -> None:
        self.sample()
        self.cpu_start = {role: sum(v.values()) for role, v in self.cpu.items()}

        async def loop():
            while True:
                await asyncio.to_thread(self.sample)
                await asyncio.sleep(self.interval)

        self._task = asyncio.ensure_future(loop())

    def mark(self) -> None:
        """The start of the run phase: CPU from here on is reported apart (``run_phase_cpu_s``)."""
        self.sample()
        self.cpu_mark = {role: sum(v.values()) for role, v in self.cpu.items()}

    def stop(self) -> dict:
        self._task.cancel()
        self.sample()
        mark = getattr(self, "cpu_mark", {})
        # A process that exited between two samples (a tool kernel lives for one run) loses its last second.
        return {role: {"cpu_s": round(sum(v.values()) - self.cpu_start.get(role, 0.0), 1),
                       "run_phase_cpu_s": round(sum(v.values()) - mark.get(role, sum(v.values())), 1),
                       "peak_rss_mb": round(self.peak_rss.get(role, 0) / 2**20)} for role, v in self.cpu.items()}


class Gate:
    """Every teacher's tool is open (or failed to open) before anyone presses Run: the run phase then measures
    N teachers running at once, not runs competing with other teachers' server spawns (the open phase is
    measured on its own). ``--no-barrier`` lets each teacher run as soon as the tool is open."""

    def __init__(self, n: int, enabled: bool = True, on_open=None):
        self.n, self.enabled, self.arrived, self.event = n, enabled, 0, asyncio.Event()
        self.opened_at: float | None = None
        self.on_open = on_open

    def arrive(self) -> None:
        self.arrived += 1
        if self.arrived >= self.n:
            self.opened_at = time.monotonic()
            if self.on_open:
                self.on_open()
            self.event.set()

    async def wait(self) -> None:
        if self.enabled:
            await self.event.wait()


def new_stats() -> dict:
    return {"latency": [], "open": [], "errors": [], "run_errors": 0, "busy": 0, "teachers": 0, "messages": []}


async def take_part(name: str, runs: int, think: Callable[[], float], stats: dict, gate: Gate, *, login,
                    open_tool, run_once, where, socket_gone=lambda: False) -> None:
    """One teacher, whatever kind: log in, open the tool (timed), wait at the gate, then press Run ``runs`` times
    with ``think()`` seconds before each click. ``run_once(n)`` gives a ``RunOutcome`` or raises (that run
    failed); ``where()`` says where a teacher that could not open the tool was stuck."""
    opened = False
    try:
        await login()
        t0 = time.monotonic()
        await open_tool()
        stats["open"].append(time.monotonic() - t0)
        opened = True
    except Exception as exc:  # noqa: BLE001 - reported, the others go on
        stats["errors"].append(f"{name} open: {type(exc).__name__} {await where()}: {exc}"[:400])
    finally:
        gate.arrive()
    if not opened:
        return
    await gate.wait()
    for n in range(1, runs + 1):
        await asyncio.sleep(think())
        try:
            outcome = await run_once(n)
        except Exception as exc:  # noqa: BLE001 - this run failed (a timeout, a closed socket); reported
            stats["errors"].append(f"{name} run {n}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300])
            stats["run_errors"] += 1
            if socket_gone():
                return  # the remaining runs are missing (and counted as such)
            continue
        if outcome.kind == "result":
            stats["latency"].append(outcome.seconds)
            if outcome.messages is not None:
                stats["messages"].append(outcome.messages)
        elif outcome.kind == "busy":
            stats["busy"] += 1
        else:
            stats["errors"].append(f"{name} run {n}: {outcome.text[:200]!r}")
            stats["run_errors"] += 1
    stats["finished"] = max(stats.get("finished", 0.0), time.monotonic())


async def browser_teacher(browser, url: str, name: str, password: str, runs: int, think: Callable[[], float], stats: dict,
                          gate: Gate, arrive: float = 0.0) -> None:
    """A teacher in Chromium: the hub's login form, the tool link, the Run button, the result drawn."""
    await asyncio.sleep(arrive)  # a class does not arrive in the same millisecond
    context = await browser.new_context()
    context.set_default_timeout(180_000)  # 20 renderers starting on 2 cores: the login page alone took > 30 s
    page = await context.new_page()

    async def login():
        await page.goto(url + "/hub/login")
        await page.fill("#username_input", name)
        await page.fill("#password_input", password)
        await page.click("#login_submit")
        await page.wait_for_load_state()

    async def open_tool():
        await page.goto(f"{url}/hub/user-redirect/?tool=class-groups")
        await page.wait_for_selector(".skr-app .skr-title", timeout=300_000)

    async def where():  # the page's address and the start of its text
        try:
            return f"at {page.url}: {(await page.inner_text('body', timeout=5000))[:160]!r}"
        except Exception:  # noqa: BLE001
            return f"at {page.url}"

    async def run_once(n: int) -> RunOutcome:
        t0 = time.monotonic()
        await page.click("button.skr-run-button")
        await page.wait_for_selector(f".skr-app.skr-done-{n}", state="attached", timeout=300_000)
        elapsed = time.monotonic() - t0
        text = (await page.locator(".skr-app").inner_text()).lower()
        if "group\tnames" in text or await page.locator(".skr-result table").count():
            return RunOutcome("result", elapsed)
        if "busy" in text or "upptaget" in text or "try again" in text or "försök igen" in text:
            return RunOutcome("busy", elapsed)
        return RunOutcome("error", elapsed, text)

    try:
        await take_part(name, runs, think, stats, gate, login=login, open_tool=open_tool, run_once=run_once,
                        where=where)
    finally:
        await context.close()


async def protocol_teacher(url: str, name: str, password: str, runs: int, think: Callable[[], float], stats: dict,
                           gate: Gate, arrive: float = 0.0) -> None:
    """The same steps as ``browser_teacher``, as the page's HTTP/websocket traffic (``teacher_client``)."""
    await asyncio.sleep(arrive)
    client = ProtocolTeacher(url, name, password, timeout=300)

    async def where():
        return f"at {client.where}"

    try:
        await take_part(name, runs, think, stats, gate, login=client.login,
                        open_tool=lambda: client.open_tool("class-groups"), run_once=client.run, where=where,
                        socket_gone=lambda: client.reader is not None and client.reader.done())
    finally:
        await client.close()


def report(kind: str, stats: dict, runs: int, what: str) -> list[str]:
    """Print one kind of teacher's figures; return what went wrong (errors, missing runs)."""
    lat, opened = stats["latency"], stats["open"]
    if not stats["teachers"]:
        return []
    print(f"{kind} teachers ({stats['teachers']}):")
    print(f"  run latency ({what}), {len(lat)} runs: p50 {percentile(lat, .5):.2f} s, "
          f"p95 {percentile(lat, .95):.2f} s, max {max(lat, default=float('nan')):.2f} s, "
          f"mean {statistics.mean(lat) if lat else float('nan'):.2f} s")
    print(f"  tool open after login, incl. server spawn ({len(opened)} of {stats['teachers']}): "
          f"p50 {percentile(opened, .5):.1f} s, p95 {percentile(opened, .95):.1f} s, "
          f"max {max(opened, default=float('nan')):.1f} s")
    if stats["messages"]:
        print(f"  widget messages kernel -> page per run: p50 {percentile(stats['messages'], .5):.0f}, "
              f"max {max(stats['messages'])}")
    print(f"  errors: {len(stats['errors'])}, busy answers: {stats['busy']}")
    for err in stats["errors"][:10]:
        print("    ", err)
    problems = []
    if stats["errors"]:
        problems.append(f"{len(stats['errors'])} {kind} teacher error(s)")
    missing = stats["teachers"] * runs - len(lat) - stats["busy"] - stats["run_errors"]
    if missing > 0:
        problems.append(f"{missing} {kind} run(s) missing (tool not open or socket lost)")
    return problems


async def main_async(args) -> int:
    home = Path(tempfile.mkdtemp(prefix="skr-classroom-")) / "home"
    print(f"starting the platform in {home} ...", flush=True)
    platform = start_platform(home, extra_env={"SKRIPTOTEKET_NO_SCREENSHOTS": "1"})
    browser = pw = None
    try:
        publish(platform.postgres.url("skriptoteket"), "class-groups", title="Class groups", source=CLASS_GROUPS,
                input_schema=[])
        names = [f"teacher{i:02d}" for i in range(args.teachers)]
        for name in names:
            platform.create_user(name)
        n_browser = max(0, min(args.browser, len(names)))
        stats = {"browser": new_stats(), "protocol": new_stats()}
        stats["browser"]["teachers"], stats["protocol"]["teachers"] = n_browser, len(names) - n_browser
        if n_browser:
            from playwright.async_api import async_playwright

            pw = await async_playwright().start()
            # Chromium limits connections per host name (6), and a class shares no browser: each teacher gets a
            # host name of its own for the same address (``<teacher>.classroom.test``). This alone did not fix
            # the teachers stuck on the hub's pending page (16 of 20 still were; docs/operations.md).
            args_ = CHROMIUM_ARGS + ([f"--host-resolver-rules=MAP *.classroom.test {urlparse(platform.url).hostname}"]
                                    if args.host_per_teacher else [])
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args_)
        sampler = Sampler(platform)
        sampler.start()
        t0 = time.monotonic()
        gate = Gate(len(names), args.barrier, on_open=sampler.mark)
        # the browser teachers arrive first (with the stagger: while the machine is least loaded)
        await asyncio.gather(*(
            browser_teacher(browser, teacher_url(platform.url, name, args.host_per_teacher), name,
                            platform.passwords[name], args.runs, args.pause, stats["browser"], gate,
                            arrive=i * args.stagger)
            if i < n_browser else
            protocol_teacher(platform.url, name, platform.passwords[name], args.runs, args.pause,
                             stats["protocol"], gate, arrive=i * args.stagger)
            for i, name in enumerate(names)))
        wall = time.monotonic() - t0
        usage = sampler.stop()
        print(f"\n{args.teachers} teachers ({len(names) - n_browser} protocol, {n_browser} Chromium) x {args.runs} "
              f"runs on {os.cpu_count()} cores in {wall:.0f} s (load average before/after: "
              f"{args.load_before:.1f}/{os.getloadavg()[0]:.1f})")
        problems = report("protocol", stats["protocol"], args.runs,
                          "click message sent -> skr-done-<n> update received, nothing rendered")
        problems += report("Chromium", stats["browser"], args.runs, "click -> result drawn on the page")
        finished = [s["finished"] for s in stats.values() if s.get("finished")]
        if args.barrier and gate.opened_at and finished:
            phase = max(finished) - gate.opened_at
            done = sum(len(s["latency"]) for s in stats.values())
            print(f"run phase (every tool open, then all teachers run at once): {phase:.0f} s, "
                  f"{done / phase:.2f} runs/s")
        print("CPU seconds (whole benchmark, and the run phase alone) and peak RSS per role "
              "(benchmark = this process: the protocol teachers and the sampler):")
        runs_done = sum(len(s["latency"]) for s in stats.values()) or 1
        for role, u in usage.items():
            print(f"  {role:>13}: {u['cpu_s']:7.1f} CPU s, run phase {u['run_phase_cpu_s']:6.1f} s "
                  f"({1000 * u['run_phase_cpu_s'] / runs_done:5.0f} ms/run), peak RSS {u['peak_rss_mb']} MiB")
        stored = run_durations(platform)
        print(f"the same runs as stored (POST runs -> POST result, without the page): {len(stored)} runs, "
              f"p50 {percentile(stored, .5):.2f} s, p95 {percentile(stored, .95):.2f} s")
        parts = app_timings(platform.log())
        if parts:
            print("  in the Voila kernel (the tool app's log), p50 / p95 s: " + ", ".join(
                f"{key} {percentile(parts[key], .5):.2f} / {percentile(parts[key], .95):.2f}"
                for key in ("create", "queue", "run", "artifacts", "finish", "total") if key in parts))
        if problems:
            print("FAILED: " + "; ".join(problems), file=sys.stderr, flush=True)
            return 1
        return 0
    finally:
        if browser is not None:
            await browser.close()
        if pw is not None:
            await pw.stop()
        stop_platform(platform)
        platform.postgres.stop(mode="immediate")
        if args.keep_log:
            shutil.copy(platform.log_path, args.keep_log)
        shutil.rmtree(home.parent, ignore_errors=True)


def teacher_url(url: str, name: str, own_host: bool) -> str:
    if not own_host:
        return url
    parts = urlparse(url)
    return parts._replace(netloc=f"{name}.classroom.test:{parts.port}").geturl()


def app_timings(log: str) -> dict[str, list[float]]:
    """The tool app's own split of each finished run, from its log line ``run <id> <status> in N ms {...}``
    (``runner_kernel/app.py``): create (POST runs), queue (waiting for a warm runner kernel; part of run),
    run (runner), artifacts (PUTs), finish (POST result), total."""
    import ast
    import re
    parts: dict[str, list[float]] = {}
    for found in re.finditer(r"\] run \S+ \w+ in \d+ ms (\{[^}]*\})", log):
        for key, value in ast.literal_eval(found.group(1)).items():
            parts.setdefault(key.removesuffix("_ms"), []).append(value / 1000)
    return parts


def run_durations(platform) -> list[float]:
    """requested_at -> finished_at of the finished runs: the service-side part of each run's latency."""
    import sqlalchemy as sa
    engine = sa.create_engine(platform.postgres.url("skriptoteket"))
    try:
        with engine.connect() as conn:
            return [float(v) for v in conn.execute(sa.text(
                "SELECT extract(epoch FROM finished_at - requested_at) FROM skriptoteket.runs "
                "WHERE finished_at IS NOT NULL")).scalars()]
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teachers", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--browser", type=int, default=1, metavar="N",
                        help="how many of the teachers are Chromium contexts (the rest are protocol teachers)")
    parser.add_argument("--think", type=float, default=1.0, help="seconds between a result and the next click")
    parser.add_argument("--think-spread", type=float, default=0.0, metavar="S",
                        help="each pause is drawn uniformly from think*(1-S) .. think*(1+S) (default 0: the same "
                             "pause for everyone, so the teachers stay in step: the worst case)")
    parser.add_argument("--stagger", type=float, default=1.0, help="seconds between two teachers' arrivals")
    parser.add_argument("--host-per-teacher", action=argparse.BooleanOptionalAction, default=True,
                        help="a host name of its own for each teacher (Chromium's per-host connection limit)")
    parser.add_argument("--keep-log", help="copy the platform's log (hub, proxy, service, user servers) here")
    parser.add_argument("--barrier", action=argparse.BooleanOptionalAction, default=True,
                        help="wait until every teacher's tool is open before the runs start (default: yes)")
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    spread = min(max(args.think_spread, 0.0), 1.0)
    args.pause = lambda: args.think * random.uniform(1 - spread, 1 + spread)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
