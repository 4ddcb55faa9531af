"""Docker mode: one container per user from Skriptoteket's user image (docs/docker.md).

Loaded by ``jupyterhub_config.py`` when ``SKRIPTOTEKET_SPAWNER=docker``. The hub runs in the host's network
namespace (on the host, or in a container with ``network_mode: host`` as in docker-compose.yml) and reaches the
Docker engine through ``DOCKER_HOST`` or ``/var/run/docker.sock``.

Settings (environment):

- ``SKRIPTOTEKET_IMAGE``              user image (default ``skriptoteket-user:latest``; never pulled)
- ``SKRIPTOTEKET_DOCKER_NETWORK``     the users' network (default ``skriptoteket-users``; created if missing as an
                                      *internal* bridge without container-to-container traffic)
- ``SKRIPTOTEKET_DOCKER_SUBNET``      its subnet when it is created (default: Docker picks one)
- ``SKRIPTOTEKET_DOCKER_PREFIX``      container names ``<prefix>-<user>`` (default ``skriptoteket``)
- ``SKRIPTOTEKET_MEM_LIMIT``          per container (default ``1G``), ``SKRIPTOTEKET_CPU_LIMIT`` (``1.0``),
                                      ``SKRIPTOTEKET_PIDS_LIMIT`` (``256``)
- ``SKRIPTOTEKET_TMPFS_SIZE``         size of each tmpfs (/tmp, home) (default ``256m``; counts as memory)
- ``SKRIPTOTEKET_POOL_SIZE``          Voila's preheated page kernels per teacher container (default ``1``)
- ``SKRIPTOTEKET_AUTHOR_GROUPS``      groups allowed a JupyterLab server (default ``authors,reviewers,admins``)
- ``SKRIPTOTEKET_SPARE_CONTAINERS``  spare teacher containers kept running, each ~90 MB idle (default ``1``; ``0``:
                                      every teacher server is a cold start; skriptoteket_ext/docker_spares.py)
- ``SKRIPTOTEKET_READY_POLL``         seconds between checks whether a starting server listens (default ``0.05``;
                                      ``0``: only JupyterHub's own check, which backs off to seconds)
- ``SKRIPTOTEKET_SERVICE_IP``         the address the Skriptoteket service listens on and containers reach it at
                                      (default: the users' network gateway, where the hub listens too)

Networking, and how tool code reaches what it must:

- User containers sit on an internal bridge network: no route out, no DNS for outside names, no traffic between
  containers (``enable_icc=false``). The hub listens on that bridge's gateway address (``hub_ip`` =
  ``hub_connect_ip``), so ``JUPYTERHUB_API_URL`` in a container is ``http://<gateway>:<hub port>/hub/api``.
- The Skriptoteket service also listens on the gateway address (``SKRIPTOTEKET_SERVICE_IP``; jupyterhub_config.py
  moves its entry in ``JupyterHub.services`` from 127.0.0.1 there after loading this file), and the page kernel gets ``SKRIPTOTEKET_SERVICE_API_URL`` =
  ``http://<gateway>:<service port>/services/skriptoteket/api/v1/``: straight to the service, not through the
  proxy, so the proxy may stay on loopback behind the site's TLS reverse proxy. Postgres and the proxy's API stay on
  127.0.0.1, which containers cannot reach. Anything else listening on 0.0.0.0 on the host *is* reachable from the
  containers at the gateway address, unless the host firewall rules are in place: as root, the hub adds iptables
  rules (tagged ``skriptoteket:<network>``) that refuse at once any connection out of the network and any new
  connection to the host other than to the hub's and the service's ports (``SKRIPTOTEKET_DOCKER_FIREWALL``:
  ``auto`` (default), ``on``, ``off``).

Teachers get the default server: ``python -m runner_kernel.singleuser`` (Voila with preheated kernels).
Members of the author groups may also start the named server ``lab``: JupyterLab (``jupyterhub-singleuser``)
with a persistent volume ``<prefix>-work-<user>`` at ``/home/skriptoteket/work``. Anyone else asking for
``lab``, and any other server name, is refused with a message.
"""

