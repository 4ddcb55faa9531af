"""Voila's page kernels forked from the runner's fork server instead of exec'd by jupyter_client.

Why: an exec'd page kernel is a new interpreter importing ipykernel, IPython and the tool app on its own (~47 MB
of private memory, ~1 s of CPU); a kernel forked from the fork server (runner_kernel/_zygote.py), which imported
them once, shares those pages. The teacher's server keeps two page kernels (the preheated one and the open page's),
so both share the zygote the runner's pool has anyway (docs/runner.md "Fork server", docs/docker.md "Measured").

How: ``ForkedPageKernelManager`` (the ``kernel_manager_class`` of ``singleuser.ScrubbedKernelManager``) gives each
kernel a ``ForkingProvisioner``: a ``LocalProvisioner`` whose ``launch_kernel`` asks the fork server for the
kernel and manages a pid that is not its child (a pidfd; the zygote reaps it). Anything else (another kernel
spec, the fork server failing or disabled with ``--SkriptoteketVoila.fork_page_kernels=False``) takes
LocalProvisioner's exec path, with a warning when forking failed.

Secrets: the page kernel's environment can hold the viewer's API token (Voila's cold path puts request headers
in it) and names the runner's private directory. The zygote's memory is inherited by every tool kernel forked
later, i.e. by hostile code, so none of it may pass through the zygote. The environment, cwd, sys.path and
arguments go into a 0600 file in ``<runner dir>/pages/`` (the runner host's 0700 directory: tool kernels run
under another account as root, and are Landlocked away from it in Docker mode); the zygote gets only the file's
path and the child claims (renames to ``<path>.<pid>``), reads and empties it after the fork.

A request that got no answer in time is withdrawn before the exec fallback starts a kernel on the same connection
file and ports: removing the spec file first stops a child forked later, and a child that claimed it is killed
(``_withdraw``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import secrets
import select
import shutil
import signal
import sys
import uuid
from pathlib import Path

from jupyter_client.provisioning import LocalProvisioner
from jupyter_server.services.kernels.kernelmanager import ServerKernelManager

log = logging.getLogger("runner_kernel.page_kernels")

#: What the fork server imports for page kernels: the tool app (notebooks/tool_app.ipynb imports runner_kernel.app,
#: which imports ipywidgets, httpx and the renderer), the request-info helper's websocket client, and what httpx
#: imports only when the app builds its client and connects while the kernel waits for its page (-2.4 MB each).
PAGE_MODULES = ("runner_kernel.app", "websockets.sync.client", "httpcore._async.connection_pool",
                "httpcore._async.http11", "httpcore._backends.anyio", "anyio._backends._asyncio", "h11", "certifi")
FORK_TIMEOUT = 10.0
SPEC_DIR = "pages"


class PageKernelForker:
    """Forks page kernels from a runner host's fork server (``RunnerHost.page_fork_server``)."""

    def __init__(self, host, modules: tuple[str, ...] = PAGE_MODULES):
        """Make it before the host starts: the host's pool is then made with ``page_modules``, so a fork server
        its tool kernels start first (``runner_start_wait=0``) serves page kernels too, instead of sending them
        to the exec path until it is replaced."""
        self.host = host
        self.modules = modules
        self.forked = 0
        self.fallbacks = 0
        if host is not None:
            host.pool_options["page_modules"] = tuple(modules)

    def can_fork(self, cmd: list[str], kwargs: dict) -> bool:
        """Only ipykernel on this interpreter, with no stdio of its own: the fork server imported that."""
        if len(cmd) < 3 or cmd[1:3] != ["-m", "ipykernel_launcher"]:
            return False
        if any(kwargs.get(name) is not None for name in ("stdin", "stdout", "stderr")):
            return False
        env = kwargs.get("env") or {}
        found = shutil.which(os.path.expanduser(cmd[0]), path=env.get("PATH", os.defpath))
        return found is not None and _same_interpreter(found, sys.executable)

    async def fork(self, cmd: list[str], env: dict, cwd: str) -> tuple[int, Path]:
        """Fork one page kernel; its pid (= its process group and session) and its spec file."""
        zygote = await self.host.page_fork_server(self.modules)
        spec_dir = self.host.dir / SPEC_DIR
        spec_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(spec_dir, 0o700)
        pythonpath = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        # what `python -m ipykernel_launcher` in cwd would have: cwd, $PYTHONPATH, then the interpreter's own
        sys_path = list(dict.fromkeys([str(cwd), *pythonpath, *sys.path[1:]]))
        spec = {
            "env": dict(env),
            "cwd": str(cwd),
            "argv": [os.path.expanduser(a) for a in cmd[3:]],
            "launcher": _launcher(),
            "sys_path": sys_path,
            "watch_pid": os.getpid(),  # the page kernel exits with this server
        }
        path = spec_dir / f"{secrets.token_hex(16)}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(spec, f)
        try:
            pid = await zygote.fork_page(str(path), FORK_TIMEOUT)
        except BaseException:
            _withdraw(path)
            raise
        self.forked += 1
        return pid, path


