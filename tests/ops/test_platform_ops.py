"""Operations against the real platform (hub, proxy, service, user servers, embedded Postgres): metrics, logs
with correlation ids end to end, secrets redacted, health, admission control, and the faults: a user server
killed mid-run, Postgres restarted under load, the service killed, the blob store's disk full, a stopped
server restarted by a tool link. The tests build on each other in order (one platform for the module)."""

from __future__ import annotations

import re
import signal
import threading
import time
import uuid

import httpx
import pytest
import sqlalchemy as sa

from skriptoteket_ext import tables as t
from skriptoteket_ext.logging import redact, redact_path

from .conftest import (  # noqa: F401
    METRICS_TOKEN,
    Api,
    hub_process,
    json_lines,
    login,
    platform_state,
    service_process,
    user_server_process,
    wait_for,
    wait_page,
)

pytestmark = [pytest.mark.hub, pytest.mark.timeout(900)]
APP_READY = ".skr-app .skr-title, .skr-app .skr-message"


@pytest.fixture(scope="module")
def users(ops_platform):
    ops_platform.create_user("teach")
    ops_platform.create_user("boss", "admins")
    return {"teach": ops_platform.token_for("teach"), "admin": ops_platform.token_for("admin")}


@pytest.fixture(scope="module")
def ops_db(ops_platform):
    engine = sa.create_engine(ops_platform.postgres.url("skriptoteket"), pool_pre_ping=True)  # survives the restart
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def no_runs_left_running(ops_platform, ops_db):
    """Each test starts with no run in status ``running``. Earlier tests leave some on purpose (the busy test's
    runs that never finish, runs cut off by the Postgres restart); they count against max_running_runs = 3
    until the deadline sweep fails them (6 s limit + 3 s grace, a sweep every second), so a test that creates
    runs at once would get 503 busy. Waiting for the sweep here also checks that it still works."""
    def none_running():
        try:
            with ops_db.connect() as conn:
                return conn.execute(sa.select(sa.func.count()).select_from(t.runs)
                                    .where(t.runs.c.status == "running")).scalar() == 0
        except sa.exc.OperationalError:
            return False
    wait_for(none_running, 60, 0.5, "the deadline sweep to fail the runs earlier tests left running",
             describe=lambda: platform_state(ops_platform))
    time.sleep(1.2)  # the service's admission count may be up to 1 s old


def service_log(platform) -> list[dict]:
    return [e for e in json_lines(platform.log()) if e.get("logger", "").startswith(("skriptoteket", "tornado"))]


def db(platform):
    return sa.create_engine(platform.postgres.url("skriptoteket"))


def metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_health_covers_database_and_blob_store(ops_platform):
    body = httpx.get(ops_platform.service_url + "/api/v1/health").json()
    assert body["status"] == "ok" and body["db"] == "ok" and body["blobs"] == "ok"


def test_metrics_need_the_scraper_token_or_an_admin(ops_platform, users):
    url = ops_platform.service_url + "/metrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"token {users['teach']}"}).status_code == 403
    scraped = httpx.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert scraped.status_code == 200 and "skriptoteket_http_requests_total" in scraped.text
    assert httpx.get(url, headers={"Authorization": f"token {users['admin']}"}).status_code == 200
    # the hub's own metrics, with the same token (a hub service token with read:metrics only)
    hub = ops_platform.url + "/hub/metrics"
    assert httpx.get(hub).status_code in (401, 403)
    assert httpx.get(hub, headers={"Authorization": f"token {METRICS_TOKEN}"}).status_code == 200