import asyncio
import atexit
import os
import secrets
import sys

import docker
from dockerspawner import DockerSpawner
from tornado import web

from skriptoteket_ext import docker_spares, scopes


c = get_config()  # noqa: F821

IMAGE = os.environ.get("SKRIPTOTEKET_IMAGE", "skriptoteket-user:latest")
NETWORK = os.environ.get("SKRIPTOTEKET_DOCKER_NETWORK", "skriptoteket-users")
USER_UID = 1000
HOME = "/home/skriptoteket"
WORK = f"{HOME}/work"
NOTEBOOK = "/srv/skriptoteket/notebooks/tool_app.ipynb"
LAB_SERVER = "lab"
AUTHOR_GROUPS = {g for g in os.environ.get("SKRIPTOTEKET_AUTHOR_GROUPS", "authors,reviewers,admins").split(",") if g}
TMPFS_SIZE = os.environ.get("SKRIPTOTEKET_TMPFS_SIZE", "256m")
# seconds between the spawner's checks of a starting server's port (0: leave it to the hub's slower backoff)
READY_POLL = float(os.environ.get("SKRIPTOTEKET_READY_POLL", "0.05"))
SPARE_CONTAINERS = int(os.environ.get("SKRIPTOTEKET_SPARE_CONTAINERS", "1"))
PREFIX = os.environ.get("SKRIPTOTEKET_DOCKER_PREFIX", "skriptoteket")

VOILA_CMD = [
    "python", "-m", "runner_kernel.singleuser",
    f"--notebook={NOTEBOOK}",
    "--template=skriptoteket",
    f"--pool-size={int(os.environ.get('SKRIPTOTEKET_POOL_SIZE', '1'))}",
    # no second preheated page kernel while the teacher has a tool open: ~30 MB less per container; the pool
    # refills when the page is left (docs/docker.md, "Start-up and memory")
    f"--ScrubbedKernelManager.spare_page_kernel={os.environ.get('SKRIPTOTEKET_SPARE_PAGE_KERNEL', '0') == '1'}",
]
# window.jupyterapp: the AI assistant's Accept updates the tagged cells in the notebook's model (docs/ai.md)
LAB_CMD = ["jupyterhub-singleuser", f"--ServerApp.root_dir={WORK}", "--LabApp.expose_app_in_browser=True"]


def _fail(message: str):
    # one line, the first thing an administrator reads in the log
    raise SystemExit(f"Skriptoteket (Docker mode): {message}")


# --- pre-flight: the engine, the image, the network -------------------------------------------------------------
def _preflight():
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=60)  # a busy engine can take seconds to answer
        client.ping()
    except Exception as e:  # docker raises DockerException, requests' ConnectionError, PermissionError, ...
        _fail(f"the Docker engine is not reachable at {where} ({type(e).__name__}); start dockerd, or set "
              f"DOCKER_HOST, or use SKRIPTOTEKET_SPAWNER=demo")
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        _fail(f"the user image {IMAGE!r} is not in the local Docker engine; build it with "
              f"./scripts/build-image.sh (or docker load it, see docs/docker.md)")
    try:
        network = client.networks.get(NETWORK)
    except docker.errors.NotFound:
        ipam = None
        if os.environ.get("SKRIPTOTEKET_DOCKER_SUBNET"):
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(
                subnet=os.environ["SKRIPTOTEKET_DOCKER_SUBNET"])])
        try:
            network = client.networks.create(
                NETWORK, driver="bridge", internal=True, ipam=ipam,
                options={"com.docker.network.bridge.enable_icc": "false"},
                labels={"org.skriptoteket.role": "users"},
            )
        except docker.errors.APIError as e:
            if e.status_code != 409:  # 409: created concurrently by another hub/test
                _fail(f"cannot create the Docker network {NETWORK!r}: {e.explanation}")
            network = client.networks.get(NETWORK)
    attrs = network.attrs
    if not attrs.get("Internal") or attrs.get("Options", {}).get("com.docker.network.bridge.enable_icc") != "false":
        _fail(f"the Docker network {NETWORK!r} exists but is not internal with enable_icc=false; remove it "
              f"(docker network rm {NETWORK}) and start again")
    try:
        gateway = attrs["IPAM"]["Config"][0]["Gateway"]
    except (KeyError, IndexError):
        _fail(f"the Docker network {NETWORK!r} has no gateway address")
    return gateway, attrs


