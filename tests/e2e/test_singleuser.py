"""End to end: the real jupyterhub + configurable-http-proxy + Postgres, with runner_kernel.singleuser
(standalone Voila with preheated kernels) as every user's server, driven over HTTP like a browser would.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import psutil
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from skriptoteket_ext.pgserver import free_port

from ..conftest import memory_contains, process_memory
from .conftest import wait_for

pytestmark = [pytest.mark.hub, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "singleuser_fixtures"
VENV_BIN = Path(sys.executable).parent
CHP = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
PASSWORD = "pw-" + secrets.token_hex(8)
TOOL_QUERY = "/user/alice/?tool=demo-tool"




def _get_or_none(client: httpx.Client, url: str, **kw):
    try:
        return client.get(url, **kw)
    except httpx.TransportError:
        return None


@pytest.fixture(scope="module")
def hub(pg_server, tmp_path_factory):
    if not CHP.exists():
        pytest.skip(f"configurable-http-proxy not installed at {CHP} (npm install configurable-http-proxy@5.3.0)")
    workdir = tmp_path_factory.mktemp("hub")
    db = "hub_su_" + secrets.token_hex(4)
    pg_server.create_database(db)
    port = free_port()
    env = {
        **os.environ,
        "SKT_HUB_PORT": str(port),
        "SKT_HUB_API_PORT": str(free_port()),
        "SKT_PROXY_API_PORT": str(free_port()),
        "SKT_HUB_DB_URL": pg_server.url(db),
        "SKT_HUB_DIR": str(workdir),
        "SKT_HUB_PASSWORD": PASSWORD,
        "SKT_CHP": str(CHP),
        "SKT_PYTHON": sys.executable,
        "SKT_NOTEBOOK": str(FIXTURES / "query_demo.ipynb"),
        "SKT_USER_EXTRA_ARGS": json.dumps({"bob": ["--ScrubbedKernelManager.spare_page_kernel=False"]}),
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
    }
    log_path = workdir / "hub.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [str(VENV_BIN / "jupyterhub"), "-f", str(FIXTURES / "jupyterhub_config.py")],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    started: set[int] = set()
    try:
        with httpx.Client(timeout=5) as c:
            t0 = time.monotonic()
            wait_for(
                lambda: proc.poll() is None and (r := _get_or_none(c, base + "/hub/api/")) and r.status_code == 200
                or (proc.poll() is not None and pytest.fail("hub exited:\n" + log_path.read_text()[-4000:])),
                60,
                interval=0.1, message="the hub",
            )
            print(f"\nhub up in {time.monotonic() - t0:.2f} s")
        yield {"base": base, "proc": proc, "log": log_path, "started": started}
    finally:
        # every process the hub started (proxy, user servers, their kernels), then the hub, then survivors
        try:
            started.update(p.pid for p in psutil.Process(proc.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            pass
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        for pid in started:
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
        log.close()
        if os.environ.get("SKT_SHOW_HUB_LOG"):
            print(log_path.read_text())


def _login(base: str, name: str) -> httpx.Client:
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=60)
    form = client.get("/hub/login")
    xsrf = re.search(r'name="_xsrf"\s+value="([^"]+)"', form.text).group(1)
    r = client.post("/hub/login", data={"username": name, "password": PASSWORD, "_xsrf": xsrf})
    assert r.status_code == 302, r.text[:500]
    return client


def _remember_children(hub):
    try:
        hub["started"].update(p.pid for p in psutil.Process(hub["proc"].pid).children(recursive=True))
    except psutil.NoSuchProcess:
        pass


def _wait_warm(client: httpx.Client, timeout: float = 60, user: str = "alice") -> float:
    t0 = time.monotonic()
    wait_for(
        lambda: (r := _get_or_none(client, f"/user/{user}/ready?warm=1")) is not None and r.status_code == 200,
        timeout,
        interval=0.05, message="a warm kernel",
    )
    return time.monotonic() - t0


def _page(client: httpx.Client, url: str = TOOL_QUERY, **kw) -> tuple[httpx.Response, float]:
    t0 = time.monotonic()
    r = client.get(url, follow_redirects=True, **kw)
    return r, time.monotonic() - t0


def _printed(html: str, key: str) -> str | None:
    m = re.search(re.escape(key) + r"=([^\s<]*)", html)
    return m.group(1) if m else None


@pytest.fixture(scope="module")
def alice(hub):
    """alice, logged in, with her server spawned (timed) and its pool warm."""
    client = _login(hub["base"], "alice")
    t0 = time.monotonic()
    r = client.get("/hub/spawn")
    assert r.status_code in (302, 303), r.text[:500]
    wait_for(
        lambda: (r := _get_or_none(client, "/user/alice/ready")) is not None
        and r.status_code == 200
        and r.headers.get("content-type", "").startswith("application/json"),
        90,
        interval=0.05, message="alice's server",
    )
    spawn = time.monotonic() - t0
    _remember_children(hub)
    warm = _wait_warm(client)
    listening = re.findall(r"listening after ([\d.]+) s", hub["log"].read_text())
    print(
        f"\nspawn request -> ready URL 200: {spawn:.2f} s; then pool warm after {warm:.2f} s more; "
        f"server process start -> listening: {listening[-1] if listening else '?'} s"
    )
    client.hub_spawn_seconds = spawn
    yield client
    client.close()


def test_page_renders_request_in_preheated_kernel(alice, hub):
    # the first visit goes through the hub's OAuth (authorize -> oauth_callback -> page); the pool is warm
    r, seconds = _page(alice)
    _remember_children(hub)
    print(f"\nfirst page (OAuth round trip + warm kernel): {seconds * 1000:.0f} ms, t0={time.time() - seconds:.3f}")
    print(re.findall(r"T_[A-Z0-9]+=[0-9.]+", r.text))
    assert r.status_code == 200, r.text[:1000]
    assert str(r.url).endswith(TOOL_QUERY)
    assert [urlparse(str(h.url)).path for h in r.history][:2] == ["/user/alice/", "/hub/api/oauth2/authorize"]
    assert "voila" in r.text.lower()
    html = r.text
    assert _printed(html, "TOOL") == "demo-tool"
    assert _printed(html, "SCRIPT_NAME") == "/user/alice/"
    assert _printed(html, "PREHEATED") == "True"
    assert _printed(html, "HUB_TOKEN_IN_ENV") == "False"
    assert _printed(html, "JPY_TOKEN_IN_ENV") == "False"
    assert _printed(html, "USER_TOKEN_PRESENT") == "True"
    assert _printed(html, "USER_TOKEN_OWNER") == "alice"
    assert "read:servers!user=alice" in (_printed(html, "USER_TOKEN_SCOPES") or "")
    assert r.headers.get("X-JupyterHub-Version")


def test_warm_drained_and_cold_page_times(alice):
    """warm: a pooled kernel already ran the notebook up to wait_for_request();
    drained: the pool was just emptied, so the request waits for the refill kernel (still preheated);
    cold: a request Voila cannot serve from the pool (another theme) starts a kernel for itself."""
    warm, drained, cold = [], [], []
    for _ in range(3):
        _wait_warm(alice)
        r, seconds = _page(alice, "/user/alice/?tool=warm-tool")
        assert r.status_code == 200 and not r.history
        assert _printed(r.text, "TOOL") == "warm-tool"
        assert _printed(r.text, "PREHEATED") == "True"
        warm.append(seconds)

        r, seconds = _page(alice, "/user/alice/?tool=drained-tool")
        assert r.status_code == 200
        assert _printed(r.text, "TOOL") == "drained-tool"
        assert _printed(r.text, "PREHEATED") == "True"
        drained.append(seconds)

        r, seconds = _page(alice, "/user/alice/?tool=cold-tool&theme=dark")
        assert r.status_code == 200
        assert _printed(r.text, "TOOL") == "cold-tool"
        assert _printed(r.text, "PREHEATED") == "False"
        # the cold path builds the kernel's environment from the request too: same guarantees
        assert _printed(r.text, "HUB_TOKEN_IN_ENV") == "False"
        assert _printed(r.text, "JPY_TOKEN_IN_ENV") == "False"
        assert _printed(r.text, "USER_TOKEN_OWNER") == "alice"
        cold.append(seconds)

    def ms(xs):
        return ", ".join(f"{x * 1000:.0f}" for x in xs)

    print(f"\npage times (ms): warm {ms(warm)}; drained {ms(drained)}; cold {ms(cold)}")
    assert sorted(warm)[1] < sorted(drained)[1]
    assert sorted(warm)[1] < sorted(cold)[1]
    assert min(warm) < 1.0


def test_client_cannot_forge_user_token(alice):
    _wait_warm(alice)
    r, _ = _page(alice, "/user/alice/?tool=x", headers={"Skriptoteket-User-Token": "forged"})
    assert r.status_code == 200
    assert _printed(r.text, "USER_TOKEN_OWNER") == "alice"


def test_anonymous_is_sent_to_hub_login(alice, hub):
    with httpx.Client(base_url=hub["base"], timeout=30) as anon:
        r = anon.get(TOOL_QUERY)
        assert r.status_code == 302
        assert urlparse(r.headers["location"]).path == "/hub/api/oauth2/authorize"
        r = anon.get(TOOL_QUERY, follow_redirects=True)
        assert urlparse(str(r.url)).path == "/hub/login"
        assert "TOOL=" not in r.text


def test_other_user_is_forbidden(alice, hub):
    bob = _login(hub["base"], "bob")
    try:
        r = bob.get(TOOL_QUERY, follow_redirects=True)
        assert r.status_code == 403
        assert "TOOL=" not in r.text
    finally:
        bob.close()


def test_readiness_url_is_cheap_and_public(alice, hub):
    with httpx.Client(base_url=hub["base"], timeout=30) as anon:
        t0 = time.monotonic()
        r = anon.get("/user/alice/ready")
        seconds = time.monotonic() - t0
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["pool_size"] == 1
    print(f"\nready URL through the proxy: {seconds * 1000:.1f} ms -> {body}")


def test_versioned_bundles_are_cacheable_and_the_page_is_not(alice):
    """The widget extensions' bundles have content-hashed names: the browser keeps them instead of asking again
    on every page load (Voila marks them ``no-cache``). The page itself (it names its kernel) is never stored."""
    _wait_warm(alice)
    r, _ = _page(alice, "/user/alice/?tool=cache")
    assert r.status_code == 200
    assert "no-store" in r.headers.get("Cache-Control", "")
    config = json.loads(re.search(r'<script id="jupyter-config-data"[^>]*>(.*?)</script>', r.text, re.DOTALL).group(1))
    ext = next(e for e in config["federated_extensions"] if e["name"] == "@jupyter-widgets/jupyterlab-manager")
    base = f"{config['fullLabextensionsUrl']}/{ext['name']}"
    bundle = alice.get(f"{base}/{ext['load']}")
    assert bundle.status_code == 200 and bundle.content
    assert bundle.headers.get("Cache-Control") == "public, max-age=31536000, immutable"
    # an unversioned file there is still revalidated on every use
    meta = alice.get(f"{base}/package.json")
    assert meta.status_code == 200 and meta.headers.get("Cache-Control") == "no-cache"


def _ws_url(hub, path: str) -> str:
    return "ws" + hub["base"][len("http") :] + path


def _cookie_header(client: httpx.Client) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar if c.path.startswith("/user/alice"))


def test_owner_kernel_websocket_upgrades(alice, hub):
    _wait_warm(alice)
    r, _ = _page(alice, "/user/alice/?tool=ws")
    kernel_id = re.search(r'"kernelId":\s*"([0-9a-f-]{36})"', r.text).group(1)
    path = f"/user/alice/api/kernels/{kernel_id}/channels"
    with ws_connect(_ws_url(hub, path), additional_headers={"Cookie": _cookie_header(alice)}) as ws:
        assert ws.response.status_code == 101
    # without the owner's cookie: refused
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(_ws_url(hub, path)).close()
    assert refused.value.response.status_code in (302, 403)
    # Voila's request-info channel (it carries the user's token) is not served on the proxied port
    with pytest.raises(InvalidStatus):
        ws_connect(
            _ws_url(hub, f"/user/alice/voila/query/{kernel_id}"),
            additional_headers={"Cookie": _cookie_header(alice)},
        ).close()


def _kernel_msg(msg_type: str, content: dict) -> str:
    header = {
        "msg_id": secrets.token_hex(8),
        "msg_type": msg_type,
        "session": "e2e",
        "username": "alice",
        "date": "2026-01-01T00:00:00Z",
        "version": "5.3",
    }
    return json.dumps(
        {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell", "buffers": []}
    )


def test_large_widget_message_fits_through_proxy_and_server(alice, hub):
    """A 20 MiB upload as base64 in a comm message (~27 MiB) must not drop the socket (tornado's default is 10 MiB)."""
    _wait_warm(alice)
    r, _ = _page(alice, "/user/alice/?tool=upload")
    kernel_id = re.search(r'"kernelId":\s*"([0-9a-f-]{36})"', r.text).group(1)
    path = f"/user/alice/api/kernels/{kernel_id}/channels"
    payload = "A" * (20 * 1024 * 1024 * 4 // 3)
    with ws_connect(
        _ws_url(hub, path), additional_headers={"Cookie": _cookie_header(alice)}, max_size=None, open_timeout=30
    ) as ws:
        t0 = time.monotonic()
        ws.send(_kernel_msg("comm_msg", {"comm_id": "no-such-comm", "data": {"b64": payload}}))
        ws.send(_kernel_msg("kernel_info_request", {}))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv(timeout=60))
            if msg.get("msg_type") == "kernel_info_reply" or msg.get("header", {}).get("msg_type") == "kernel_info_reply":
                break
        else:
            pytest.fail("no kernel_info_reply after the large message")
        print(f"\n{len(payload) / 2**20:.1f} MiB comm message delivered, socket alive ({time.monotonic() - t0:.2f} s)")


def test_kernel_culling_is_on(alice, hub):
    assert "Culling kernels with idle durations > 600 seconds at 60 second intervals" in hub["log"].read_text()


def test_activity_reaches_the_hub(alice, hub):
    def server_activity():
        r = alice.get("/hub/api/users/alice")
        assert r.status_code == 200, r.text
        return r.json()["servers"][""]["last_activity"]

    before = server_activity()
    time.sleep(1.1)
    _page(alice, "/user/alice/?tool=activity")
    # the test hub config runs the server with --activity-interval=2
    after = wait_for(lambda: (a := server_activity()) != before and a, 15, 0.1, "an activity report")
    print(f"\nhub last_activity {before} -> {after}")
    assert after > before


def test_the_server_never_runs_the_hub_database(alice, hub):
    """runner_kernel._standins defers SQLAlchemy (the hub's database, imported through jupyterhub.scopes): after
    pages, OAuth, activity reports and websockets above, the server process has still not mapped SQLAlchemy's
    compiled engine and SQL modules, which running the package loads. zmq's is the control: that one is in use."""
    _page(alice)
    _remember_children(hub)
    servers = [p for p in psutil.Process(hub["proc"].pid).children(recursive=True)
               if "runner_kernel.singleuser" in " ".join(p.cmdline()) and p.environ().get("JUPYTERHUB_USER") == "alice"]
    assert len(servers) == 1, servers
    mapped = {line.split()[-1] for line in Path(f"/proc/{servers[0].pid}/maps").read_text().splitlines()
              if line.rstrip().endswith(".so")}
    assert any("/zmq/backend/" in path for path in mapped), sorted(mapped)[:20]
    assert not [path for path in mapped if "/sqlalchemy/engine/" in path or "/sqlalchemy/sql/" in path]
    # nor aiohttp: HubAuth's OAuth requests (every page above logged in through them) go over tornado's client
    assert not [path for path in mapped if "/aiohttp/" in path or "/pycares/" in path]
    # nor lxml: BeautifulSoup is imported without its lxml tree builder (nbconvert parses with html.parser)
    assert not [path for path in mapped if "/lxml/" in path]


def test_page_kernels_are_forked_and_the_viewers_token_stays_out_of_the_fork_server(alice, hub):
    """Page kernels (pooled, and the cold path's, whose start-up environment carries the viewer's token) are
    children of the runner's fork server (runner_kernel/page_kernels.py), which never holds that token: every
    tool kernel is forked from it later."""
    if os.geteuid() != 0:
        pytest.skip("reads process memory through /proc/<pid>/mem (root)")
    _wait_warm(alice)
    r, _ = _page(alice, "/user/alice/?tool=fork-cold&theme=dark")  # a cold kernel: the token in its start env
    assert r.status_code == 200 and _printed(r.text, "USER_TOKEN_OWNER") == "alice"
    _remember_children(hub)
    server = next(p for p in psutil.Process(hub["proc"].pid).children(recursive=True)
                  if "runner_kernel.singleuser" in " ".join(p.cmdline()))
    zygote = next(p for p in server.children() if "_zygote.py" in " ".join(p.cmdline()))
    pages = [p for p in zygote.children() if p.name() == "skr-page-kernel"]
    assert len(pages) >= 2, [(p.pid, p.name()) for p in zygote.children()]  # the pool's and the pages'
    assert not [p for p in server.children() if "ipykernel_launcher" in " ".join(p.cmdline())]  # none exec'd
    tokens = set()
    for page in pages:
        for region in process_memory(page.pid, writable_only=True):
            tokens.update(re.findall(rb"HTTP_SKRIPTOTEKET_USER_TOKEN=([0-9A-Za-z_]{16,})", region))
    assert tokens, "no page kernel holds the viewer's token (the scan must find it where it is)"
    for token in tokens:
        assert not memory_contains(zygote.pid, token)


def _page_kernel_id(html: str) -> str:
    return re.search(r'"kernelId": "([0-9a-f-]{36})"', html).group(1)


def test_without_a_spare_page_kernel_the_pool_refills_when_the_page_is_left(hub):
    """Docker mode's setting (ScrubbedKernelManager.spare_page_kernel=False): while a tool page is open there is
    no second preheated kernel; a second page meanwhile takes Voila's unheated path; leaving the pages (the
    front end's beforeunload shutdown) refills the pool."""
    client = _login(hub["base"], "bob")  # SKT_USER_EXTRA_ARGS gives bob the setting
    assert client.get("/hub/spawn").status_code in (302, 303)
    _wait_warm(client, 90, user="bob")
    _remember_children(hub)

    def state():
        return client.get("/user/bob/ready").json()

    first, _ = _page(client, "/user/bob/?tool=first")
    assert first.status_code == 200 and _printed(first.text, "PREHEATED") == "True"
    time.sleep(4)  # the pool's fill_delay (1.5 s) and a forked kernel's start have passed
    assert state()["warm_kernels"] == 0
    second, _ = _page(client, "/user/bob/?tool=second")
    assert second.status_code == 200 and _printed(second.text, "TOOL") == "second"
    assert _printed(second.text, "PREHEATED") == "False"
    assert state()["warm_kernels"] == 0

    xsrf = client.cookies.get("_xsrf", path="/user/bob/") or client.cookies.get("_xsrf")
    for page in (first, second):
        kernel = _page_kernel_id(page.text)
        r = client.post(f"/user/bob/voila/api/shutdown/{kernel}", data={"_xsrf": xsrf})
        assert r.status_code == 204, r.text[:300]
        if page is first:  # the other page is still open
            time.sleep(2)
            assert state()["warm_kernels"] == 0
    assert _wait_warm(client, 30, user="bob") < 30

    # Leaving a page while the next one is asked for at once (a reload, or the next tool in the same tab): the
    # front end's shutdown beacon goes first and the next page does not wait for it. The refill has started by
    # the time that page asks, so it is served preheated, and no spare is kept while it is open.
    third, _ = _page(client, "/user/bob/?tool=third")
    assert _printed(third.text, "PREHEATED") == "True"
    time.sleep(2)
    assert state()["warm_kernels"] == 0
    import threading

    beacon = threading.Thread(target=client.post, args=(f"/user/bob/voila/api/shutdown/{_page_kernel_id(third.text)}",),
                              kwargs={"data": {"_xsrf": xsrf}})
    beacon.start()
    time.sleep(0.02)
    reloaded, _ = _page(client, "/user/bob/?tool=third")
    beacon.join()
    assert reloaded.status_code == 200 and _printed(reloaded.text, "PREHEATED") == "True"
    time.sleep(4)
    assert state()["warm_kernels"] == 0


def test_the_first_page_of_a_cold_server_waits_for_the_pools_kernel(hub):
    """A page asked for as soon as a new server answers, before its pool's kernel has started: it is served from
    that kernel, not from a second kernel started beside it (Voila's unheated path)."""
    client = _login(hub["base"], "carol")
    assert client.get("/hub/spawn").status_code in (302, 303)
    wait_for(lambda: (r := _get_or_none(client, "/user/carol/ready")) is not None and r.status_code == 200
             and r.headers.get("content-type", "").startswith("application/json"), 90, interval=0.02,
             message="carol's server")
    if client.get("/user/carol/ready").json()["warm_kernels"]:
        pytest.skip("the pool's kernel was ready before the first request (nothing to wait for)")
    r, _ = _page(client, "/user/carol/?tool=first-page")
    _remember_children(hub)
    assert r.status_code == 200 and _printed(r.text, "TOOL") == "first-page"
    assert _printed(r.text, "PREHEATED") == "True"
