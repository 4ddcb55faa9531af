"""Standalone Voila with preheated kernels as a JupyterHub single-user server, under hub OAuth.

Run as ``python -m runner_kernel.singleuser [--notebook PATH] [--template NAME] [--pool-size N]``, normally as
the hub's ``Spawner.cmd``. Everything that comes from the hub comes from the environment the spawner sets
(``JUPYTERHUB_SERVICE_URL``, ``JUPYTERHUB_SERVICE_PREFIX``, ``JUPYTERHUB_API_TOKEN``, ...), exactly as for
``jupyterhub-singleuser``. Why this exists: Voila's preheated kernel pool works only in the standalone ``voila``
application, not as a jupyter-server extension under ``jupyterhub-singleuser``. docs/voila-server.md explains
the design, the knobs and the measured figures.

What this adds to ``voila.app.Voila``:

- hub OAuth through :class:`HubIdentityProvider` (anonymous -> hub login, other users -> 403);
- activity reports to the hub (``JUPYTERHUB_ACTIVITY_URL``), so the hub's idle culler works;
- explicit websocket / body size limits (a 20 MB widget upload fits), idle-kernel culling;
- ``{prefix}ready``: a readiness probe that never executes the notebook;
- kernels that never see the server's hub token; each page's kernel gets the viewing user's own OAuth token
  (``HTTP_SKRIPTOTEKET_USER_TOKEN``) through Voila's request-info channel, which is served on a private
  loopback port instead of the proxied one.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import random
import re
import sys
import time
from datetime import timezone
from pathlib import Path
from urllib.parse import urlparse

_T0 = time.monotonic()

from ._standins import defer_unused, import_without  # noqa: E402

defer_unused()  # modules the libraries below import but this server never runs (runner_kernel/_standins.py)
import_without("bs4", blocked="lxml")  # BeautifulSoup (nbconvert's) without its lxml tree builder

import tornado.web  # noqa: E402
from jupyter_core.paths import jupyter_config_path  # noqa: E402
from jupyter_server.base.handlers import FileFindHandler  # noqa: E402
from jupyter_server.services.kernels.kernelmanager import (  # noqa: E402
    AsyncMappingKernelManager,
    MappingKernelManager,
)
from jupyter_server.utils import url_path_join  # noqa: E402
from jupyterhub._version import __version__ as jupyterhub_version  # noqa: E402


from ._standins import import_hub_extension as _import_hub_extension  # noqa: E402

_hub_extension = _import_hub_extension()
JupyterHubAuthorizer = _hub_extension.JupyterHubAuthorizer
JupyterHubIdentityProvider = _hub_extension.JupyterHubIdentityProvider
from jupyterhub.utils import isoformat  # noqa: E402
from tornado.httpclient import AsyncHTTPClient, HTTPRequest  # noqa: E402
from tornado.httpserver import HTTPServer  # noqa: E402
from tornado.ioloop import IOLoop  # noqa: E402
from tornado.netutil import bind_sockets  # noqa: E402
from traitlets import Bool, Float, Integer, List, Unicode, default  # noqa: E402
from traitlets.config import Config  # noqa: E402
from voila.app import Voila  # noqa: E402
from voila.paths import collect_static_paths, collect_template_paths  # noqa: E402
from voila.request_info_handler import RequestInfoSocketHandler  # noqa: E402
from voila.static_file_handler import MultiStaticFileHandler, TemplateStaticFileHandler  # noqa: E402
from voila.tornado.handler import TornadoVoilaHandler  # noqa: E402
import voila.utils  # noqa: E402
from voila.utils import ENV_VARIABLE  # noqa: E402

MiB = 1024 * 1024

#: Request header the server sets (never the client) to carry the viewer's OAuth token to the page's kernel.
USER_TOKEN_HEADER = "Skriptoteket-User-Token"
#: The name the kernel sees it under (Voila's CGI-style mapping of ``http_header_envs``).
USER_TOKEN_ENV = "HTTP_" + USER_TOKEN_HEADER.upper().replace("-", "_")

DEFAULT_NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "tool_app.ipynb"
#: Voila templates shipped with the project (``--template=skriptoteket``), found before the Jupyter data path.
PROJECT_TEMPLATES = Path(__file__).resolve().parent.parent / "voila_templates"

#: Environment variables that never reach a kernel (fnmatch patterns, case-sensitive).
DEFAULT_KERNEL_ENV_DENYLIST = [
    "JUPYTERHUB_API_TOKEN",
    "JPY_API_TOKEN",
    "JUPYTERHUB_CRYPT_KEY",
    "JUPYTERHUB_COOKIE_SECRET",
    "JPY_COOKIE_SECRET",
    "CONFIGPROXY_AUTH_TOKEN",
    "*_TOKEN",
    "*_SECRET",
    "*SECRET_KEY*",
    "*PASSWORD*",
    "*_API_KEY",
]


def _utcnow():
    from datetime import datetime

    return datetime.now(timezone.utc)


def _exclude_home(paths):
    home = os.path.expanduser("~/")
    return [p for p in paths if not p.startswith(home)]


# --------------------------------------------------------------------------------------------------------------
# Authentication


class HubIdentityProvider(JupyterHubIdentityProvider):
    """JupyterHub's single-user identity provider, adapted to the standalone Voila application.

    Voila constructs its identity provider with a ``token=`` argument (its own token auth), which collides with
    the hub provider's read-only ``token`` property: accept and ignore it. Voila also registers the provider's
    handlers without its ``base_url``, so prefix them here.
    """

    def __init__(self, token=None, **kwargs):
        super().__init__(**kwargs)

    def get_handlers(self):
        base_url = self.parent.base_url if self.parent is not None else "/"
        return [(url_path_join(base_url, path), *rest) for path, *rest in super().get_handlers()]


# --------------------------------------------------------------------------------------------------------------
# Kernels


class ScrubbedKernelManager(AsyncMappingKernelManager):
    """Kernel manager that starts every kernel with a scrubbed environment.

    Voila builds kernel environments from ``os.environ`` in two places (the preheat pool and the cold path);
    both go through ``start_kernel``, so this is the one place that decides what a kernel sees. It also points
    the kernel's ``wait_for_request()`` at the private request-info listener.
    """

    env_denylist = List(
        Unicode(),
        default_value=DEFAULT_KERNEL_ENV_DENYLIST,
        config=True,
        help="fnmatch patterns of environment variables kernels must never see.",
    )
    env_allowlist = List(
        Unicode(),
        default_value=[USER_TOKEN_ENV],
        config=True,
        help="Names exempt from env_denylist (the viewer's own token, on the cold-kernel path).",
    )

    spare_page_kernel = Bool(
        True,
        config=True,
        help="""Keep a preheated page kernel ready while a tool page is open. False: the pool refills only when no
        page is open (the last one left, or was culled), so a teacher with a tool open has one process (~30 MB)
        less; a second tab opened meanwhile starts its own kernel (Voila's unheated path). Docker mode's
        default (hub_config/docker.py, docs/docker.md "Start-up and memory").""",
    )

    def __init__(self, **kwargs):
        self._closing = False
        self._fill_pool = None
        super().__init__(**kwargs)
        fill = getattr(self, "fill_if_needed", None)  # the pool's, from the subclass Voila generates of this one
        if fill is not None and not self.spare_page_kernel:
            self._fill_pool = fill

            def fill_if_needed(*args, **kwargs):
                if self._closing or self.open_page_kernels():
                    return None
                return fill(*args, **kwargs)

            self.fill_if_needed = fill_if_needed

    def open_page_kernels(self) -> set[str]:
        """Kernels running or starting that are not waiting in the preheat pool: those of open (or not yet culled)
        pages. A pool kernel still starting counts too; the pool is not empty then, so nothing refills anyway."""
        pooled = set()
        for pool in getattr(self, "_pools", {}).values():
            for task in pool:
                if task.done() and not task.cancelled() and not task.exception():
                    pooled.add(task.result()["kernel_id"])
        return (set(self.list_kernel_ids()) | set(self._pending_kernels)) - pooled

    def _refill_if_no_page_open(self, leaving: str | None = None) -> None:
        """Without a spare: refill the pool once no page is open, ``leaving`` (a kernel being shut down) aside."""
        if self._fill_pool is None or self._closing or self.open_page_kernels() - {leaving}:
            return
        for name in list(getattr(self, "_pools", {})):
            self._fill_pool(delay=0, notebook_name=name)

    def scrub_env(self, env: dict) -> dict:
        return {
            k: v
            for k, v in env.items()
            if k in self.env_allowlist or not any(fnmatch.fnmatchcase(k, p) for p in self.env_denylist)
        }

    async def start_kernel(self, *, kernel_id=None, path=None, **kwargs):
        env = self.scrub_env(dict(kwargs.get("env") or os.environ))
        port = getattr(self.parent, "request_info_port", None)
        if port:
            env[ENV_VARIABLE.VOILA_APP_IP] = "127.0.0.1"
            env[ENV_VARIABLE.VOILA_APP_PORT] = str(port)
            env[ENV_VARIABLE.VOILA_WS_PROTOCOL] = "ws"
            env[ENV_VARIABLE.VOILA_WS_BASE_URL] = "/"
        kwargs["env"] = env
        return await super().start_kernel(kernel_id=kernel_id, path=path, **kwargs)

    async def shutdown_kernel(self, kernel_id, *args, **kwargs):
        # request info (with the viewer's token) for a kernel that never collected it must not linger
        RequestInfoSocketHandler._cache.pop(kernel_id, None)
        # before the shutdown, which takes a while: a reloaded page (or the next tool opened in the same tab) asks
        # for a kernel while its old one is being shut down, and finds the refill's kernel starting in the pool
        self._refill_if_no_page_open(leaving=kernel_id)
        return await super().shutdown_kernel(kernel_id, *args, **kwargs)

    def remove_kernel(self, kernel_id):
        # the end of every shutdown (two pages left at once: the second to finish refills), and where a kernel that
        # died and could not be restarted goes without shutdown_kernel; it is still among the pending ones here
        removed = super().remove_kernel(kernel_id)
        self._refill_if_no_page_open(leaving=kernel_id)
        return removed

    async def shutdown_all(self, *args, **kwargs):
        self._closing = True
        return await super().shutdown_all(*args, **kwargs)


class PrivateRequestInfoHandler(RequestInfoSocketHandler):
    """Voila's request-info websocket, served only on the private loopback listener.

    Upstream keeps every payload in a class-level cache forever; drop it once delivered.
    """

    def open(self, kernel_id: str) -> None:
        super().open(kernel_id)
        RequestInfoSocketHandler._cache.pop(kernel_id, None)


# --------------------------------------------------------------------------------------------------------------
# Handlers


#: Cache-Control of versioned static files: a new version has a new URL, so the browser never needs to ask again.
IMMUTABLE = "public, max-age=31536000, immutable"
#: ``<name>.<content hash>.<ext>``: how webpack names JupyterLab extensions' chunks and remote entries.
_CONTENT_HASHED = re.compile(r"\.[0-9a-f]{16,}\.(?:js|css|wasm|woff2?|ttf|eot|svg|png|gif)$")


def versioned_asset(path: str, arguments: dict) -> bool:
    """A static URL whose content can never change: a ``?v=`` version query or a content-hashed file name."""
    return bool(arguments.get("v")) or bool(_CONTENT_HASHED.search(path))


class CacheVersionedMixin:
    """Versioned static files cacheable for a year. Voila serves ``voila/labextensions/`` with ``no-cache``
    throughout, so the browser revalidated the widget extensions' ~20 files (a 304 each) on every page load."""

    def set_headers(self):
        super().set_headers()
        if versioned_asset(self.request.path, self.request.arguments):
            self.set_header("Cache-Control", IMMUTABLE)


class LabExtensionsHandler(CacheVersionedMixin, FileFindHandler):
    pass


class VoilaStaticHandler(CacheVersionedMixin, MultiStaticFileHandler):
    pass


def hurry_refill(kernel_manager, request_url: str) -> int:
    """Start now the pool refills still waiting out ``fill_delay``: this request would otherwise wait for the
    delay too. Voila's refill task sleeps in ``wait_before`` first; cancelled there, it has started nothing."""
    hurried = 0
    for name, pool in getattr(kernel_manager, "_pools", {}).items():
        for task in list(pool):
            waiting_on = getattr(task.get_coro(), "cr_await", None)
            if task.done() or getattr(waiting_on, "__name__", "") != "sleep":
                continue
            pool.remove(task)
            task.cancel()
            # the never-started kernel start would warn "never awaited"
            pending = task.get_coro().cr_frame.f_locals.get("aw")
            if pending is not None and hasattr(pending, "close"):
                pending.close()
            hurried += 1
        if hurried:
            kernel_manager.fill_if_needed(
                delay=0, notebook_name=name, extra_kernel_env_variables={ENV_VARIABLE.VOILA_REQUEST_URL: request_url}
            )
    return hurried


async def pool_started(kernel_manager, timeout: float) -> bool:
    """Wait until the pool's first kernel has started. Voila takes a page from its pool only once it knows the
    notebook (from that kernel's start); a request before then, the first page of a cold server, would start a
    second kernel of its own beside the pool's, both competing for the container's one CPU. True if it waited."""
    if getattr(kernel_manager, "notebook_data", None):
        return False
    starting = [task for pool in getattr(kernel_manager, "_pools", {}).values() for task in pool if not task.done()]
    if not starting:
        return False
    await asyncio.wait(starting[:1], timeout=timeout)
    return True


class ToolPageHandler(TornadoVoilaHandler):
    """The notebook page. Hands the viewer's OAuth token to this page's kernel, and records activity."""

    @tornado.web.authenticated
    async def get(self, path=None):
        self.settings["page_last_activity"] = _utcnow()
        # only the server may set this header; a client-sent copy is discarded
        if USER_TOKEN_HEADER in self.request.headers:
            del self.request.headers[USER_TOKEN_HEADER]
        if hurry_refill(self.kernel_manager, self.request.full_url()):
            self.log.info("Pool drained: refill started without its delay for this request")
        if await pool_started(self.kernel_manager, timeout=60):
            self.log.info("First page: waited for the pool's kernel to start")
        if self.settings.get("skriptoteket_pass_user_token"):
            token = self.identity_provider.hub_auth.get_token(self)
            if token:
                self.request.headers[USER_TOKEN_HEADER] = token
        await super().get(path)
        first_page = self.settings.get("skriptoteket_first_page")
        if first_page is not None:
            first_page.set()


def project_template(name: str) -> tuple[Path, str] | None:
    """``(directory, base template)`` of a template shipped in the project's ``voila_templates/``, or None."""
    own = PROJECT_TEMPLATES / name if name and "/" not in name and not name.startswith(".") else None
    if not (own and (own / "conf.json").is_file()):
        return None
    return own, json.loads((own / "conf.json").read_text()).get("base_template", "lab")


class ProjectTemplateStaticFileHandler(CacheVersionedMixin, TemplateStaticFileHandler):
    """``voila/templates/<name>/static/…`` for the project's own templates too (their static files, then their
    base template's); Voila's handler only knows templates on the Jupyter data path."""

    def parse_url_path(self, path):
        template, static, _rest = path.split("/", 2)
        found = project_template(template)
        if found is None:
            return super().parse_url_path(path)
        own, base = found
        self.roots = _project_static_roots(own, base)
        return tornado.web.StaticFileHandler.parse_url_path(self, path)

    @classmethod
    def get_absolute_path(cls, root, path):
        template, static, relpath = os.path.normpath(path).split(os.path.sep, 2)
        found = project_template(template)
        if found is None:
            return super().get_absolute_path(root, path)
        abspath = ""
        for candidate in _project_static_roots(*found):
            abspath = os.path.abspath(os.path.join(candidate, relpath))
            if os.path.exists(abspath):
                break
        return abspath  # a missing file is a 404


def _project_static_roots(own: Path, base: str) -> list[str]:
    return [str(own / "static"), *collect_static_paths(["voila", "nbconvert"], base)]


class ReadyHandler(tornado.web.RequestHandler):
    """``{prefix}ready``: cheap readiness probe; never executes the notebook, needs no login.

    200 with the pool state; with ``?warm=1``, 503 until at least one preheated kernel is ready.
    """

    def initialize(self, app):
        self.voila_app = app

    def get(self):
        warm = self.voila_app.warm_kernels()
        body = {
            "status": "ok",
            "uptime": round(time.monotonic() - _T0, 3),
            "warm_kernels": warm,
            "pool_size": self.voila_app.voila_configuration.default_pool_size,
        }
        host = self.voila_app.runner_host
        if host is not None:
            body["runner_warm"] = host.pool.ready_count if host.pool is not None else 0
            body["runner_pool_size"] = host.pool_size
        if self.get_argument("warm", "") not in ("", "0") and warm < 1:
            self.set_status(503)
            body["status"] = "warming"
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))


