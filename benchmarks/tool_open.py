"""Benchmark: opening a tool and running a no-op tool, in Chromium, through the real hub — with and without
preheated kernels, in the same run.

Two teachers on one platform (``skriptoteket up`` in a temp home): ``warm`` gets the normal user server (one
preheated Voila page kernel, one warm tool kernel); ``cold`` is listed in ``SKRIPTOTEKET_UNHEATED_USERS``, so its
server runs with ``--pool-size=0 --runner-pool-size=0`` (every page starts its kernel, every run starts a tool
kernel). Both servers are started and idle before measuring. Before each warm repetition the benchmark waits
until the pools are full again (``/user/<name>/ready``), so it measures the pooled path, not a drained pool.

    .venv/bin/python benchmarks/tool_open.py [--reps 10]

Measures (medians and p90 over ``--reps``), each twice:

- open: navigation to ``/user/<name>/?tool=tp-noop`` → the Run button is visible and enabled (form interactive);
- run: Run clicked → the result is rendered (the app's ``skr-done-<n>`` class, set after drawing the payload).

It also prints what each page loaded before its form was interactive (resources, kB decoded; from the browser's
cache after the first load, so this is the JavaScript and CSS evaluated per load) and the load average at the
start and at the end.

"in the page" is the browser's own clock (``performance.now()``: the navigation's start, the click event on the
Run button, and a ``MutationObserver`` that notes when the button becomes enabled and when the done class
appears). "driver" is the wall clock in this script around Playwright's calls; it adds Playwright's own work
(actionability checks before a click, polling for the selector: 50–300 ms on a loaded machine).
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

# Installed in every page before its own scripts: the page's clock at the Run click, at the form becoming
# interactive and at each skr-done-<n> class.
PAGE_CLOCK = """
window.__skr = {clicks: [], interactive: null, done: {}};
document.addEventListener("click", function (e) {
  if (e.target.closest && e.target.closest("button.skr-run-button")) window.__skr.clicks.push(performance.now());
}, true);
new MutationObserver(function (records) {
  var now = performance.now(), clock = window.__skr;
  if (clock.interactive === null) {
    var b = document.querySelector("button.skr-run-button");
    if (b && !b.disabled && b.offsetParent !== null) clock.interactive = now;
  }
  records.forEach(function (r) {
    var m = r.type === "attributes" && r.target.classList && r.target.classList.contains("skr-app")
            && r.target.className.match(/skr-done-(\\d+)/);
    if (m && !(m[1] in clock.done)) clock.done[m[1]] = now;
  });
}).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ["class", "disabled", "style"]});
"""


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


KEYS = ("open", "open_driver", "html", "js", "run", "run_driver", "resources", "kb")

# What the page loaded before its form was interactive: how many resources (scripts, styles, the kernel's info) and
# how many kB once decoded (all from the browser's cache after the first load: the work is evaluating them)
PAGE_WEIGHT = """(() => { const t = window.__skr.interactive;
  const r = performance.getEntriesByType('resource').filter(e => e.startTime <= t);
  return [r.length, r.reduce((s, e) => s + (e.decodedBodySize || 0), 0) / 1024]; })()"""


def measure(page, url: str, user: str, reps: int, warm: bool) -> dict[str, list[float]]:
    got = {k: [] for k in KEYS}
    for _ in range(reps):
        wait_ready(url, user, warm=warm)
        t0 = time.perf_counter()
        page.goto(f"{url}/user/{user}/?tool=tp-noop")
        page.wait_for_selector("button.skr-run-button:enabled", timeout=120_000)
        got["open_driver"].append((time.perf_counter() - t0) * 1000)
        page.wait_for_function("window.__skr && window.__skr.interactive !== null")
        got["open"].append(page.evaluate("window.__skr.interactive"))
        # the page's HTML is complete once the notebook cell (the app opening) has run in the kernel; then the
        # front end loads, connects to the kernel and draws the widgets
        got["html"].append(page.evaluate("performance.getEntriesByType('navigation')[0].responseEnd"))
        got["js"].append(got["open"][-1] - got["html"][-1])
        count, kb = page.evaluate(PAGE_WEIGHT)
        got["resources"].append(count)
        got["kb"].append(kb)
        for n in (1, 2):  # two runs per page load: the first and a repeated one
            wait_ready(url, user, warm=warm)
            page.wait_for_selector("button.skr-run-button:enabled")
            t0 = time.perf_counter()
            page.click("button.skr-run-button")
            page.wait_for_selector(f".skr-app.skr-done-{n}", state="attached", timeout=120_000)
            got["run_driver"].append((time.perf_counter() - t0) * 1000)
            clock = page.evaluate("window.__skr")
            got["run"].append(clock["done"][str(n)] - clock["clicks"][-1])
    return got


def p90(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.9 * len(values))) - 1)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    os.environ["SKRIPTOTEKET_UNHEATED_USERS"] = "cold"
    load_at_start = os.getloadavg()
    home = Path(tempfile.mkdtemp(prefix="skr-bench-")) / "home"
    platform = start_platform(home)
    results = {}
    try:
        for user in ("warm", "cold"):
            platform.create_user(user)
        publish_all(platform)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            pages = {}
            for user in ("warm", "cold"):
                context = browser.new_context()
                context.add_init_script(PAGE_CLOCK)
                page = login(context, platform.url, user, platform.passwords[user])
                page.goto(f"{platform.url}/hub/user-redirect/?tool=tp-noop")  # start the server (not measured)
                page.wait_for_selector("button.skr-run-button:enabled", timeout=180_000)
                page.click("button.skr-run-button")  # first run ever (not measured)
                page.wait_for_selector(".skr-app.skr-done-1", state="attached", timeout=180_000)
                pages[user] = page
            # interleave the two servers so machine load hits both alike
            per_round = max(1, args.reps // 5)
            results = {u: {k: [] for k in KEYS} for u in pages}
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
    for key, label in (("open", "tool open -> form interactive"), ("html", "  page HTML complete"),
                       ("js", "  then front end + widgets"), ("open_driver", "  (driver's wall clock)"),
                       ("run", "Run clicked -> result rendered"), ("run_driver", "  (driver's wall clock)")):
        w, c = results["warm"][key], results["cold"][key]
        wm, cm = statistics.median(w), statistics.median(c)
        goal = (f"{'  ok' if wm <= GOALS[key] else '  MISS':>8} (<= {GOALS[key]:.0f})") if key in GOALS else ""
        print(f"{label:<34}{wm:>12.0f}{p90(w):>9.0f}{cm:>14.0f}{p90(c):>9.0f}{cm / wm:>7.1f}x{goal}")
    w, c = results["warm"], results["cold"]
    print(f"{'front end loaded before interactive':<34}{statistics.median(w['resources']):>9.0f} resources, "
          f"{statistics.median(w['kb']):.0f} kB decoded (unheated: {statistics.median(c['resources']):.0f}, "
          f"{statistics.median(c['kb']):.0f} kB)")
    load = os.getloadavg()
    print(f"load average (1/5/15 min) at the start: {' / '.join(f'{x:.1f}' for x in load_at_start)}, "
          f"at the end: {' / '.join(f'{x:.1f}' for x in load)}, on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