def _iptables_rules(network_attrs, ports):
    bridge = network_attrs.get("Options", {}).get("com.docker.network.bridge.name") or "br-" + network_attrs["Id"][:12]
    subnet = network_attrs["IPAM"]["Config"][0]["Subnet"]
    tag = ["-m", "comment", "--comment", f"skriptoteket:{NETWORK}"]
    new = ["-m", "conntrack", "--ctstate", "NEW"]
    return [
        # out of the network: refused at once (Docker's own rule for internal networks drops, so connects hang)
        ("DOCKER-USER", ["-i", bridge, "!", "-d", subnet, *tag, "-j", "REJECT", "--reject-with",
                         "icmp-net-unreachable"]),
        # into the host: only the hub's and the service's ports, whatever else listens on 0.0.0.0
        ("INPUT", ["-i", bridge, "-p", "tcp", *new, "-m", "multiport", "!", "--dports", ",".join(map(str, ports)),
                   *tag, "-j", "REJECT", "--reject-with", "tcp-reset"]),
        ("INPUT", ["-i", bridge, "!", "-p", "tcp", *new, *tag, "-j", "REJECT"]),
    ]


def _iptables_command():
    """The iptables variant that sees Docker's rules: Docker made DOCKER-USER with the host's backend (nft or
    legacy), and a hub in a container (docker-compose.yml) has both; the chain is missing in the other one. None
    when no variant can list it (no iptables, not root, or no NET_ADMIN)."""
    import shutil
    import subprocess

    for command in ("iptables", "iptables-nft", "iptables-legacy"):
        if shutil.which(command) and subprocess.run([command, "-S", "DOCKER-USER"], capture_output=True).returncode == 0:
            return command
    return None


