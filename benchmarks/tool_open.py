"""Benchmark: opening a tool and running a no-op tool, in Chromium, through the real hub — with and without
preheated kernels, in the same run.

Two teachers on one platform (``skriptoteket up`` in a temp home): ``warm`` gets the normal user server (one
preheated Voila page kernel, one warm tool kernel); ``cold`` is listed in ``SKRIPTOTEKET_UNHEATED_USERS``, so its
server runs with ``--pool-size=0 --runner-pool-size=0`` (every page starts its kernel, every run starts a tool
kernel). Both servers are started and idle before measuring. Before each warm repetition the benchmark waits
until the pools are full again (``/user/<name>/ready``), so it measures the pooled path, not a drained pool.

    .venv/bin/python benchmarks/tool_open.py [--reps 10]

Measures (wall clock in the test driver, medians and p90 over ``--reps``):

- open: navigation to ``/user/<name>/?tool=tp-noop`` → the Run button is visible and enabled (form interactive);
- run: Run clicked → the result is rendered (the app's ``skr-done-<n>`` class, set after drawing the payload).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, login  # noqa: E402
from tests.browser.tools import publish_all  # noqa: E402
from tests.e2e.conftest import start_platform, stop_platform  # noqa: E402

GOALS = {"open": 500.0, "run": 200.0}


def wait_ready(url: str, user: str, *, warm: bool, timeout: float = 120) -> None:
    """The user's server answers; with ``warm``, its page pool and runner pool are full."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = httpx.get(f"{url}/user/{user}/ready", timeout=5).json()
            if not warm or (body.get("warm_kernels", 0) >= 1 and body.get("runner_warm", 0) >= 1):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{user}'s server not ready")


def measure(page, url: str, user: str, reps: int, warm: bool) -> dict[str, list[float]]:
    opens, runs, html = [], [], []
    for _ in range(reps):
        wait_ready(url, user, warm=warm)
        t0 = time.perf_counter()
        page.goto(f"{url}/user/{user}/?tool=tp-noop")
        page.wait_for_selector("button.skr-run-button:enabled", timeout=120_000)
        opens.append((time.perf_counter() - t0) * 1000)
        # the page's HTML is complete once the notebook cell (the app opening) has run in the kernel
        html.append(page.evaluate("performance.getEntriesByType('navigation')[0].responseEnd"))
        for n in (1, 2):  # two runs per page load: the first and a repeated one
            wait_ready(url, user, warm=warm)
            page.wait_for_selector("button.skr-run-button:enabled")
            t0 = time.perf_counter()
            page.click("button.skr-run-button")
            page.wait_for_selector(f".skr-app.skr-done-{n}", state="attached", timeout=120_000)
            runs.append((time.perf_counter() - t0) * 1000)
    return {"open": opens, "html": html, "run": runs}


def p90(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.9 * len(values))) - 1)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    os.environ["SKRIPTOTEKET_UNHEATED_USERS"] = "cold"
    home = Path(tempfile.mkdtemp(prefix="skr-bench-")) / "home"
    platform = start_platform(home)
    results = {}
    try:
        for user in ("warm", "cold"):
            platform.create_user(user)
        publish_all(platform.postgres.url("skriptoteket"))
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            pages = {}
            for user in ("warm", "cold"):
                context = browser.new_context()
                page = login(context, platform.url, user, platform.passwords[user])
                page.goto(f"{platform.url}/hub/user-redirect/?tool=tp-noop")  # start the server (not measured)
                page.wait_for_selector("button.skr-run-button:enabled", timeout=180_000)
                page.click("button.skr-run-button")  # first run ever (not measured)
                page.wait_for_selector(".skr-app.skr-done-1", state="attached", timeout=180_000)
                pages[user] = page
            # interleave the two servers so machine load hits both alike
            per_round = max(1, args.reps // 5)
            results = {u: {"open": [], "html": [], "run": []} for u in pages}
            done = 0
            while done < args.reps:
                n = min(per_round, args.reps - done)
                for user, page in pages.items():
                    got = measure(page, platform.url, user, n, warm=(user == "warm"))
                    for k in got:
                        results[user][k] += got[k]
                done += n
                print(f"{done}/{args.reps} repetitions", flush=True)
            browser.close()
    finally:
        stop_platform(platform)
        platform.postgres.stop(mode="immediate")

    print(f"\nTool open and no-op run through the hub, {args.reps} page loads per server "
          f"({2 * args.reps} runs), ms")
    print(f"{'measure':<34}{'pooled p50':>12}{'p90':>9}{'unheated p50':>14}{'p90':>9}{'ratio':>8}{'goal':>8}")
    for key, label in (("open", "tool open -> form interactive"), ("html", "  of which: page HTML complete"),
                       ("run", "Run clicked -> result rendered")):
        w, c = results["warm"][key], results["cold"][key]
        wm, cm = statistics.median(w), statistics.median(c)
        goal = (f"{'  ok' if wm <= GOALS[key] else '  MISS':>8} (<= {GOALS[key]:.0f})") if key in GOALS else ""
        print(f"{label:<34}{wm:>12.0f}{p90(w):>9.0f}{cm:>14.0f}{p90(c):>9.0f}{cm / wm:>7.1f}x{goal}")
    load = os.getloadavg()
    print(f"load average during the run: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