def test_a_run_is_counted_timed_and_logged_with_its_correlation_id(ops_platform, users):
    api = Api(ops_platform, users["teach"])
    scrape = lambda: httpx.get(ops_platform.service_url + "/metrics",  # noqa: E731
                               headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    before = scrape()
    correlation = "ops-" + uuid.uuid4().hex[:12]
    created, finished = api.run("noop", correlation, queue_ms=40, exec_ms=250)
    assert created.status_code == 201 and finished.status_code == 200
    assert created.headers["X-Correlation-ID"] == correlation
    time.sleep(5.5)  # the database feed refreshes at most every 5 s
    after = scrape()
    assert metric(after, "skriptoteket_runs_total", tool="noop", status="succeeded", context="production") == \
        metric(before, "skriptoteket_runs_total", tool="noop", status="succeeded", context="production") + 1
    assert metric(after, "skriptoteket_runner_queue_wait_seconds_count") >= 1
    assert metric(after, "skriptoteket_runner_exec_seconds_sum") >= 0.25
    assert metric(after, "skriptoteket_run_duration_seconds_count", context="production") >= 1
    assert metric(after, "skriptoteket_http_requests_total", route="RunsHandler", method="POST", status="201") >= 1
    assert metric(after, "skriptoteket_sessions") >= 1
    lines = [e for e in service_log(ops_platform) if e.get("correlation_id") == correlation]
    assert {(e["method"], e["status"]) for e in lines} >= {("POST", 201), ("POST", 200)}
    for entry in lines:
        assert entry["user"] == "teach" and entry["duration_ms"] >= 0 and entry["time"] and entry["level"] == "info"
        assert entry["path"].startswith("/services/skriptoteket/api/v1/runs")


def test_secrets_never_reach_the_log(ops_platform, users):
    token = users["teach"]
    httpx.get(ops_platform.service_url + f"/api/v1/me?token={token}&x=1",
              headers={"Authorization": f"token {token}"})
    httpx.get(ops_platform.service_url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    time.sleep(0.5)
    service_lines = "\n".join(str(e) for e in service_log(ops_platform))
    assert "/api/v1/me?token=%5Bredacted%5D&x=1" in service_lines or "token=[redacted]" in service_lines
    assert token not in service_lines and METRICS_TOKEN not in service_lines
    # the formatter's patterns (any message, not only request lines)
    assert token not in redact(f"Authorization: token {token}")
    assert "s3cret" not in redact("postgresql+psycopg://skr:s3cret@127.0.0.1:5433/db")
    assert "abc123" not in redact_path("/hub/api/oauth2/authorize?code=abc123&state=abc123")


def test_correlation_id_from_the_page_kernel_through_the_service(ops_platform, users, browser):
    """A run in Chromium: the Voila kernel's client sends one id for the run's calls, the service logs it and
    echoes it back, the kernel logs the echo."""
    context = browser.new_context()
    page = login(context, ops_platform.url, "teach", ops_platform.passwords["teach"])
    try:
        page.goto(f"{ops_platform.url}/hub/user-redirect/?tool=noop")
        wait_page(page, APP_READY, 180_000, ops_platform)
        page.click("button.skr-run-button")
        wait_page(page, ".skr-app.skr-done-1", 120_000, ops_platform, "attached")
    finally:
        context.close()
    kernel_lines = re.findall(r"service POST runs -> 201 in \d+ ms \[correlation ([0-9a-f]{32})\]", ops_platform.log())
    assert kernel_lines, "the tool app's client logged no run creation"
    correlation = kernel_lines[-1]
    assert re.search(rf"service POST runs/[0-9a-f-]+/result -> 200 in \d+ ms \[correlation {correlation}\]",
                     ops_platform.log())
    served = [e for e in service_log(ops_platform) if e.get("correlation_id") == correlation]
    assert {e["path"].split("?")[0].rsplit("/", 1)[-1] for e in served} >= {"runs", "result"}


def test_too_many_running_runs_is_503_busy(ops_platform, users):
    """max_running_runs = 3: runs beyond that are refused at once with the envelope and Retry-After."""
    api = Api(ops_platform, users["teach"])
    answers = []
    for _ in range(6):
        answer = api.call("POST", "runs", json={"tool": "noop", "context": "production", "inputs": {}})
        answers.append(answer)
        if answer.status_code == 503:
            break
    busy = answers[-1]
    assert busy.status_code == 503, [a.status_code for a in answers]
    assert busy.json()["error"]["code"] == "busy" and "busy" in busy.json()["error"]["message"].lower()
    assert busy.headers["Retry-After"] == "5" and busy.json()["correlation_id"]
    # the running runs pass their deadline (6 s + 3 s grace), the sweep fails them, and runs are admitted again
    wait_for(lambda: api.call("POST", "runs", json={"tool": "noop", "context": "production", "inputs": {}})
             .status_code == 201, 40, 1, "admission after the deadline sweep")


def test_hub_starts_the_retention_service_and_the_culler(ops_platform, users):
    services = httpx.get(ops_platform.url + "/hub/api/services", headers={"Authorization": f"token {users['admin']}"}).json()
    assert {"skriptoteket", "skriptoteket-retention", "idle-culler"} <= set(services)
    wait_for(lambda: "Retention pass in" in ops_platform.log(), 60, 1, "a retention pass")


def test_server_killed_mid_run_then_the_user_starts_again(ops_platform, users, browser):
    engine = db(ops_platform)
    context = browser.new_context()
    page = login(context, ops_platform.url, "teach", ops_platform.passwords["teach"])
    try:
        page.goto(f"{ops_platform.url}/hub/user-redirect/?tool=slow")
        wait_page(page, APP_READY, 180_000, ops_platform)
        page.click("button.skr-run-button")

        def running():
            with engine.connect() as conn:
                return conn.execute(sa.select(t.runs.c.id).join(t.tools, t.tools.c.id == t.runs.c.tool_id)
                                    .where(t.tools.c.slug == "slow", t.runs.c.status == "running")).scalar()

        run_id = wait_for(running, 120, 0.3, "the slow run to start",
                          describe=lambda: platform_state(ops_platform, page))
        server = user_server_process(ops_platform, "teach")
        assert server is not None
        for child in server.children(recursive=True):
            child.kill()
        server.kill()
        t0 = time.monotonic()

        def status():
            with engine.connect() as conn:
                return conn.execute(sa.select(t.runs.c.status, t.runs.c.error_summary)
                                    .where(t.runs.c.id == run_id)).one()

        final = wait_for(lambda: status() if status()[0] != "running" else None, 60, 0.5, "the run to be failed")
        assert final[0] == "failed" and "never completed" in final[1]
        assert time.monotonic() - t0 < 30  # 6 s limit + 3 s grace + 1 s sweep, from the request
        # the teacher opens the tool again. Until the hub's next poll of the spawner (Spawner.poll_interval) the
        # proxy answers 503 with a page that tries again every 10 s; then the link starts a new server
        page.goto(f"{ops_platform.url}/hub/user-redirect/?tool=noop")
        wait_page(page, ".skr-app .skr-title", 180_000, ops_platform)
        page.click("button.skr-run-button")
        wait_page(page, ".skr-app.skr-done-1", 120_000, ops_platform, "attached")
    finally:
        context.close()
        engine.dispose()


def test_postgres_restart_under_load(ops_platform, users):
    """Requests keep coming while Postgres restarts: each answers 2xx or a clean 503 envelope, never a 500;
    the service recovers by itself; every run whose result was acknowledged is still there."""
    api_tokens = [users["teach"]]
    statuses: list[int] = []
    acknowledged: list[str] = []
    stop = threading.Event()

    def load():
        api = Api(ops_platform, api_tokens[0])
        while not stop.is_set():
            try:
                created, finished = api.run("noop")
            except httpx.HTTPError:
                statuses.append(-1)
                continue
            statuses.append(created.status_code)
            if finished is not None:
                statuses.append(finished.status_code)
                if finished.status_code == 200:
                    acknowledged.append(finished.json()["run"]["id"])
                    assert created.json()["run"]["id"] == finished.json()["run"]["id"]
            if created.status_code == 503:
                assert created.json()["error"]["code"] in ("db_unavailable", "busy")
            time.sleep(0.05)

    workers = [threading.Thread(target=load) for _ in range(3)]
    for w in workers:
        w.start()
    time.sleep(3)
    ops_platform.postgres.stop(mode="fast")
    time.sleep(4)
    ops_platform.postgres.start()
    restarted = len(statuses)
    wait_for(lambda: 200 in statuses[restarted:], 60, 0.5, "a successful run after the restart")
    time.sleep(2)
    stop.set()
    for w in workers:
        w.join(60)
    assert 503 in statuses, "the outage was not seen"
    assert set(statuses) <= {200, 201, 503, 409}, sorted(set(statuses))
    engine = db(ops_platform)
    try:
        with engine.connect() as conn:
            stored = set(str(r) for r in conn.execute(sa.select(t.runs.c.id).where(
                t.runs.c.id.in_(acknowledged), t.runs.c.status == "succeeded")).scalars())
    finally:
        engine.dispose()
    assert stored == set(acknowledged) and len(acknowledged) > 5


def test_service_killed_the_hub_restarts_it_and_nothing_is_lost(ops_platform, users):
    engine = db(ops_platform)
    with engine.connect() as conn:
        runs_before = set(conn.execute(sa.select(t.runs.c.id)).scalars())
        sessions_before = set(conn.execute(sa.select(t.sessions.c.id)).scalars())
    engine.dispose()
    service = service_process(ops_platform)
    assert service is not None
    service.send_signal(signal.SIGKILL)
    wait_for(lambda: not service.is_running() or service.status() == "zombie", 10, 0.2, "the service to die")
    # meanwhile: a clean answer from the proxy/hub, never a hang
    answer = httpx.get(ops_platform.service_url + "/api/v1/health", timeout=10)
    assert answer.status_code in (200, 502, 503, 404)
    t0 = time.monotonic()
    wait_for(lambda: httpx.get(ops_platform.service_url + "/api/v1/health", timeout=5).status_code == 200, 120, 1,
             "the hub to restart the service")
    restart_s = time.monotonic() - t0
    api = Api(ops_platform, users["teach"])
    created, finished = api.run("noop")
    assert created.status_code == 201 and finished.status_code == 200
    engine = db(ops_platform)
    with engine.connect() as conn:
        runs_after = set(conn.execute(sa.select(t.runs.c.id)).scalars())
        assert runs_before < runs_after and len(runs_after) == len(runs_before) + 1
        assert sessions_before <= set(conn.execute(sa.select(t.sessions.c.id)).scalars())
    engine.dispose()
    print(f"service restarted by the hub after {restart_s:.1f} s")


def test_full_blob_store_refuses_uploads_cleanly(ops_platform, users):
    if not ops_platform.blob_tmpfs:
        pytest.skip("needs root to mount a 5 MiB tmpfs as the blob store")
    api = Api(ops_platform, users["teach"])
    blobs = ops_platform.home / "blobs"
    # a file that fits, stored before the disk fills
    small = b"a,b\n1,2\n" * 1000
    created = api.call("POST", "runs", json={"tool": "upload", "context": "production", "inputs": {},
                                             "files": [{"name": "small.csv", "bytes": len(small)}]})
    assert created.status_code == 201, created.text
    run_id = created.json()["run"]["id"]
    assert api.call("PUT", f"runs/{run_id}/inputs/0", content=small).status_code == 200
    # the disk fills up (something else on it); a 3 MiB upload no longer fits
    (blobs / "filler").write_bytes(b"\0" * (3 * 1024 * 1024))
    big = b"x" * (3 * 1024 * 1024)
    created = api.call("POST", "runs", json={"tool": "upload", "context": "production", "inputs": {},
                                             "files": [{"name": "big.bin", "bytes": len(big)}]})
    refused = api.call("PUT", f"runs/{created.json()['run']['id']}/inputs/0", content=big)
    assert refused.status_code == 507
    assert refused.json()["error"]["code"] == "storage_full" and "full" in refused.json()["error"]["message"]
    assert not [p for p in blobs.rglob(".tmp-*")], "a partial blob was left behind"
    assert (blobs / "runs" / run_id / "inputs" / "0").read_bytes() == small  # nothing corrupted
    (blobs / "filler").unlink()
    assert api.call("PUT", f"runs/{created.json()['run']['id']}/inputs/0", content=big).status_code == 200


def test_a_stopped_server_restarts_when_the_teacher_opens_a_tool_link(ops_platform, users, browser):
    """What the idle culler does (DELETE the server through the hub's API), then the teacher's tool link."""
    admin = {"Authorization": f"token {users['admin']}"}
    context = browser.new_context()
    page = login(context, ops_platform.url, "teach", ops_platform.passwords["teach"])
    try:
        page.goto(f"{ops_platform.url}/hub/user-redirect/?tool=noop")
        wait_page(page, ".skr-app .skr-title", 180_000, ops_platform)
        stopped = httpx.delete(ops_platform.url + "/hub/api/users/teach/server", headers=admin, timeout=60)
        assert stopped.status_code in (202, 204)
        wait_for(lambda: not httpx.get(ops_platform.url + "/hub/api/users/teach", headers=admin)
                 .json()["servers"], 60, 0.5, "the server to stop")
        t0 = time.monotonic()
        page.goto(f"{ops_platform.url}/hub/user-redirect/?tool=noop")
        wait_page(page, ".skr-app .skr-title", 180_000, ops_platform)
        print(f"tool link to a running tool page after a stop: {time.monotonic() - t0:.1f} s")
        page.click("button.skr-run-button")
        wait_page(page, ".skr-app.skr-done-1", 120_000, ops_platform, "attached")
    finally:
        context.close()