class ForkedProcess:
    """The part of ``subprocess.Popen`` LocalProvisioner uses, for a process that is not our child.

    Watched and signalled through a pidfd (no pid reuse races). Its exit status is the fork server's to reap, so
    ``returncode`` is ``-signal`` if we killed it, else 0.
    """

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode = None
        self._signal = 0
        self._pidfd = os.pidfd_open(pid)

    def poll(self):
        if self.returncode is None and (self._pidfd < 0 or self._readable(0)):
            self.returncode = -self._signal if self._signal else 0
            self.close()
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None and self._pidfd >= 0:
            self._readable(timeout)
        return self.poll()

    def _readable(self, timeout) -> bool:
        """The pidfd is readable once the process has exited (poll(2): select(2) fails on fds >= 1024)."""
        poller = select.poll()
        poller.register(self._pidfd, select.POLLIN)
        return bool(poller.poll(None if timeout is None else timeout * 1000))

    def send_signal(self, signum: int) -> None:
        if self.poll() is not None:
            return
        self._signal = signum if signum in (signal.SIGKILL, signal.SIGTERM) else self._signal
        signal.pidfd_send_signal(self._pidfd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def close(self) -> None:
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1


class ForkingProvisioner(LocalProvisioner):
    """LocalProvisioner that forks the kernel from the fork server when it can, and execs it otherwise."""

    spec_path: Path | None = None

    async def launch_kernel(self, cmd: list[str], **kwargs):
        forker = find_forker(self.parent)
        if forker is not None and forker.can_fork(cmd, kwargs):
            pid = None
            try:
                pid, self.spec_path = await forker.fork(cmd, kwargs.get("env") or dict(os.environ),
                                                        kwargs.get("cwd") or os.getcwd())
                process = ForkedProcess(pid)
            except Exception as exc:  # noqa: BLE001 - the page must still get a kernel
                if pid is not None:
                    _kill(pid)  # before the exec'd kernel binds the same ports
                forker.fallbacks += 1
                log.warning("Forking a page kernel failed (%s); starting it as a new process instead", exc)
            else:
                self.process = process
                self.pid = self.pgid = pid  # the child calls setsid() first thing; until then killpg falls back
                self.cwd = kwargs.get("cwd")
                return self.connection_info
        return await super().launch_kernel(cmd, **kwargs)

    async def send_signal(self, signum: int) -> None:
        # LocalProvisioner signals the process group by number. A forked kernel is the fork server's child, reaped
        # as soon as it exits, so once the pidfd says it is gone its number may already be another process's.
        if isinstance(self.process, ForkedProcess) and self.process.poll() is not None:
            return
        await super().send_signal(signum)

    async def cleanup(self, restart: bool = False) -> None:
        if self.spec_path is not None:
            self.spec_path.unlink(missing_ok=True)  # a child that died before claiming it
            Path(f"{self.spec_path}.{self.pid}").unlink(missing_ok=True)  # the (emptied) claim
            self.spec_path = None
        if isinstance(self.process, ForkedProcess):
            self.process.close()
        await super().cleanup(restart=restart)


class ForkedPageKernelManager(ServerKernelManager):
    """jupyter_server's kernel manager with a ``ForkingProvisioner`` (no entry point needed) when the server has a
    ``page_kernel_forker``; otherwise exactly ServerKernelManager."""

    async def _async_pre_start_kernel(self, **kw):
        if self.provisioner is None and find_forker(self) is not None:
            self.kernel_id = self.kernel_id or kw.pop("kernel_id", None) or str(uuid.uuid4())
            self.provisioner = ForkingProvisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
        return await super()._async_pre_start_kernel(**kw)


def find_forker(obj) -> PageKernelForker | None:
    """The ``page_kernel_forker`` of the application above ``obj`` (provisioner -> kernel manager -> mapping
    kernel manager -> the Voila app), or None."""
    while obj is not None:
        forker = getattr(obj, "page_kernel_forker", None)
        if forker is not None:
            return forker
        obj = getattr(obj, "parent", None)
    return None


def _withdraw(path: Path) -> None:
    """Withdraw a page kernel request that failed (e.g. its answer timed out, though the child may be forked).

    The child claims the spec file by renaming it to ``<path>.<pid>`` (``_zygote._page_child``), so exactly one of
    us gets it: if we remove it first, a child forked now or later exits at once; if the child has it, it is
    starting a kernel on the connection file (the ports) the exec fallback is about to use, and is killed.
    """
    try:
        path.unlink()
        return
    except FileNotFoundError:
        pass
    for claim in path.parent.glob(path.name + ".*"):
        pid = claim.name.rsplit(".", 1)[1]
        if pid.isdigit():
            _kill(int(pid), claimed=True)
            log.warning("Killed page kernel %s, forked after its fork request had failed", pid)
        claim.unlink(missing_ok=True)


def _kill(pid: int, *, claimed: bool = False, wait: float = 5.0) -> None:
    """SIGKILL a forked page kernel (not our child: the zygote or PID 1 reaps it) and wait until it is gone, so its
    sockets are closed. A child that ``claimed`` its spec file had called setsid() before: a pid that is not a
    session leader then is already someone else's."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:  # no pidfd (a seccomp filter): by number, without the wait
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        return
    try:
        if not claimed or os.getsid(pid) == pid:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.poll(wait * 1000)
    except OSError:
        pass
    finally:
        os.close(pidfd)


def _same_interpreter(found: str, ours: str) -> bool:
    # the same venv (its bin/ directory) and the same binary: a venv's python is a symlink to the base one
    return (os.path.dirname(os.path.abspath(found)) == os.path.dirname(os.path.abspath(ours))
            and os.path.realpath(found) == os.path.realpath(ours))


def _launcher() -> str:
    spec = importlib.util.find_spec("ipykernel_launcher")
    return spec.origin if spec and spec.origin else "ipykernel_launcher"