def _firewall(network_attrs, ports):
    """Host firewall rules for the users' network (iptables; root). SKRIPTOTEKET_DOCKER_FIREWALL: ``auto``
    (default: apply when possible, else warn), ``on`` (fail when impossible), ``off``."""
    import shlex
    import subprocess

    mode = os.environ.get("SKRIPTOTEKET_DOCKER_FIREWALL", "auto")
    if mode == "off":
        return
    iptables = _iptables_command() if os.geteuid() == 0 else None
    if iptables is None:
        if mode == "on":
            _fail("SKRIPTOTEKET_DOCKER_FIREWALL=on needs root, iptables and NET_ADMIN (iptables -S DOCKER-USER "
                  "failed)")
        print("Skriptoteket (Docker mode): no iptables rules for the users' network (not root, no iptables, or no "
              "NET_ADMIN): outside connections time out instead of failing at once, and containers reach every "
              "port the host opens on 0.0.0.0; see docs/docker.md", file=sys.stderr)
        return
    marker = f"skriptoteket:{NETWORK}"
    try:
        for chain in ("DOCKER-USER", "INPUT"):  # rules from an earlier start (other ports) go first
            listing = subprocess.run([iptables, "-S", chain], capture_output=True, text=True, check=True).stdout
            for line in listing.splitlines():
                if marker in line and line.startswith("-A "):
                    subprocess.run([iptables, "-D", *shlex.split(line)[1:]], check=True, capture_output=True)
        for chain, rule in reversed(_iptables_rules(network_attrs, ports)):
            subprocess.run([iptables, "-I", chain, "1", *rule], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        if mode == "on":
            _fail(f"iptables failed: {(e.stderr or '').strip()}")
        print(f"Skriptoteket (Docker mode): iptables failed ({(e.stderr or '').strip()}); see docs/docker.md",
              file=sys.stderr)
        return
    print(f"Skriptoteket (Docker mode): firewall rules for {NETWORK} applied ({iptables})", file=sys.stderr)


GATEWAY, _NETWORK_ATTRS = _preflight()
# where containers reach the service; jupyterhub_config.py moves the service's listening address to the same
SERVICE_IP = os.environ.get("SKRIPTOTEKET_SERVICE_IP") or GATEWAY


# --- the spawner ------------------------------------------------------------------------------------------------
class SkriptoteketDockerSpawner(DockerSpawner):
    """DockerSpawner whose failures read as sentences a teacher can pass on to IT, and which returns only once
    the server's port accepts connections."""

    async def start(self, *args, **kwargs):
        try:
            ip, port = await self._start_from_spare() or await super().start(*args, **kwargs)
        except docker.errors.ImageNotFound:
            raise web.HTTPError(503, log_message=(
                f"Your server could not start: the tool image ({self.image}) is missing on this server. "
                "Please tell your IT department (they need to run scripts/build-image.sh)."))
        except docker.errors.APIError as e:
            if e.status_code == 404 and "image" in str(e.explanation).lower():
                raise web.HTTPError(503, log_message=(
                    f"Your server could not start: the tool image ({self.image}) is missing on this server. "
                    "Please tell your IT department (they need to run scripts/build-image.sh)."))
            raise web.HTTPError(503, log_message=(
                f"Your server could not start: the container engine refused it ({e.explanation}). "
                "Please tell your IT department."))
        except docker.errors.DockerException as e:
            raise web.HTTPError(503, log_message=(
                "Your server could not start: the container engine is not reachable "
                f"({type(e).__name__}). Please tell your IT department."))
        await self._wait_listening(ip, port)
        return ip, port

    async def _start_from_spare(self):
        """A teacher's server from a spare container (skriptoteket_ext/docker_spares.py): renamed to this user's
        container and handed this server's environment and command. None (start a new container) when there is
        no ready spare, or this is not a teacher's tool server, or the spare fails."""
        if self.name != "" or self.cmd != VOILA_CMD or self.image != IMAGE or self.volumes:
            return None
        spare = await self._take_live_spare()
        if spare is None:
            return None
        try:
            if await self.get_object() is not None:  # a container of this user's an earlier server left
                await self.remove_object()
            await self.docker("rename", spare.id, self.container_name)
            self.object_id = spare.id
            await docker_spares.claim(spare, self.get_env(), await self.get_command())
        except Exception as e:  # the engine, the rename or the standby: a new container instead
            self.log.warning("Spare container %s not usable for %s (%s); starting a new one", spare.id[:12],
                             self.user.name, e)
            self.object_id = ""
            await SPARES.discard(spare)
            return None
        self.log.info("Server of %s started from spare container %s", self.user.name, spare.id[:12])
        return spare.ip, self.port

    async def _take_live_spare(self):
        """A ready spare that is still running, from the image the tag names now; others are removed."""
        while (spare := SPARES.take()) is not None:
            try:
                image = (await self.docker("inspect_image", self.image))["Id"]
                state = (await self.docker("inspect_container", spare.id))["State"]
                if state["Running"] and spare.image == image:
                    return spare
                why = "the image was updated" if state["Running"] else "it is not running"
            except docker.errors.DockerException as e:
                why = f"{type(e).__name__}: {e}"
            self.log.info("Spare container %s removed (%s)", spare.id[:12], why)
            await SPARES.discard(spare)
        return None

    async def _wait_listening(self, ip, port):
        """Poll the server's port every READY_POLL seconds until it accepts a connection. The hub's own check
        (after start returns) backs off exponentially (0.2, 0.4, 0.8, 1.6 s ... with jitter), which added up to
        ~2.5 s between the server listening and the hub calling it ready; its first try is immediate, so after
        this it succeeds at once. Gives up quietly (the hub's check then decides) after http_timeout or when the
        container has exited. The connection is refused at once until the server listens (same host, bridge)."""
        if READY_POLL <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.http_timeout
        checked = loop.time()
        while loop.time() < deadline:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 1)
            except (OSError, asyncio.TimeoutError):
                pass
            else:
                writer.close()
                return
            if loop.time() - checked > 1:
                checked = loop.time()
                if await self.poll() is not None:
                    return  # the container exited: the hub reports it
            await asyncio.sleep(READY_POLL)


