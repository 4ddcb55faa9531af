"""JupyterHub configuration for Skriptoteket.

Settings come from environment variables so that the same file serves the embedded demo (``skriptoteket up``),
the tests and the production compose file:

- ``SKRIPTOTEKET_HUB_DB_URL``   the hub's own Postgres database (required)
- ``SKRIPTOTEKET_DB_URL``       the service's Postgres database (required; schema ``skriptoteket``)
- ``SKRIPTOTEKET_HOME``         runtime directory: secrets, blobs, demo users' homes (default ``./var``)
- ``SKRIPTOTEKET_SPAWNER``      ``demo`` (local processes, no isolation) or ``docker``
- ``SKRIPTOTEKET_BIND_URL``     public URL the proxy listens on (default ``http://127.0.0.1:8000``)
- ``SKRIPTOTEKET_ADMIN_USERS``  comma-separated bootstrap admins
- ``SKRIPTOTEKET_PROXY_CMD``    path to configurable-http-proxy (default: the project's node_modules)
- ``SKRIPTOTEKET_SERVICE_PORT`` the service's local port (default 10101)
- ``SKRIPTOTEKET_SERVICE_IP``   Docker mode: the service's address for containers (default: the network's gateway)
"""

import os
import sys
from pathlib import Path

from skriptoteket_ext import scopes
from skriptoteket_ext.hubauth import patch_native_authenticator

c = get_config()  # noqa: F821

here = Path(__file__).resolve().parent
root = here.parent
home = Path(os.environ.get("SKRIPTOTEKET_HOME", root / "var")).resolve()
secrets_dir = home / "secrets"
mode = os.environ.get("SKRIPTOTEKET_SPAWNER", "demo")