# --------------------------------------------------------------------------------------------------------------
# The application


class SkriptoteketVoila(Voila):
    name = "skriptoteket-voila"
    description = "Skriptoteket's single-user server: standalone Voila with preheated kernels under hub OAuth."

    classes = [*Voila.classes, MappingKernelManager, ScrubbedKernelManager]
    aliases = {
        **Voila.aliases,
        "notebook": "Voila.notebook_path",
        "pool-size": "VoilaConfiguration.default_pool_size",
        "max-message-size": "SkriptoteketVoila.max_message_size",
        "cull-idle-timeout": "MappingKernelManager.cull_idle_timeout",
        "cull-interval": "MappingKernelManager.cull_interval",
        "cull-connected": "MappingKernelManager.cull_connected",
        "activity-interval": "SkriptoteketVoila.hub_activity_interval",
        "fill-delay": "SkriptoteketVoila.fill_delay",
        "runner-pool-size": "SkriptoteketVoila.runner_pool_size",
        "runner-refill-delay": "SkriptoteketVoila.runner_refill_delay",
    }
    flags = {
        **Voila.flags,
        "allow-root": ({"SkriptoteketVoila": {}}, "Accepted for compatibility; Voila runs as root anyway."),
        "no-user-token": (
            {"SkriptoteketVoila": {"pass_user_token": False}},
            "Do not hand the viewer's OAuth token to page kernels.",
        ),
        "no-runner": (
            {"SkriptoteketVoila": {"runner_enabled": False}},
            "Do not host a tool runner (page kernels then cannot run tools).",
        ),
    }

    max_message_size = Integer(
        32 * MiB,
        config=True,
        help="""Largest websocket message (and HTTP body) accepted, in bytes. The default fits a 20 MiB file
        uploaded through an ipywidgets FileUpload plus base64/JSON overhead (20 MiB * 4/3 = 26.7 MiB).""",
    )
    fill_delay = Float(
        1.5,
        config=True,
        help="""Seconds before a used pool kernel is replaced (Voila's default is 1 s). The replacement's start
        (1-3 s of CPU) then does not compete with the page being drawn; a request that finds the pool empty
        waits for the replacement, so this delay is added to it.""",
    )
    pass_user_token = Bool(
        True,
        config=True,
        help=f"Give each page's kernel the viewing user's hub OAuth token as ${USER_TOKEN_ENV}.",
    )
    runner_enabled = Bool(
        True,
        config=True,
        help="Host one warm tool-runner pool for this server (runner_kernel.runner_host) for the page kernels.",
    )
    runner_pool_size = Integer(
        1,
        config=True,
        help="Warm kernels kept for running tools (each ~55 MB idle); 0 starts one per run (slow).",
    )
    runner_refill_delay = Float(
        0.3,
        config=True,
        help="""Seconds between a tool run taking the runner's warm kernel and its replacement starting, so the
        start does not compete with the page drawing the result (a run that finds the pool empty starts it at
        once). Short, since a replacement is forked from the pool's fork server (~0.1 s of CPU); a teacher who
        runs again a second later should find a warm kernel.""",
    )
    runner_start_wait = Float(
        20.0,
        config=True,
        help="""Seconds the tool runner's pool waits for the first page to be served before it warms its kernels
        (0: at once). A cold start has one CPU to share: the page kernel that the first page waits for gets it
        first, and the runner's kernel (pandas imported) warms while the teacher reads the form.""",
    )
    fork_page_kernels = Bool(
        True,
        config=True,
        help="""Fork page kernels from the tool runner's fork server (runner_kernel/page_kernels.py) so they share
        its imported modules' memory; False, or no runner, or a failed fork: each is a new process as in Voila.
        Default: $SKRIPTOTEKET_FORK_PAGE_KERNELS (0 = False), else True.""",
    )

    @default("fork_page_kernels")
    def _default_fork_page_kernels(self):
        return os.environ.get("SKRIPTOTEKET_FORK_PAGE_KERNELS", "1") != "0"
    template_cache = Bool(
        True,
        config=True,
        help="""Share compiled Jinja templates between page renders (runner_kernel.template_cache): Voila builds a
        new exporter, so a new Jinja environment, for every page, and compiled its templates again each time.""",
    )
    hub_activity_url = Unicode(config=True, help="Where to POST activity (default $JUPYTERHUB_ACTIVITY_URL).")
    hub_activity_interval = Integer(
        config=True, help="Seconds between activity reports (default $JUPYTERHUB_ACTIVITY_INTERVAL or 300)."
    )
    hub_server_name = Unicode(config=True, help="This server's name (default $JUPYTERHUB_SERVER_NAME).")

    @default("hub_activity_url")
    def _default_activity_url(self):
        return os.environ.get("JUPYTERHUB_ACTIVITY_URL", "")

    @default("hub_activity_interval")
    def _default_activity_interval(self):
        return int(os.environ.get("JUPYTERHUB_ACTIVITY_INTERVAL") or 300)

    @default("hub_server_name")
    def _default_server_name(self):
        return os.environ.get("JUPYTERHUB_SERVER_NAME", "")

    @default("config_file_paths")
    def _config_file_paths_default(self):
        # never read voila.py from the working directory or the user's home (the user's files)
        return _exclude_home(jupyter_config_path())

    request_info_port = None
    runner_host = None
    page_kernel_forker = None  # found by runner_kernel.page_kernels' kernel manager
    _request_info_sockets = ()
    _hub_api_token = ""
    _last_activity_sent = None

    # ---- configuration -------------------------------------------------------------------------------------

    def _defaults(self) -> Config:
        c = Config()
        c.Voila.open_browser = False
        c.Voila.port_retries = 0
        c.Voila.notebook_path = str(DEFAULT_NOTEBOOK)
        c.Voila.identity_provider_class = HubIdentityProvider
        c.Voila.authorizer_class = JupyterHubAuthorizer
        c.VoilaConfiguration.preheat_kernel = True
        c.VoilaConfiguration.default_pool_size = 1
        c.VoilaConfiguration.show_tracebacks = False
        c.VoilaConfiguration.multi_kernel_manager_class = ScrubbedKernelManager
        # forks page kernels when page_kernel_forker is set (below); otherwise jupyter_server's own
        c.ScrubbedKernelManager.kernel_manager_class = "runner_kernel.page_kernels.ForkedPageKernelManager"
        # the page's kernel also learns the browser's languages (English or Swedish for the tool app)
        c.VoilaConfiguration.http_header_envs = [USER_TOKEN_HEADER, "Accept-Language"]
        c.MappingKernelManager.cull_idle_timeout = 600
        c.MappingKernelManager.cull_interval = 60
        c.MappingKernelManager.cull_connected = False
        return c

    def initialize(self, argv=None):
        self.update_config(self._defaults())  # lowest priority: config files and the command line win
        super().initialize(argv)
        if self.template_cache:
            from .template_cache import install

            install()  # every pool refill pre-renders a page: compile Voila's templates once per process
        headers = list(self.voila_configuration.http_header_envs)
        if USER_TOKEN_HEADER not in headers:
            self.voila_configuration.http_header_envs = [*headers, USER_TOKEN_HEADER]
        self._load_hub_environment()
        prestarted = _take_prestarted(self._runner_settings() if self.runner_enabled else None, self.log)
        if self.runner_enabled:
            # before any page kernel starts: they find the host through $SKRIPTOTEKET_RUNNER_DIR
            self.runner_host, self.page_kernel_forker = prestarted or self.make_runner_host()

    def _runner_settings(self) -> tuple:
        return (self.runner_pool_size, self.runner_refill_delay, self.fork_page_kernels)

    def make_runner_host(self):
        """The tool runner's host, prepared, and the page kernels' forker (None: page kernels are exec'd)."""
        from .runner_host import RunnerHost

        host = RunnerHost(self.runner_pool_size, pool_options={"refill_delay": self.runner_refill_delay})
        host.prepare()
        forker = None
        if self.fork_page_kernels:
            from .page_kernels import PageKernelForker

            forker = PageKernelForker(host)
        return host, forker

    def setup_template_dirs(self):
        """Templates under the project's ``voila_templates/<name>`` (with a ``conf.json`` naming its
        ``base_template``) are used in place, before the Jupyter data path; others as Voila finds them."""
        found = project_template(self.voila_configuration.template)
        if found is None:
            return super().setup_template_dirs()
        own, base = found
        conf = json.loads((own / "conf.json").read_text())
        self.template_paths = [str(own), *collect_template_paths(["voila", "nbconvert"], base, prune=True)]
        self.static_paths = [str(own / "static"), *collect_static_paths(["voila", "nbconvert"], base)]
        from jupyter_server import DEFAULT_STATIC_FILES_PATH

        self.static_paths.append(DEFAULT_STATIC_FILES_PATH)
        if "traitlet_configuration" in conf:
            merged = Config(conf["traitlet_configuration"])
            merged.merge(self.voila_configuration.config.VoilaConfiguration)
            self.voila_configuration.config.VoilaConfiguration = merged
        if self.notebook_path and not os.path.exists(self.notebook_path):
            raise ValueError("Notebook not found: %s" % self.notebook_path)

    def _load_hub_environment(self):
        """Take host, port and prefix from the hub; move the hub token out of the process environment."""
        service_url = os.environ.get("JUPYTERHUB_SERVICE_URL")
        if not service_url or not os.environ.get("JUPYTERHUB_API_URL"):
            # without the hub there is no authentication at all: refuse, like jupyterhub-singleuser
            self.log.critical("Missing $JUPYTERHUB_SERVICE_URL / $JUPYTERHUB_API_URL: run me from a JupyterHub spawner")
            self.exit(1)
        url = urlparse(service_url)
        self.ip = url.hostname or ""
        self.port = url.port or (443 if url.scheme == "https" else 80)
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
        if prefix:
            self.base_url = prefix if prefix.endswith("/") else prefix + "/"
        self._hub_api_token = os.environ.get("JUPYTERHUB_API_TOKEN") or os.environ.get("JPY_API_TOKEN") or ""
        if self._hub_api_token:
            self.config.HubOAuth.api_token = self._hub_api_token
        # no subprocess of this server (kernels included) inherits the server's credentials
        for name in ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"):
            os.environ.pop(name, None)

    def init_settings(self):
        # the private loopback listener for request info must exist before the pool starts kernels
        self._request_info_sockets = bind_sockets(0, "127.0.0.1")
        self.request_info_port = self._request_info_sockets[0].getsockname()[1]
        self.tornado_settings = {
            **self.tornado_settings,
            "websocket_max_message_size": self.max_message_size,
            "skriptoteket_pass_user_token": self.pass_user_token,
            "headers": {
                "X-JupyterHub-Version": jupyterhub_version,
                # same-origin embedding only (the catalog may frame a tool); never other sites
                "Content-Security-Policy": "frame-ancestors 'self'",
                **self.tornado_settings.get("headers", {}),
            },
            "xsrf_cookies": False,  # HubOAuth patches jupyter_server's own xsrf checks in
        }
        self.config.VoilaKernelManager.fill_delay = self.fill_delay  # the pool class Voila generates
        settings = super().init_settings()
        settings["started"] = _utcnow()
        settings["page_last_activity"] = settings["started"]
        settings["skriptoteket_first_page"] = asyncio.Event()
        return settings

    def init_handlers(self):
        handlers = []
        for spec in super().init_handlers():
            pattern, handler_class, *rest = spec
            if handler_class is RequestInfoSocketHandler:
                continue  # served on the private listener only
            if handler_class is TornadoVoilaHandler:
                spec = (pattern, ToolPageHandler, *rest)
            if handler_class is TemplateStaticFileHandler:
                spec = (pattern, ProjectTemplateStaticFileHandler, *rest)
                # and the templates' include_url/include_js/include_css: with Voila's class they find no file
                # of a project template (so no ``?v=`` content version, so the browser revalidates the tool
                # page's front end, a blocking script, on every load)
                voila.utils.TemplateStaticFileHandler = ProjectTemplateStaticFileHandler
            if handler_class is FileFindHandler and pattern.endswith("/voila/labextensions/(.*)"):
                spec = (pattern, LabExtensionsHandler, *rest)
            if handler_class is MultiStaticFileHandler:
                spec = (pattern, VoilaStaticHandler, *rest)
            handlers.append(spec)
        ready = (url_path_join(self.server_url, "ready"), ReadyHandler, {"app": self})
        return [ready, *handlers]

    # ---- pool state and activity ---------------------------------------------------------------------------

    def warm_kernels(self) -> int:
        """Pooled kernels that have run the notebook up to ``wait_for_request()`` (or to its end)."""
        warm = 0
        for pool in getattr(self.kernel_manager, "_pools", {}).values():
            for task in pool:
                if not task.done() or task.exception():
                    continue
                content = task.result()
                if content["kernel_id"] in RequestInfoSocketHandler._waiters or content["task"].done():
                    warm += 1
        return warm

    def last_activity(self):
        km = self.kernel_manager
        times = [self.app.settings["started"], km.last_kernel_activity]
        times += [v for k, v in self.app.settings.items() if k.endswith("_last_activity") and v]
        return max(t if t.tzinfo else t.replace(tzinfo=timezone.utc) for t in times)

    async def notify_activity(self):
        last = self.last_activity()
        if self._last_activity_sent and last <= self._last_activity_sent:
            return
        stamp = isoformat(last)
        body = {"servers": {self.hub_server_name: {"last_activity": stamp}}, "last_activity": stamp}
        request = HTTPRequest(
            self.hub_activity_url,
            method="POST",
            headers={"Authorization": f"token {self._hub_api_token}", "Content-Type": "application/json"},
            body=json.dumps(body),
            request_timeout=20,
        )
        await AsyncHTTPClient().fetch(request)
        self._last_activity_sent = last
        self.log.debug("Reported activity %s to the hub", stamp)

    async def keep_activity_updated(self):
        if not (self.hub_activity_url and self.hub_activity_interval and self._hub_api_token):
            self.log.warning("Hub activity reports disabled (no JUPYTERHUB_ACTIVITY_URL or token)")
            return
        self.log.info("Reporting activity to the hub every %s s", self.hub_activity_interval)
        while True:
            try:
                await self.notify_activity()
            except Exception as e:  # the hub may be restarting; try again next round
                self.log.error("Error reporting activity to the hub: %s", e)
            await asyncio.sleep(self.hub_activity_interval * (1 + 0.2 * (random.random() - 0.5)))

    # ---- serving -------------------------------------------------------------------------------------------

    def listen(self):
        limits = {"max_body_size": self.max_message_size, "max_buffer_size": max(self.max_message_size, 100 * MiB)}
        self.app.listen(self.port, self.ip, xheaders=True, **limits)
        private = tornado.web.Application(
            [(r"/voila/query/(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)", PrivateRequestInfoHandler)]
        )
        HTTPServer(private).add_sockets(self._request_info_sockets)
        self.log.info(
            "Skriptoteket Voila at http://%s:%i%s serving %s (pool %s, refill delay %s s), listening after %.2f s",
            self.ip or "*",
            self.port,
            self.base_url,
            self.notebook_path,
            self.voila_configuration.default_pool_size,
            getattr(self.kernel_manager, "fill_delay", None),
            time.monotonic() - _T0,
        )
        self.ioloop = IOLoop.current()
        self._activity_task = self.ioloop.asyncio_loop.create_task(self.keep_activity_updated())
        if self.runner_host is not None:
            self._runner_task = self.ioloop.asyncio_loop.create_task(self._start_runner())
        try:
            self.ioloop.start()
        except KeyboardInterrupt:
            self.log.info("Stopping...")
        finally:
            self._activity_task.cancel()
            if self.runner_host is not None:
                self.ioloop.asyncio_loop.run_until_complete(self.runner_host.stop())
            self.stop()

    async def _start_runner(self):
        if self.runner_start_wait > 0:
            try:
                await asyncio.wait_for(self.app.settings["skriptoteket_first_page"].wait(), self.runner_start_wait)
            except asyncio.TimeoutError:
                pass
        try:
            await self.runner_host.start()
            self.log.info("Tool runner: %s warm kernel(s) on %s", self.runner_pool_size, self.runner_host.socket_path)
        except Exception:
            self.log.exception("The tool runner could not start; tools cannot run in this server")


