"""The real platform for the operations tests: ``skriptoteket up`` in a temp home with short run limits, a
Prometheus scraper token, a small admission limit and (as root) a 5 MiB tmpfs as the blob store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from tests.browser.conftest import browser, login  # noqa: F401 - Chromium through Playwright
from tests.browser.tools import NOOP, publish
from tests.conftest import private_tmpdir
from tests.e2e.conftest import (  # noqa: F401
    RunningPlatform,
    _running,
    start_platform,
    stop_platform,
    wait_for,
)

METRICS_TOKEN = "metrics-" + "5" * 40
SLOW = "import time\n\ndef run_tool(input_dir, output_dir):\n    time.sleep(20)\n    return {'outputs': []}\n"
CONFIG = """
c.SkriptoteketService.run_timeout = 6
c.SkriptoteketService.run_grace_period = 3
c.SkriptoteketService.sweep_interval = 1
c.SkriptoteketService.max_running_runs = {max_running_runs}
c.SkriptoteketService.db_timeout = 3
c.SkriptoteketService.health_min_free_mb = 1
"""


def prepare_home(home: Path, *, max_running_runs: int = 0, tmpfs_mb: int = 0) -> bool:
    (home / "secrets").mkdir(parents=True, exist_ok=True)
    (home / "secrets" / "metrics_token").write_text(METRICS_TOKEN)
    (home / "skriptoteket_config.py").write_text(CONFIG.format(max_running_runs=max_running_runs))
    if tmpfs_mb and os.geteuid() == 0:
        (home / "blobs").mkdir(exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={tmpfs_mb}m", "tmpfs", str(home / "blobs")],
                              capture_output=True)
        return done.returncode == 0
    return False


@pytest.fixture(scope="module")
def ops_platform():
    path = Path(private_tmpdir("skr-ops-"))
    home = path / "home"
    mounted = prepare_home(home, max_running_runs=3, tmpfs_mb=5)
    running = start_platform(home, extra_env={"SKRIPTOTEKET_CULL_IDLE": "3600"})
    running.blob_tmpfs = mounted
    _running.append(running)
    publish(running.postgres.url("skriptoteket"), "noop", title="No-op", source=NOOP, input_schema=[])
    publish(running.postgres.url("skriptoteket"), "slow", title="Slow", source=SLOW, input_schema=[])
    publish(running.postgres.url("skriptoteket"), "upload", title="Upload", source=NOOP,
            input_schema=[{"name": "file", "label": "File", "kind": "file", "min": 1, "max": 1}])
    yield running
    _running.remove(running)
    stop_platform(running)
    if os.environ.get("SKR_OPS_KEEP_LOG"):  # for a diagnosis after the run: the hub's and the service's output
        shutil.copy(running.log_path, os.environ["SKR_OPS_KEEP_LOG"])
    running.postgres.stop(mode="immediate")
    if mounted:
        subprocess.run(["umount", "-l", str(home / "blobs")], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


class Api:
    """The service's API as the tool app's client calls it: a user's token, one correlation id per action."""

    def __init__(self, platform: RunningPlatform, token: str):
        self.http = httpx.Client(base_url=platform.service_url + "/api/v1/", timeout=30,
                                 headers={"Authorization": f"token {token}"})

    def call(self, method: str, path: str, correlation: str | None = None, **kw) -> httpx.Response:
        headers = {"X-Correlation-ID": correlation} if correlation else {}
        return self.http.request(method, path, headers=headers, **kw)

    def run(self, slug: str = "noop", correlation: str | None = None, queue_ms: int = 3, exec_ms: int = 12):
        """Create a run and report its result (what the tool app does around the runner)."""
        correlation = correlation or uuid.uuid4().hex
        created = self.call("POST", "runs", correlation, json={"tool": slug, "context": "production", "inputs": {}})
        if created.status_code != 201:
            return created, None
        run_id = created.json()["run"]["id"]
        envelope = {"contract_version": 2, "status": "succeeded", "outputs": [
            {"kind": "notice", "level": "info", "message": "done"}], "next_actions": [], "state": None, "artifacts": []}
        finished = self.call("POST", f"runs/{run_id}/result", correlation, json={
            "envelope": envelope, "stdout": "", "stderr": "", "traceback": None,
            "timings": {"queue_ms": queue_ms, "exec_ms": exec_ms}})
        return created, finished


def json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def find_process(match_cmd, match_env) -> psutil.Process | None:
    """A process of *this* platform (other platforms may run on the machine): by command line and environment."""
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if match_cmd(proc.info["cmdline"] or []) and match_env(proc.environ()):
                return proc
        except psutil.Error:
            continue
    return None


def service_process(platform: RunningPlatform) -> psutil.Process | None:
    return find_process(lambda cmd: cmd[-2:] == ["-m", "skriptoteket_ext"],
                        lambda env: env.get("SKRIPTOTEKET_HOME") == str(platform.home))


def hub_process(platform: RunningPlatform) -> psutil.Process | None:
    return find_process(lambda cmd: cmd[1:3] == ["-m", "jupyterhub"],
                        lambda env: env.get("SKRIPTOTEKET_HOME") == str(platform.home))


def user_server_process(platform: RunningPlatform, user: str) -> psutil.Process | None:
    hub = f":{platform.env['SKRIPTOTEKET_HUB_PORT']}/"
    return find_process(lambda cmd: "runner_kernel.singleuser" in cmd,
                        lambda env: env.get("JUPYTERHUB_USER") == user and hub in env.get("JUPYTERHUB_API_URL", ""))




def wait_page(page, selector: str, timeout_ms: int, platform: RunningPlatform, state: str = "visible"):
    """``page.wait_for_selector`` that says, when it times out, what the page and the platform looked like."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    try:
        return page.wait_for_selector(selector, state=state, timeout=timeout_ms)
    except PlaywrightTimeout:
        raise AssertionError(f"timed out waiting for {selector} on the page\n{platform_state(platform, page)}") from None


def platform_state(platform: RunningPlatform, page=None) -> str:
    """What a failed wait needs for a diagnosis: the page's text, the runs table, the log's recent trouble."""
    import sqlalchemy as sa
    out = []
    if page is not None:
        try:
            out.append("page: " + page.url + "\n" + page.inner_text("body", timeout=5000)[:2000])
        except Exception as exc:  # noqa: BLE001 - a diagnosis must not hide the failure
            out.append(f"page: {exc}")
    try:
        engine = sa.create_engine(platform.postgres.url("skriptoteket"))
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT t.slug, r.status, r.requested_at, r.deadline_at, now() AS now, r.error_summary FROM "
                "skriptoteket.runs r JOIN skriptoteket.tools t ON t.id = r.tool_id ORDER BY r.requested_at DESC "
                "LIMIT 12")).all()
        engine.dispose()
        out.append("runs:\n" + "\n".join(str(tuple(r)) for r in rows))
    except Exception as exc:  # noqa: BLE001
        out.append(f"runs: {exc}")
    lines = platform.log().splitlines()
    words = ('"status": 5', '"status": 4', "Sweep", "rror", "busy", "service POST", "pawn", "/user/", "roxy")
    trouble = [ln for ln in lines if any(w in ln for w in words)]
    out.append("log:\n" + "\n".join(ln[:400] for ln in trouble[-60:]))
    return "\n".join(out)