# --- the hub itself -------------------------------------------------------------------------------------------
c.JupyterHub.db_url = os.environ["SKRIPTOTEKET_HUB_DB_URL"]
c.JupyterHub.bind_url = os.environ.get("SKRIPTOTEKET_BIND_URL", "http://127.0.0.1:8000")
c.JupyterHub.cookie_secret_file = str(secrets_dir / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(home / "jupyterhub.pid")
c.JupyterHub.template_paths = [str(here / "templates")]
c.JupyterHub.default_url = "/services/skriptoteket/"
c.JupyterHub.hub_port = int(os.environ.get("SKRIPTOTEKET_HUB_PORT", "8081"))
c.JupyterHub.cleanup_servers = True
c.ConfigurableHTTPProxy.command = [
    os.environ.get("SKRIPTOTEKET_PROXY_CMD", str(root / "node_modules" / ".bin" / "configurable-http-proxy"))
]
c.ConfigurableHTTPProxy.api_url = os.environ.get("SKRIPTOTEKET_PROXY_API_URL", "http://127.0.0.1:8001")
c.ConfigurableHTTPProxy.auth_token = (secrets_dir / "proxy_auth_token").read_text().strip()

# --- identity: local accounts, sign-up approved by an admin, lockout after repeated failures ------------------
patch_native_authenticator()
c.JupyterHub.authenticator_class = "native"
c.NativeAuthenticator.open_signup = False
c.NativeAuthenticator.minimum_password_length = 10
c.NativeAuthenticator.check_common_password = True
c.NativeAuthenticator.allowed_failed_logins = 5
c.NativeAuthenticator.seconds_before_next_try = 600
c.Authenticator.allow_all = True  # anyone the authenticator accepts (= approved) may log in
admins = {name for name in os.environ.get("SKRIPTOTEKET_ADMIN_USERS", "").split(",") if name}
c.Authenticator.admin_users = admins

import nativeauthenticator  # noqa: E402

c.JupyterHub.template_paths.append(os.path.join(os.path.dirname(nativeauthenticator.__file__), "templates"))

# --- roles: every user is a teacher; groups authors/reviewers/admins carry the service's custom scopes ---------
c.JupyterHub.custom_scopes = scopes.CUSTOM_SCOPES
c.JupyterHub.load_groups = {group: {"users": sorted(admins) if group == "admins" else []} for group in scopes.GROUP_SCOPES}
c.JupyterHub.load_roles = [
    # Reaching the service at all is the teacher's permission.
    {"name": "user", "scopes": ["self", f"access:services!service={scopes.SERVICE_NAME}"]},
    *(
        {"name": f"skriptoteket-{group}", "description": f"Skriptoteket {group}", "scopes": group_scopes,
         "groups": [group]}
        for group, group_scopes in scopes.GROUP_SCOPES.items()
    ),
    # Members of the admins group administer the hub too (users, groups, sign-up approval).
    {"name": "admin", "groups": ["admins"]},
    # The service's own token: only what it needs unattended (look up user names for maintainers).
    {"name": "skriptoteket-service", "scopes": ["read:users:name", "read:groups:name"],
     "services": [scopes.SERVICE_NAME]},
    # The command line (`skriptoteket create-user`) manages users and group membership.
    # `skriptoteket seed` acts as the reviewer bot skriptoteket-bank with a short-lived token minted here.
    {"name": "skriptoteket-cli", "scopes": ["admin:users", "admin:groups", "list:users", "tokens!user=skriptoteket-bank"],
     "services": ["skriptoteket-cli"]},
]

# --- the Skriptoteket service ------------------------------------------------------------------------------
service_port = int(os.environ.get("SKRIPTOTEKET_SERVICE_PORT", "10101"))
service_env = {
    "SKRIPTOTEKET_DB_URL": os.environ["SKRIPTOTEKET_DB_URL"],
    "SKRIPTOTEKET_HOME": str(home),
    "SKRIPTOTEKET_COOKIE_SECRET_FILE": str(secrets_dir / "service_cookie_secret"),
    "SKRIPTOTEKET_LANGUAGE": os.environ.get("SKRIPTOTEKET_LANGUAGE", "en"),
    "PYTHONUNBUFFERED": "1",
}
# AI assistance (docs/ai.md): the service alone gets the endpoint, key and limits; user servers never do.
service_env.update({k: v for k, v in os.environ.items() if k.startswith("SKRIPTOTEKET_AI_")})
c.JupyterHub.services = [
    {
        "name": scopes.SERVICE_NAME,
        "display": True,
        "url": f"http://127.0.0.1:{service_port}",
        "command": [sys.executable, "-m", "skriptoteket_ext"],
        "cwd": str(home),
        "environment": service_env,
        "oauth_no_confirm": True,
        # Users' OAuth tokens for the service carry the service's custom scopes (those the user has).
        "oauth_client_allowed_scopes": list(scopes.CUSTOM_SCOPES),
    },
    {
        "name": "skriptoteket-cli",
        "api_token": (secrets_dir / "cli_token").read_text().strip(),
    },
    # Retention (docs/operations.md): expires artifacts, idle session files, snapshots, draft locks, leftover
    # inputs on a schedule. No URL, and its hub token has no scopes: it needs only the database and the blobs.
    {
        "name": "skriptoteket-retention",
        "command": [sys.executable, "-m", "skriptoteket_ext.retention_service"],
        "cwd": str(home),
        "environment": {k: service_env[k] for k in ("SKRIPTOTEKET_DB_URL", "SKRIPTOTEKET_HOME", "PYTHONUNBUFFERED")},
    },
]
# Metrics (docs/operations.md): with a token in secrets/metrics_token, Prometheus scrapes both the service's
# /services/skriptoteket/metrics (the service compares the token) and the hub's /hub/metrics (the token is a hub
# service token with only `read:metrics`). Without the file, only admins can read either.
service_env["SKRIPTOTEKET_METRICS_TOKEN_FILE"] = str(secrets_dir / "metrics_token")
if (secrets_dir / "metrics_token").exists():
    c.JupyterHub.services.append(
        {"name": "skriptoteket-metrics", "api_token": (secrets_dir / "metrics_token").read_text().strip()})
    c.JupyterHub.load_roles.append(
        {"name": "skriptoteket-metrics", "scopes": ["read:metrics"], "services": ["skriptoteket-metrics"]})
c.JupyterHub.authenticate_prometheus = True

# Idle culling (docs/operations.md): a teacher's server that has been idle for SKRIPTOTEKET_CULL_IDLE seconds
# (default 1 h), or has run for SKRIPTOTEKET_CULL_MAX_AGE seconds (default 12 h: stopped overnight), is stopped;
# the next tool link starts it again (implicit_spawn_seconds below). 0 turns the culler off. The one culler of
# every mode (hub_config/docker.py finds it here and adds none).
_cull_idle = int(os.environ.get("SKRIPTOTEKET_CULL_IDLE", "3600"))
if _cull_idle > 0:
    _cull_every = int(os.environ.get("SKRIPTOTEKET_CULL_EVERY", str(max(10, min(300, _cull_idle // 6)))))
    # The culler trusts the hub's last_activity. Its fresh source is the proxy (every request, and every websocket
    # frame from the browser: clicks, and the answers to the tool server's 30 s pings while a tool page is open),
    # which the hub reads only every last_activity_interval (JupyterHub's default 300 s; the tool server's own
    # report is as sparse). With a shorter timeout, teachers in the middle of their work were culled
    # (tests/e2e/test_culling.py): read it at least five times per timeout.
    c.JupyterHub.last_activity_interval = max(5, min(300, _cull_idle // 5))
    c.JupyterHub.services.append({
        "name": "idle-culler",
        "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={_cull_idle}",
                    f"--cull-every={_cull_every}", f"--max-age={int(os.environ.get('SKRIPTOTEKET_CULL_MAX_AGE', '43200'))}",
                    "--remove-named-servers=False"],
    })
    c.JupyterHub.load_roles.append({
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    })

# --- user servers --------------------------------------------------------------------------------------------
# Every user's server is the tool app: standalone Voila with preheated kernels (runner_kernel/singleuser.py),
# the tool app notebook, the Skriptoteket Voila template, and one warm tool-runner pool (docs/teacher-path.md).
# SKRIPTOTEKET_VOILA_POOL_SIZE / SKRIPTOTEKET_RUNNER_POOL_SIZE: preheated page kernels / warm tool kernels;
# SKRIPTOTEKET_UNHEATED_USERS: users whose server runs with neither (the benchmark's baseline).
tool_server_args = [
    f"--notebook={root / 'notebooks' / 'tool_app.ipynb'}",
    "--template=skriptoteket",
    f"--pool-size={int(os.environ.get('SKRIPTOTEKET_VOILA_POOL_SIZE', '1'))}",
    f"--runner-pool-size={int(os.environ.get('SKRIPTOTEKET_RUNNER_POOL_SIZE', '1'))}",
]
# What the page kernel may do with the viewer's OAuth token: call the service as that user (with the custom
# scopes the user has), nothing else. Tool code never sees the token (the runner scrubs its environment).
c.Spawner.oauth_client_allowed_scopes = [f"access:services!service={scopes.SERVICE_NAME}", *scopes.CUSTOM_SCOPES]
# The page kernel reaches the service directly (not through the public proxy URL).
c.Spawner.environment = {
    "SKRIPTOTEKET_SERVICE_API_URL": f"http://127.0.0.1:{service_port}/services/{scopes.SERVICE_NAME}/api/v1/",
}
# A tool link (/hub/user-redirect/?tool=<slug>) to a stopped server starts it after this delay, through the
# hub's progress page, instead of showing a "Launch server" button.
c.JupyterHub.implicit_spawn_seconds = 0.5
# How soon the hub notices a server that died (crashed, killed, OOM): until then its tool links show the proxy's
# 503 page (templates/503.html retries every 10 s). JupyterHub's default is 30 s; a poll is a pid check (local
# processes) or one container inspect (Docker).
c.Spawner.poll_interval = 10


def _tool_server_progress_mixin(base):
    """Spawn progress from the server's readiness URL (``{prefix}ready``), so the hub's progress page says
    what is happening instead of spinning."""
    import asyncio
    import json as _json

    from tornado.httpclient import AsyncHTTPClient

    cold_users = {u for u in os.environ.get("SKRIPTOTEKET_UNHEATED_USERS", "").split(",") if u}

    class ToolServerSpawner(base):
        def get_args(self):
            args = super().get_args()
            if self.user.name in cold_users:  # benchmarks/tool_open.py's baseline: no preheated kernels at all
                args = [a for a in args if not a.startswith(("--pool-size=", "--runner-pool-size="))]
                args += ["--pool-size=0", "--runner-pool-size=0"]
            return args

        async def progress(self):
            yield {"progress": 10, "message": "Starting your tool server / Startar din verktygsserver"}
            http = AsyncHTTPClient()
            said = set()
            for _ in range(600):
                await asyncio.sleep(0.3)
                port = getattr(self, "port", 0)
                if not port or self.server is None:
                    continue
                url = f"http://{self.ip or '127.0.0.1'}:{port}{self.server.base_url}ready"
                try:
                    response = await http.fetch(url, raise_error=False, request_timeout=2)
                except Exception:  # not listening yet
                    continue
                if response.code != 200:
                    continue
                body = _json.loads(response.body or b"{}")
                if body.get("warm_kernels", 0) >= 1:
                    yield {"progress": 95, "message": "Tools ready / Verktygen är redo"}
                    return
                if "listening" not in said:
                    said.add("listening")
                    yield {"progress": 60, "message": "Preparing the tool page / Förbereder verktygssidan"}

    return ToolServerSpawner


def _below_ephemeral_ports(base):
    """Local user servers listen on a port below the kernel's ephemeral range.

    JupyterHub picks a free port by binding port 0, which draws from the ephemeral range; so do the kernels of
    every other user server on the machine. Between the pick and the server's own bind, a kernel could take the
    port (seen in the classroom load test: EADDRINUSE, the hub gave up on that teacher's server). Ports are drawn
    from 20000 up to the start of the ephemeral range instead, where nothing binds by chance."""
    import random
    import socket

    def ephemeral_start() -> int:
        try:
            return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 32768

    class BelowEphemeralPorts(base):
        async def start(self):
            if self.port == 0:
                self.port = self._free_port(20000, ephemeral_start())
            return await super().start()

        @staticmethod
        def _free_port(low: int, high: int) -> int:
            for port in random.sample(range(low, high), min(200, high - low)):
                with socket.socket() as s:
                    try:
                        s.bind(("127.0.0.1", port))
                    except OSError:
                        continue
                    return port
            raise RuntimeError(f"no free port between {low} and {high}")

    return BelowEphemeralPorts


if mode == "demo":
    # Local processes under the hub's own account: no isolation between users (said loudly at start-up).
    from jupyterhub.spawner import SimpleLocalProcessSpawner

    c.JupyterHub.spawner_class = _tool_server_progress_mixin(_below_ephemeral_ports(SimpleLocalProcessSpawner))
    c.SimpleLocalProcessSpawner.home_dir_template = str(home / "users" / "{username}")
    c.Spawner.cmd = [sys.executable, "-m", "runner_kernel.singleuser"]
    c.Spawner.args = tool_server_args
    # A class arriving at once starts 20 servers on 2 cores: the last ones listen after 55-60 s
    # (benchmarks/classroom.py, docs/operations.md). Waiting longer on the progress page beats a failed spawn.
    c.Spawner.http_timeout = 120
    c.Spawner.start_timeout = 150
elif mode == "docker":
    load_subconfig(str(here / "docker.py"))  # noqa: F821
    # Containers reach the service directly (docs/docker.md, "Networking"): it listens on SKRIPTOTEKET_SERVICE_IP,
    # by default the users' network gateway, where docker.py binds the hub (the same rule as docker.py's SERVICE_IP).
    _service_ip = os.environ.get("SKRIPTOTEKET_SERVICE_IP") or c.JupyterHub.hub_ip
    for _service in c.JupyterHub.services:
        if _service["name"] == scopes.SERVICE_NAME:
            _service["url"] = f"http://{_service_ip}:{service_port}"
else:
    raise SystemExit(f"SKRIPTOTEKET_SPAWNER must be 'demo' or 'docker', not {mode!r}")

# --- authoring: JupyterLab for authors (docs/authoring.md) --------------------------------------------------------
# (1) The token of an author's JupyterLab server (the named server "lab") may call the Skriptoteket service as
#     that author, so the authoring library in its kernels works with $JUPYTERHUB_API_TOKEN. By default a server's
#     token has only the `server` role (users:activity!user, access:servers!server), which cannot reach the service.
#     JupyterHub (>= 4) gives the token the subset of these scopes the user holds: authors get author, reviewers
#     review too; a teacher never gets a lab server (below). The tool-app (Voila) servers keep the default.
_LAB_SERVER = "lab"
_LAB_TOKEN_SCOPES = [
    "users:activity!user", "access:servers!server",
    f"access:services!service={scopes.SERVICE_NAME}", *scopes.CUSTOM_SCOPES,
]


def _server_token_scopes(spawner):
    return list(_LAB_TOKEN_SCOPES) if spawner.name == _LAB_SERVER else []  # [] = the `server` role


c.Spawner.server_token_scopes = _server_token_scopes

# (2) Demo mode: the named server "lab" runs JupyterLab (jupyterhub-singleuser) for members of the author groups;
#     the default server stays the tool app; any other name, or a teacher asking for "lab", is refused. (Docker
#     mode does the same in hub_config/docker.py.)
if mode == "demo":
    from tornado import web as _web

    _AUTHOR_GROUPS = {"authors", "reviewers", "admins"}

    def _demo_pre_spawn_hook(spawner):
        name = spawner.name or ""
        if name == "":
            return
        if name != _LAB_SERVER:
            raise _web.HTTPError(400, log_message=(
                f"There is no server called {name!r} here: use your tool page, or 'lab' for JupyterLab (authors)."))
        if not (spawner.user.admin or any(g.name in _AUTHOR_GROUPS for g in spawner.user.groups)):
            raise _web.HTTPError(403, log_message=(
                "JupyterLab is for tool authors. Ask an administrator to add you to the authors group."))
        spawner.cmd = [str(Path(sys.executable).with_name("jupyterhub-singleuser"))]
        spawner.args = ["--allow-root"] if os.geteuid() == 0 else []  # demo mode runs as the hub's account
        # window.jupyterapp: the AI assistant's Accept updates the tagged cells in the notebook's model (docs/ai.md)
        spawner.args.append("--LabApp.expose_app_in_browser=True")
        spawner.default_url = "/lab"

    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = 1
    c.Spawner.pre_spawn_hook = _demo_pre_spawn_hook