class _SpareUser:
    """What DockerSpawner's name and label templates read of a user, for a container that has none yet."""
    name = "spare"
    admin = False
    groups = ()


class SpareMaker(SkriptoteketDockerSpawner):
    """Makes spare teacher containers with the teacher's create_object: same image, limits, flags and network;
    no user environment (no token), a standby command and the secret its claim must carry."""

    secret = ""

    def get_env(self):
        env = {k: (v(self) if callable(v) else v) for k, v in self.environment.items()}
        return {**env, docker_spares.SECRET_ENV: self.secret}

    async def get_command(self):
        return [*docker_spares.STANDBY_MODULE, *VOILA_CMD[3:]]


def _spare_maker() -> SpareMaker:
    from jupyterhub.app import JupyterHub

    # the hub's whole configuration: `c` here is only this file's part of it (traitlets' load_subconfig)
    config = JupyterHub.instance().config if JupyterHub.initialized() else c
    maker = SpareMaker(config=config, user=_SpareUser())
    maker.extra_create_kwargs = {**EXTRA_CREATE_KWARGS, "labels": {
        **EXTRA_CREATE_KWARGS["labels"], docker_spares.SPARE_LABEL: maker.prefix}}
    return maker


async def _make_spare() -> docker_spares.Spare:
    maker = _spare_maker()
    maker.secret = secrets.token_urlsafe(32)
    maker.object_name = docker_spares.spare_name(maker.prefix)
    maker.object_id = (await maker.create_object())["Id"]
    try:
        await maker.start_object()
        ip, _ = await maker.get_ip_and_port()
        image = (await maker.docker("inspect_container", maker.object_id))["Image"]
    except BaseException:
        try:
            await _remove_container(maker.object_id)
        except Exception:  # the engine's trouble is the error to report; the next hub removes it as stale
            pass
        raise
    return docker_spares.Spare(maker.object_id, ip, maker.secret, image)


