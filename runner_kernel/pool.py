"""A warm pool of single-use ipykernel kernels, each started scrubbed, limited and in its own session.

A kernel is started before the run it will serve is known: it gets a private directory with a work dir
(``input/``, ``output/``, ``tmp/``) and has the heavy libraries tools use already imported. ``acquire()`` hands
one out and starts a replacement in the background; ``release()`` kills it — a kernel never serves a second run.
Kernels are forked from the pool's fork server (``_zygote.py``), which imported those libraries once; each is a
fresh fork of that clean process. ``fork_server=False`` starts every kernel as a new interpreter instead.
No global state: a pool belongs to the event loop it was started on, so a server can host one per user.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pwd
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

from jupyter_client import AsyncKernelClient
from jupyter_client.connect import write_connection_file
from jupyter_client.session import new_id_bytes

from .forkserver import ForkServer
from .limits import RunLimits

log = logging.getLogger("runner_kernel")

TOOLKIT_DIR = Path(__file__).with_name("toolkit")
LAUNCHER = Path(__file__).with_name("_launch.py")
KERNEL_ARGS = ["--HistoryManager.enabled=False"]  # the fork server's children get the same (_zygote.py)
FORK_TIMEOUT = 10.0  # the fork server answers a request in milliseconds; a stopped or hung one is replaced
RUNNER_USER = "skriptoteket-runner"
DEFAULT_PRELOAD = ("pandas", "openpyxl")
#: Landlock for kernels (runner_kernel/_landlock.py): ``off`` (default), ``auto`` (when the kernel supports it; the
#: user image sets this), ``on`` (kernels do not start without it). For servers whose kernels share their uid.
LANDLOCK_ENV = "SKRIPTOTEKET_RUNNER_LANDLOCK"
#: What a landlocked kernel may read (and execute) besides the interpreter and its libraries; never the home.
LANDLOCK_READ_ONLY = ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/opt", "/proc", "/sys", "/var/cache")
_SECRET = re.compile(r"TOKEN|SECRET|PASSW|KEY|CREDENTIAL|AUTH", re.I)


def scrubbed_env(home: Path, python: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A fresh environment for a kernel: built from nothing, so nothing of the parent's leaks in.

    ``extra`` (deployment settings such as a locale) is merged, but never a name that looks like a secret.
    """
    env = {
        "PATH": os.pathsep.join([os.path.dirname(python), "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "PYTHONPATH": str(TOOLKIT_DIR),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "MPLBACKEND": "Agg",
        # "CPU: 1 core" (contract §7): numeric libraries must not start a thread per core.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_MAX_THREADS": "1",
        # glibc reserves 64 MiB of address space per malloc arena (one per thread): keep RLIMIT_AS meaningful.
        "MALLOC_ARENA_MAX": "2",
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    for name, value in (extra or {}).items():
        if not _SECRET.search(name):
            env[name] = str(value)
    return env


def _landlock_mode(mode: str) -> bool:
    """Whether kernels get Landlock (see LANDLOCK_ENV); ``on`` without kernel support is an error."""
    if mode not in ("off", "auto", "on"):
        raise ValueError(f"{LANDLOCK_ENV} must be off, auto or on, not {mode!r}")
    if mode == "off":
        return False
    from . import _landlock

    version = _landlock.abi()
    if version < 1:
        if mode == "on":
            raise RuntimeError(f"{LANDLOCK_ENV}=on but this Linux kernel has no Landlock")
        log.warning("Landlock is not available: tool kernels can read what this server's account can")
        return False
    if version < 4:
        log.warning("Landlock ABI %s: tool kernels' files are confined, their TCP connections are not", version)
    return True


def runner_account(name: str = RUNNER_USER) -> tuple[int, int]:
    """uid/gid of the unprivileged account kernels run as when we are root; created (system user) if missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", name],
            check=True, capture_output=True,
        )
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def ensure_searchable(paths: list[str]) -> list[str]:
    """Give "others" search (x, not read) permission on directories above ``paths`` that lack it.

    As root the kernels run as another account, which must reach the interpreter, its libraries and the toolkit.
    A pyenv Python under /root (mode 0700) is the usual obstacle on a demo or CI box. Search-only permission
    lets the account open known paths without listing anything. Returns the directories changed (logged).
    """
    changed = []
    dirs = set()
    for path in filter(os.path.exists, filter(None, paths)):
        for p in {Path(os.path.abspath(path)), Path(os.path.realpath(path))}:
            dirs.update([p, *p.parents] if p.is_dir() else p.parents)
    for d in sorted(dirs):
        mode = d.stat().st_mode
        if not mode & 0o001:
            os.chmod(d, (mode & 0o7777) | 0o001)
            changed.append(str(d))
    if changed:
        log.warning("gave other accounts search permission (o+x) on %s so %s can run the kernel",
                    ", ".join(changed), RUNNER_USER)
    return changed


@dataclass(eq=False)
class PooledKernel:
    """One started kernel and its private directory. Used for exactly one run."""

    kc: AsyncKernelClient
    root: Path  # private (0700) directory: connection file, ipc sockets, tool source, result
    pid: int  # also its process group and session id (setsid)
    owner: tuple[int, int] | None
    died: asyncio.Future = field(repr=False)  # resolves when the process exits (pidfd, no polling)
    proc: subprocess.Popen | None = None  # exec path only; a forked kernel is the fork server's child
    pidfd: int = -1
    wait_s: float = 0.0  # how long acquire() waited for it

    @property
    def work_dir(self) -> Path:
        return self.root / "work"

    @property
    def input_dir(self) -> Path:
        return self.work_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.work_dir / "output"

    def alive(self) -> bool:
        if self.pidfd >= 0:  # readable once the process has exited
            return not select.select([self.pidfd], [], [], 0)[0]
        return not self.died.done()

    def exit_status(self) -> str:
        """For logs: the exit code if we are its parent (exec path); a forked kernel is reaped by the fork server."""
        return "unknown (reaped by the fork server)" if self.proc is None else str(self.proc.poll())

    def kill(self) -> None:
        """SIGKILL the kernel's whole process group: forked children die with it. Cheap; safe to repeat."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.pidfd >= 0:  # the kernel itself, even if it had not called setsid yet
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except OSError:
                pass


class KernelPool:
    """Keeps ``size`` kernels started and ready.

    Use as ``async with KernelPool(...) as pool`` or call ``await pool.start()`` / ``await pool.shutdown()``.

    ``refill_delay``: seconds between a run's release and the start of its replacement, so the kernel start
    (~0.1 s of CPU forked, 1-3 s with ``fork_server=False``) does not compete with the page drawing the run's
    result on a small machine. An ``acquire()`` that finds the pool empty starts a delayed refill at once.

    ``page_modules``: the fork server, whoever starts it (a kernel start or ``page_fork_server()``), also serves
    Voila page kernels with these imported (runner_kernel/page_kernels.py).
    """

    def __init__(
        self,
        size: int = 2,
        limits: RunLimits | None = None,
        *,
        preload: tuple[str, ...] = DEFAULT_PRELOAD,
        run_as: str | None = "auto",
        isolate_network: bool | str = "auto",
        base_dir: str | os.PathLike | None = None,
        python: str = sys.executable,
        extra_env: dict[str, str] | None = None,
        startup_timeout: float = 60.0,
        landlock: str | None = None,
        refill_delay: float = 0.0,
        fork_server: bool = True,
        page_modules: tuple[str, ...] = (),
    ):
        self.size = size
        self.limits = limits or RunLimits()
        self.preload = tuple(preload)
        self.python = python
        self.extra_env = extra_env
        self.startup_timeout = startup_timeout
        self.refill_delay = refill_delay
        self.fork_server = fork_server
        root = os.geteuid() == 0
        # As root, RLIMIT_NPROC binds nothing and file modes protect nothing: run kernels as a dedicated user.
        self.run_as = (RUNNER_USER if root else None) if run_as == "auto" else run_as
        self.isolate_network = root if isolate_network == "auto" else bool(isolate_network)
        self.landlock = _landlock_mode(landlock or os.environ.get(LANDLOCK_ENV, "off"))
        self._base_arg = base_dir
        self._owner: tuple[int, int] | None = None
        self._base: Path | None = None
        self._ready: asyncio.Queue[PooledKernel] | None = None
        self._live: set[int] = set()  # pid of every kernel process we own, whatever its stage
        self._zygote: ForkServer | None = None
        self._started = False
        self._page_modules = tuple(page_modules)  # or set once the server's page kernels use the fork server
        self._zygote_lock = asyncio.Lock()
        self._forking = 0  # fork requests whose reply (the pid) has not arrived yet
        self._tasks: set[asyncio.Task] = set()
        self._starting = 0
        self._hurry = asyncio.Event()  # set while an acquire() waits: delayed refills start now
        self._waiting = 0
        self._closing = False
        self.stats = {"started": 0, "start_failures": 0, "acquired": 0, "wait_s_total": 0.0, "wait_s_last": 0.0,
                      "last_start_error": None, "start_s_last": 0.0, "start_cpu_s_last": 0.0,
                      "fork_server_starts": 0}

    # ------------------------------------------------------------------------------------------ lifecycle

    async def start(self, wait: bool = False) -> KernelPool:
        if not self._started:
            self._prepare()
            self._started = True
            self._fill()
        if wait:
            await self.wait_ready()
        return self

    def _prepare(self) -> None:
        if self._ready is None:
            self._ready = asyncio.Queue()
            if self.run_as:
                self._owner = runner_account(self.run_as) if self.run_as == RUNNER_USER else (
                    pwd.getpwnam(self.run_as).pw_uid, pwd.getpwnam(self.run_as).pw_gid)
                ensure_searchable([self.python, sys.base_prefix, sys.prefix, *sys.path, str(TOOLKIT_DIR)])
            self._base = Path(tempfile.mkdtemp(prefix="skr-", dir=self._base_arg))
            os.chmod(self._base, 0o711)  # the kernel's account may enter its own dir, but not list others

    async def page_fork_server(self, page_modules: tuple[str, ...]) -> ForkServer:
        """The fork server, also serving the user server's Voila page kernels (runner_kernel/page_kernels.py).

        Started (if need be) with ``page_modules`` imported but without ``preload``: a cold server's first page must
        not wait for pandas. The first tool kernel start imports it then (``ensure_preloaded``). A fork server this
        pool replaces later imports ``page_modules`` too.
        """
        if self._closing or not self.fork_server:
            raise RuntimeError("the kernel pool is shut down" if self._closing else "fork_server=False")
        self._page_modules = tuple(page_modules)
        self._prepare()
        return await self._fork_server(tools=False)

    async def __aenter__(self) -> KernelPool:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.shutdown()

    async def wait_ready(self) -> None:
        """Wait until every kill and refill in flight is done (benchmarks and tests; not needed to serve)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def shutdown(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            if task.get_coro().__name__ == "_keep_one":
                task.cancel()
        while self._ready is not None and not self._ready.empty():
            self.release(self._ready.get_nowait())
        await self.wait_ready()
        for pid in list(self._live):  # a start cancelled half-way
            _killpg(pid)
        self._live.clear()
        if self._zygote is not None:
            await self._zygote.close()
            self._zygote = None
        if self._base is not None:
            shutil.rmtree(self._base, ignore_errors=True)

    # ------------------------------------------------------------------------------------------ serving

    async def acquire(self, timeout: float | None = None) -> PooledKernel:
        """A ready kernel, waiting for one if the pool is empty (the wait is in ``kernel.wait_s``)."""
        if not self._started:
            await self.start()
        if self._closing:
            raise RuntimeError("the kernel pool is shut down")
        t0 = time.perf_counter()
        deadline = None if timeout is None else t0 + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.perf_counter())
            if self._ready.empty():
                # someone waits: refills start now, delayed ones too
                self._waiting += 1
                self._hurry.set()
                self._fill()
                try:
                    kernel = await asyncio.wait_for(self._ready.get(), remaining)
                finally:
                    self._waiting -= 1
                    if not self._waiting:
                        self._hurry.clear()
            else:
                kernel = self._ready.get_nowait()
            if self._ready.empty():
                # Ran dry: refill after refill_delay. Otherwise release() starts them once the run is over, so a
                # kernel start does not compete with the run, or the page drawing it, on a small machine.
                self._fill(self.refill_delay)
            if kernel.alive():
                break
            log.warning("pooled kernel %s died while idle; discarding it", kernel.pid)
            self.release(kernel)
        kernel.wait_s = time.perf_counter() - t0
        self.stats["acquired"] += 1
        self.stats["wait_s_last"] = kernel.wait_s
        self.stats["wait_s_total"] += kernel.wait_s
        return kernel

    def release(self, kernel: PooledKernel) -> None:
        """Kill a kernel after its run (or unused), start its replacement, clean up in the background."""
        kernel.kill()
        if self._ready is not None:
            self._fill(self.refill_delay)
        self._spawn(self._dispose(kernel))

    @property
    def ready_count(self) -> int:
        return 0 if self._ready is None else self._ready.qsize()

    # ------------------------------------------------------------------------------------------ internals

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _fill(self, after: float = 0.0) -> None:
        while not self._closing and self._ready.qsize() + self._starting < self.size:
            self._starting += 1
            self._spawn(self._keep_one(after))

    async def _keep_one(self, after: float = 0.0) -> None:
        """Start one kernel, retrying with backoff: a hostile run may briefly exhaust the account's processes."""
        delay = 0.5
        try:
            if after > 0 and not self._hurry.is_set():
                try:
                    await asyncio.wait_for(self._hurry.wait(), after)
                except TimeoutError:
                    pass
            while not self._closing:
                try:
                    kernel = await self._start_kernel()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    self.stats["start_failures"] += 1
                    self.stats["last_start_error"] = "".join(traceback.format_exception_only(exc)).strip()
                    log.warning("starting a pooled kernel failed (retrying in %.1fs): %s", delay,
                                self.stats["last_start_error"])
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                    continue
                self.stats["started"] += 1
                self._ready.put_nowait(kernel)
                return
        finally:
            self._starting -= 1

    async def _start_kernel(self) -> PooledKernel:
        t0 = time.perf_counter()
        root = Path(tempfile.mkdtemp(prefix="k-", dir=self._base))
        work = root / "work"
        for d in (work, work / "input", work / "output", work / "tmp"):
            d.mkdir(exist_ok=True)
        if self._owner:
            for d in (root, work, work / "input", work / "output", work / "tmp"):
                os.chown(d, *self._owner)
        os.chmod(work, 0o700)

        options = {
            "limits": self.limits.kernel_limits(),
            "uid": self._owner[0] if self._owner else None,
            "gid": self._owner[1] if self._owner else None,
            "isolate_network": self.isolate_network,
        }
        if self.landlock:
            options["landlock"] = self._landlock_rules(root)
        connection_file = str(root / "connection.json")
        write_connection_file(
            connection_file, key=new_id_bytes(),
            # ipc sockets live in the private dir (no other account can reach them) and keep working inside
            # a network namespace with no interfaces.
            transport="ipc" if self.isolate_network else "tcp",
            ip=str(root / "ipc") if self.isolate_network else "127.0.0.1",
        )
        if self._owner:
            os.chown(connection_file, *self._owner)
        env = scrubbed_env(work, self.python, self.extra_env)
        kernel = None
        pid = proc = None
        try:
            if self.fork_server:
                zygote = await self._fork_server()
                self._forking += 1  # until its pid is in _live: _kill_strays must not take it for an escapee
                try:
                    pid = await zygote.fork({"options": options, "connection_file": connection_file,
                                             "root": str(root), "work_dir": str(work), "env": env},
                                            FORK_TIMEOUT)
                    self._live.add(pid)
                finally:
                    self._forking -= 1
            else:
                with open(root / "kernel.log", "wb") as kernel_log:  # the child keeps its own copy
                    proc = subprocess.Popen(
                        [self.python, str(LAUNCHER), _json(options), "--",
                         self.python, "-m", "ipykernel_launcher", "-f", connection_file, *KERNEL_ARGS],
                        env={**env, "JPY_PARENT_PID": str(os.getpid())}, cwd=work, start_new_session=True,
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        # Only what the kernel says before ipykernel captures fds 1/2 lands here: start-up errors.
                        stderr=kernel_log,
                    )
                pid = proc.pid
                self._live.add(pid)
            kc = AsyncKernelClient()
            kc.load_connection_file(connection_file)
            kc.start_channels()
            kernel = PooledKernel(kc=kc, root=root, pid=pid, owner=self._owner, proc=proc,
                                  died=asyncio.get_running_loop().create_future())
            self._watch_exit(kernel)
            warm = asyncio.ensure_future(self._warm(kernel))
            try:
                done, _ = await asyncio.wait({warm, kernel.died}, timeout=self.startup_timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                warm.cancel()
            if warm not in done:
                raise RuntimeError("the kernel exited while starting" if kernel.died in done
                                   else f"the kernel did not start within {self.startup_timeout:.0f} s")
            warm.result()
            self.stats["start_s_last"] = time.perf_counter() - t0
            self.stats["start_cpu_s_last"] = _cpu_seconds(pid)
            return kernel
        except BaseException as exc:
            if kernel is not None:
                await self._dispose(kernel)
            else:
                if pid is not None:
                    _killpg(pid)
                    self._live.discard(pid)
                if proc is not None:
                    await asyncio.to_thread(proc.wait)
            if isinstance(exc, Exception):
                tail = _tail(root / "kernel.log")
                if tail:
                    exc.add_note(f"kernel output: {tail}")
            shutil.rmtree(root, ignore_errors=True)
            raise

    async def _fork_server(self, tools: bool = True) -> ForkServer:
        """The running fork server, (re)started if there is none or it died or hung; ``tools``: with ``preload``."""
        async with self._zygote_lock:
            if self._zygote is not None and not self._zygote.alive():
                # Its kernels die with it (PR_SET_PDEATHSIG); the pool sees them go and replaces them. Page kernels
                # forked from it live on (they watch the server process, not their parent).
                log.warning("the kernel fork server (pid %s) is gone; starting another", self._zygote.pid)
                await self._zygote.close()
                self._zygote = None
            if self._zygote is None:
                env = {**scrubbed_env(self._base, self.python, self.extra_env),
                       # In /proc/<pid>/environ of every kernel (a fork shows its parent's start-up environment):
                       # how _kill_strays recognises this pool's escaped processes.
                       "SKRIPTOTEKET_POOL_DIR": str(self._base)}
                zygote = ForkServer(self.python, env, self.preload, self._base, self._base / "forkserver.log",
                                    page_modules=self._page_modules, defer_preload=not tools)
                self.stats["fork_server_starts"] += 1
                try:
                    await zygote.start(self.startup_timeout)
                except BaseException:
                    await zygote.close()
                    raise
                self._zygote = zygote
            if tools:
                await self._zygote.ensure_preloaded(self.startup_timeout)
            return self._zygote

    def _landlock_rules(self, root: Path) -> list[tuple[str, int]]:
        from . import _landlock

        python = [sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(self.python)), str(TOOLKIT_DIR)]
        return [*((p, _landlock.READ_ONLY) for p in (*LANDLOCK_READ_ONLY, *python)),
                ("/dev", _landlock.DEVICES), ("/dev/shm", -1), (str(root), -1)]

    async def _warm(self, kernel: PooledKernel) -> None:
        """Wait for the kernel, then import what tools need so a run pays nothing for it."""
        await _wait_for_ready(kernel.kc)
        lines = [f"try:\n    import {name}\nexcept Exception:\n    pass" for name in self.preload]
        lines.append("import _skriptoteket_driver, skriptoteket_toolkit, pdf_helper")
        # Not silent: the first non-silent execution in a kernel pays one-off costs (display hook, output
        # machinery); paid here, not by the run.
        msg_id = kernel.kc.execute("\n".join(lines), store_history=False)
        while True:  # drain iopub up to this request's idle: a run must see only its own messages
            msg = await kernel.kc.get_iopub_msg()
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status" \
                    and msg["content"]["execution_state"] == "idle":
                break
        reply = await kernel.kc.get_shell_msg()
        while reply["parent_header"].get("msg_id") != msg_id:  # a late kernel_info reply
            reply = await kernel.kc.get_shell_msg()
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"kernel warm-up failed: {reply['content'].get('ename')}")

    def _watch_exit(self, kernel: PooledKernel) -> None:
        loop = asyncio.get_running_loop()

        def exited():
            loop.remove_reader(kernel.pidfd)
            if not kernel.died.done():
                kernel.died.set_result(None)

        try:
            kernel.pidfd = os.pidfd_open(kernel.pid)
            loop.add_reader(kernel.pidfd, exited)
        except (AttributeError, OSError):  # no pidfd (old kernel, or already gone): poll
            async def poll():
                while _exists(kernel.pid) and (kernel.proc is None or kernel.proc.poll() is None):
                    await asyncio.sleep(0.2)
                if not kernel.died.done():
                    kernel.died.set_result(None)
            self._spawn(poll())

    async def _dispose(self, kernel: PooledKernel) -> None:
        kernel.kill()
        if kernel.pidfd >= 0:
            asyncio.get_running_loop().remove_reader(kernel.pidfd)
            os.close(kernel.pidfd)
            kernel.pidfd = -1
        kernel.kc.stop_channels()
        if kernel.proc is not None:  # ours to reap (exec path); a forked kernel is reaped by the fork server
            await asyncio.to_thread(kernel.proc.wait)
        self._live.discard(kernel.pid)
        await self._kill_strays(kernel.pid)
        await asyncio.to_thread(_rmtree, kernel.root)

    async def _kill_strays(self, sid: int) -> None:
        """Kill what a run left behind outside its process group.

        Anything still in the kernel's session (a child that called setpgid) dies. As root, so does any process
        of the runner account that belongs to none of our kernels but still carries this pool's directory in its
        environment (a child that called setsid). The account may be shared with other pools (one per user
        server in demo mode), so its other processes are left alone.
        """
        uid = self._owner[0] if self._owner else None
        marker = str(self._base).encode()
        for _ in range(20):
            procs = await asyncio.to_thread(_scan_processes, uid, marker)
            # Decided on the loop thread: a kernel launched before the scan has its pid recorded by now, unless
            # its fork request is still waiting for the reply; then only the run's own session is hunted this round.
            live, forking = set(self._live), self._forking > 0
            strays = [pid for pid, p_sid, ours in procs
                      if p_sid == sid or (ours and not forking and p_sid not in live)]
            if not strays and not forking:
                return
            for pid in strays:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            await asyncio.sleep(0.05)
        log.warning("processes of a finished run survived repeated SIGKILL")


def _scan_processes(uid: int | None, marker: bytes) -> list[tuple[int, int, bool]]:
    """(pid, session id, ours) of every process; ours: owned by ``uid`` with ``marker`` in its environment."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            # getsid(2) answers for any process on Linux: one system call instead of reading /proc/<pid>/stat,
            # 6x cheaper with a few hundred processes (each run's disposal scans them all; demo mode: the host's)
            sid = os.getsid(pid)
            ours = False
            if uid is not None and os.stat(f"/proc/{entry}").st_uid == uid:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    ours = marker in f.read()
        except OSError:
            continue
        out.append((pid, sid, ours))
    return out


async def _wait_for_ready(kc: AsyncKernelClient) -> None:
    """Until the kernel answers kernel_info and IOPub is connected (a message arrives on it).

    jupyter_client's ``wait_for_ready`` without a KernelManager polls the heartbeat every 0.2 s and then waits
    0.2 s for IOPub to fall silent: ~0.3 s of a refill spent sleeping. The caller's deadline and the kernel's
    death bound this loop; _warm then reads only the messages of its own request.
    """
    while True:
        msg_id = kc.kernel_info()
        try:
            reply = await kc.get_shell_msg(timeout=1)
            while reply["parent_header"].get("msg_id") != msg_id:
                reply = await kc.get_shell_msg(timeout=1)
            await kc.get_iopub_msg(timeout=0.2)  # the kernel_info request's busy/idle, once subscribed
            return
        except Empty:
            continue


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _cpu_seconds(pid: int) -> float:
    """User + system CPU a process (all its threads) has used so far; 0.0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rmtree(path: Path) -> None:
    def make_writable(func, p, _exc):  # a tool may leave a read-only dir behind
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=make_writable)


def _tail(path: Path, size: int = 2000) -> str:
    try:
        return path.read_bytes()[-size:].decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _json(value) -> str:
    return json.dumps(value, separators=(",", ":"))
