"""The pool's side of its fork server (``_zygote.py``): start it, ask it for a kernel, stop it.

One per KernelPool. A kernel start then costs a fork and IPKernelApp's own start-up instead of a new interpreter
importing ipykernel, pandas and the toolkit (1.5-2 s of CPU on every refill).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from pathlib import Path

ZYGOTE = Path(__file__).with_name("_zygote.py")


class ForkServerError(RuntimeError):
    """The fork server is gone or refused: the pool drops it and starts another (with its retry backoff)."""


class ForkServer:
    def __init__(self, python: str, env: dict[str, str], preload: tuple[str, ...], cwd: Path, log_path: Path,
                 *, page_modules: tuple[str, ...] = (), defer_preload: bool = False):
        """``page_modules``: also fork Voila page kernels (runner_kernel/page_kernels.py), with these imported.
        ``defer_preload``: start without ``preload``; ``await ensure_preloaded()`` imports it later."""
        self.python, self.env, self.preload, self.cwd, self.log_path = python, env, preload, cwd, log_path
        self.page_modules = tuple(page_modules)
        self.preloaded = not defer_preload
        self.process: subprocess.Popen | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()  # one request at a time: replies come back in order, unlabelled
        self._broken = False  # a request got no answer: the next answer could be the wrong one

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def alive(self) -> bool:
        return (self.process is not None and self.process.poll() is None and not self._broken
                and self._writer is not None and not self._writer.is_closing())

    async def start(self, timeout: float) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        config = {"parent_pid": os.getpid(), "preload": list(self.preload) if self.preloaded else []}
        fds = [theirs.fileno()]
        if self.page_modules:
            # page kernels write where an exec'd one would: this process's stdout and stderr (a tool kernel closes
            # these copies right after its fork, with every other inherited fd)
            stdio = [os.dup(1), os.dup(2)]
            fds += stdio
            config.update(page_modules=list(self.page_modules), page_stdio=stdio)
        try:
            with open(self.log_path, "ab") as log:  # noqa: ASYNC230
                # Popen on the loop's thread: PR_SET_PDEATHSIG follows the thread that forked it.
                self.process = subprocess.Popen(  # noqa: ASYNC220 - fast (vfork), and see above
                    [self.python, str(ZYGOTE), str(theirs.fileno()), json.dumps(config)],
                    env=self.env, cwd=self.cwd, pass_fds=fds, stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,  # no terminal's signals
                )
        finally:
            theirs.close()
            for fd in fds[1:]:
                os.close(fd)
        ours.setblocking(False)
        self._reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        ready = await self._reply(timeout)
        if not ready.get("ready"):
            raise ForkServerError(f"fork server did not start: {ready}")

    async def fork(self, request: dict, timeout: float) -> int:
        """Ask for one kernel; its pid (= process group = session id)."""
        reply = await self._request(request, timeout)
        if "pid" not in reply:  # e.g. fork() failed with EAGAIN: this server is fine, the pool retries
            raise ForkServerError(f"fork server refused: {reply.get('error')}")
        return int(reply["pid"])

    async def fork_page(self, spec_path: str, timeout: float) -> int:
        """Ask for a Voila page kernel. Only the path of its private spec file travels (see _zygote.py)."""
        if not self.page_modules:
            raise ForkServerError("this fork server was not started for page kernels")
        return await self.fork({"op": "page", "spec": spec_path}, timeout)

    async def ensure_preloaded(self, timeout: float) -> None:
        """Import the deferred ``preload`` (the tool libraries) in the fork server, once."""
        if self.preloaded:
            return
        reply = await self._request({"op": "preload", "modules": list(self.preload)}, timeout)
        if not reply.get("ok"):
            raise ForkServerError(f"fork server did not preload: {reply}")
        self.preloaded = True

    async def _request(self, request: dict, timeout: float) -> dict:
        async with self._lock:
            if not self.alive():
                raise ForkServerError("fork server is not running")
            try:
                self._writer.write(json.dumps(request, separators=(",", ":")).encode() + b"\n")
                await self._writer.drain()
                return await self._reply(timeout)
            except BaseException:
                self._broken = True
                raise

    async def _reply(self, timeout: float) -> dict:
        try:
            line = await asyncio.wait_for(self._reader.readline(), timeout)
        except (TimeoutError, OSError, ValueError) as exc:
            raise ForkServerError(f"fork server did not answer: {exc!r}") from exc
        if not line:
            raise ForkServerError(f"fork server exited ({_tail(self.log_path)})")
        return json.loads(line)

    async def close(self) -> None:
        """Closing the socket ends it (EOF); SIGKILL in case it is stuck. Its kernels are the pool's to kill;
        page kernels outlive it (they watch the server process instead)."""
        if self._writer is not None:
            self._writer.close()
        if self.process is not None:
            try:
                self.process.kill()
            except ProcessLookupError:
                pass
            await asyncio.to_thread(self.process.wait)


def _tail(path: Path, size: int = 1000) -> str:
    try:
        return path.read_bytes()[-size:].decode("utf-8", "replace").strip() or "no output"
    except OSError:
        return "no output"