async def _remove_container(container_id: str) -> None:
    try:
        await _spare_maker().docker("remove_container", container_id, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        if e.status_code != 409:  # 409: its removal is already under way
            raise


async def _stale_spares() -> list[str]:
    maker = _spare_maker()
    found = await maker.docker("containers", all=True, filters={"label": f"{docker_spares.SPARE_LABEL}={maker.prefix}"})
    return [x["Id"] for x in found if any(docker_spares.is_spare_name(n, maker.prefix) for n in x.get("Names", ()))]


def _remove_spares_at_exit():
    """Every spare still named as one, also one being made: no secret of theirs survives this hub."""
    if not SPARES.started:  # this process is no hub that made spares (a configuration check, say)
        return
    try:
        client = docker.from_env(timeout=30)
        found = client.api.containers(all=True, filters={"label": f"{docker_spares.SPARE_LABEL}={PREFIX}"})
        for container in found:
            if any(docker_spares.is_spare_name(n, PREFIX) for n in container.get("Names", ())):
                client.api.remove_container(container["Id"], force=True)
    except docker.errors.DockerException:
        pass  # the next hub removes them at its start


SPARES = docker_spares.SparePool(SPARE_CONTAINERS, _make_spare, _remove_container, _stale_spares)
atexit.register(_remove_spares_at_exit)


def _is_author(user) -> bool:
    return bool(user.admin) or any(g.name in AUTHOR_GROUPS for g in user.groups)


def pre_spawn_hook(spawner):
    """Teachers: Voila (default server). Authors: JupyterLab as the named server ``lab``, with a volume."""
    name = spawner.name or ""
    if name == "":
        spawner.cmd = list(VOILA_CMD)
        spawner.volumes = {}
        return
    if name != LAB_SERVER:
        raise web.HTTPError(400, log_message=(
            f"There is no server called {name!r} here: use your tool page, or 'lab' for JupyterLab (authors)."))
    if not _is_author(spawner.user):
        raise web.HTTPError(403, log_message=(
            "JupyterLab is for tool authors. Ask an administrator to add you to the authors group."))
    spawner.cmd = list(LAB_CMD)
    # the image leaves debugpy out of every process (scripts/image/skriptoteket_nodebugger.pth); authors debug
    spawner.environment = {**spawner.environment, "SKRIPTOTEKET_DEBUGGER": "1"}
    spawner.default_url = "/lab"
    spawner.volumes = {"{prefix}-work-{username}": WORK}


service_port = int(os.environ.get("SKRIPTOTEKET_SERVICE_PORT", "10101"))
hub_port = int(os.environ.get("SKRIPTOTEKET_HUB_PORT", "8081"))
_firewall(_NETWORK_ATTRS, [hub_port, service_port])
c.JupyterHub.spawner_class = SkriptoteketDockerSpawner
c.JupyterHub.hub_ip = GATEWAY
c.JupyterHub.hub_connect_ip = GATEWAY
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 1
c.Spawner.pre_spawn_hook = pre_spawn_hook
c.Spawner.http_timeout = 60
c.Spawner.start_timeout = 120
c.Spawner.environment = {
    "SKRIPTOTEKET_SERVICE_API_URL": f"http://{SERVICE_IP}:{service_port}/services/{scopes.SERVICE_NAME}/api/v1/",
    "JUPYTER_RUNTIME_DIR": f"{HOME}/.local/share/jupyter/runtime",
}
c.DockerSpawner.image = IMAGE
c.DockerSpawner.pull_policy = "never"
c.DockerSpawner.remove = True  # containers are cattle; the lab volume persists
c.DockerSpawner.prefix = PREFIX  # containers: <prefix>-<user>
c.DockerSpawner.network_name = NETWORK
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.mem_limit = os.environ.get("SKRIPTOTEKET_MEM_LIMIT", "1G")
c.DockerSpawner.cpu_limit = float(os.environ.get("SKRIPTOTEKET_CPU_LIMIT", "1.0"))
EXTRA_CREATE_KWARGS = {"user": f"{USER_UID}:{USER_UID}", "labels": {"org.skriptoteket.role": "user"}}
c.DockerSpawner.extra_create_kwargs = EXTRA_CREATE_KWARGS
_tmpfs_opts = f"rw,nosuid,nodev,size={TMPFS_SIZE}"
c.DockerSpawner.extra_host_config = {
    "pids_limit": int(os.environ.get("SKRIPTOTEKET_PIDS_LIMIT", "256")),
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "read_only": True,
    "tmpfs": {
        "/tmp": _tmpfs_opts,
        HOME: f"{_tmpfs_opts},uid={USER_UID},gid={USER_UID},mode=0700",
    },
    # no resolver answers on the internal network: fail name lookups in 1 s instead of 10 s
    "dns_opt": ["timeout:1", "attempts:1"],
}

# The service's own entry (in jupyterhub_config.py) is moved to SERVICE_IP there, after this file is loaded.
# The idle culler is added there too, in every mode.

# Spare teacher containers: made once the hub's event loop runs (the hub loads this file from it), then after
# each claim. Not when this file is loaded without a running hub (a config check).
try:
    asyncio.get_running_loop().call_later(1, SPARES.fill_soon)
except RuntimeError:
    pass