#: (settings, runner host, forker) started by a standby container before its user was known (runner_kernel/standby.py)
_prestarted = None
_stopping = None  # the task stopping an unused one (the loop keeps only a weak reference)


async def prestart_runner(argv: list[str]) -> None:
    """Make the runner host that ``SkriptoteketVoila`` with these options would make, and start its fork server,
    which imports ipykernel and the tool app. A standby container does this before it is claimed; the server
    started on the same event loop then adopts both if its settings are the same (``_take_prestarted``)."""
    global _prestarted
    app = SkriptoteketVoila()
    app.update_config(app._defaults())
    app.parse_command_line(argv)
    app.load_config_file("voila", path=app.config_file_paths)  # as Voila.initialize does
    if not app.runner_enabled:
        return
    host, forker = app.make_runner_host()
    if forker is not None:
        await host.page_fork_server(forker.modules)
    _prestarted = (app._runner_settings(), host, forker)


def _take_prestarted(settings: tuple | None, log):
    """(host, forker) a standby made for these runner settings, else None; one made for others is stopped."""
    global _prestarted, _stopping
    found, _prestarted = _prestarted, None
    if found is None:
        return None
    if found[0] != settings:  # the hub asked for other settings (or none): start afresh, stop what the standby made
        log.warning("The standby's tool runner was made for %s, not %s: starting another", found[0], settings)
        _stopping = IOLoop.current().asyncio_loop.create_task(found[1].stop())
        return None
    return found[1], found[2]


def main(argv=None):
    SkriptoteketVoila.launch_instance(argv=argv)


if __name__ == "__main__":
    main(sys.argv[1:])
