"""One warm ``KernelPool`` per user server, serving run requests to the page kernels over a private Unix socket.

Why: the tool app's page kernel (the Voila kernel that draws the form) must never run tool code, and each page
must not start its own pool (a pool costs a kernel start, ~0.6–3 s, and ~55 MB per kernel). So the single-user
launcher process (``runner_kernel.singleuser``) hosts one pool and one ``Runner``; page kernels ask it to run a
tool and get the raw envelope back.

Transport: a Unix socket in a private runtime directory (mode 0700; the socket 0600), plus a per-server random
secret in a 0600 file next to it. A page kernel learns the directory from ``$SKRIPTOTEKET_RUNNER_DIR`` (set in
the launcher's environment before any page kernel starts; tool kernels get a scrubbed environment and, as root,
run under another account that cannot enter the directory). Messages are one JSON object each way, prefixed by
its length (4 bytes, big-endian). Files travel by path: the page kernel writes uploads under
``{dir}/staging/``; the host refuses paths outside it, copies them into the tool's kernel, and copies artifacts to
a directory under ``staging/`` whose paths it returns.

Request ``{"secret", "op": "run", "run": {source, entrypoint, inputs, files: [[name, path]], settings, action,
timeout}}`` → ``{"ok": true, "outcome": {envelope, stdout, stderr, traceback, timings, artifact_files: {id: path},
artifacts_dir}}``; ``{"op": "status"}`` → pool counters. Errors: ``{"ok": false, "error": code}``.

This module's top level imports only the standard library: page kernels import it for ``run_tool()``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import socket
import secrets
import shutil
import struct
import tempfile
import time
from pathlib import Path

ENV_DIR = "SKRIPTOTEKET_RUNNER_DIR"
SOCKET_NAME = "runner.sock"
SECRET_NAME = "secret"
STAGING_NAME = "staging"
MAX_FRAME = 64 * 1024 * 1024  # tool source + inputs; files travel by path
MAX_TIMEOUT = 600.0

log = logging.getLogger("runner_kernel.host")


class RunnerUnavailable(Exception):
    """The runner host cannot be reached or refused the request (the tool app says "try again later")."""


# ---------------------------------------------------------------------------------------------- framing


async def _read_frame(reader: asyncio.StreamReader) -> dict:
    header = await reader.readexactly(4)
    (size,) = struct.unpack(">I", header)
    if size > MAX_FRAME:
        raise ValueError("frame too large")
    return json.loads(await reader.readexactly(size))


def _frame(message: dict) -> bytes:
    data = json.dumps(message, default=str).encode("utf-8")
    return struct.pack(">I", len(data)) + data


# ---------------------------------------------------------------------------------------------- the host


class RunnerHost:
    """The pool, the runner and the socket server of one user server. ``prepare()`` (sync, before page kernels
    start: it sets ``$SKRIPTOTEKET_RUNNER_DIR``), then ``await start()`` on the server's event loop, then
    ``await stop()``."""

    def __init__(self, pool_size: int = 1, *, base_dir: str | None = None, pool_options: dict | None = None):
        self.pool_size = pool_size
        self.base_dir = base_dir
        self.pool_options = pool_options or {}
        self.dir: Path | None = None
        self.secret = ""
        self.pool = None
        self.runner = None
        self._server: asyncio.AbstractServer | None = None
        self.stats = {"runs": 0, "refused": 0, "errors": 0, "busy": 0}
        # Admission (docs/operations.md): runs waiting for a kernel beyond this are answered "busy" at once
        # (the page says "try again in a moment") instead of queueing towards their time limit.
        self.max_queue = int(os.environ.get("SKRIPTOTEKET_RUNNER_MAX_QUEUE", "10"))
        self.active = 0

    @property
    def socket_path(self) -> Path:
        return self.dir / SOCKET_NAME

    @property
    def staging(self) -> Path:
        return self.dir / STAGING_NAME

    def prepare(self) -> dict[str, str]:
        """Make the private runtime directory and the secret; export the directory for page kernels."""
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="skr-runner-", dir=self.base_dir))
            os.chmod(self.dir, 0o700)
            self.staging.mkdir(mode=0o700)
            self.secret = secrets.token_hex(32)
            fd = os.open(self.dir / SECRET_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.secret)
        os.environ[ENV_DIR] = str(self.dir)
        return {ENV_DIR: str(self.dir)}

    async def start(self) -> RunnerHost:
        from .runner import Runner

        self.prepare()
        # bind under a tight umask with no await in between: the umask is process-wide, and any file another
        # coroutine created meanwhile would get mode 0600 too
        self.socket_path.unlink(missing_ok=True)  # a stale socket of an earlier start
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.socket_path))
        finally:
            os.umask(old)
        os.chmod(self.socket_path, 0o600)
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=1 << 20)
        self._make_pool()
        self.runner = Runner(self.pool)
        if self.pool_size > 0:
            await self.pool.start()
        log.info("Runner host on %s (pool of %s)", self.socket_path, self.pool_size)
        return self

    def _make_pool(self):
        if self.pool is None:
            from .limits import RunLimits
            from .pool import KernelPool

            options = {"limits": RunLimits.production(), **self.pool_options}
            self.pool = KernelPool(size=self.pool_size, **options)
        return self.pool

    async def page_fork_server(self, page_modules: tuple[str, ...]):
        """The pool's fork server, for the server's Voila page kernels (runner_kernel/page_kernels.py). It may be
        asked before ``start()``: page kernels start with the server, the runner's pool after the first page."""
        self.prepare()
        return await self._make_pool().page_fork_server(page_modules)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.shutdown(), 20)
            except Exception as exc:  # noqa: BLE001 - stopping must go on
                log.warning("runner pool shutdown: %s", exc)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def status(self) -> dict:
        pool = self.pool
        return {
            "pool_size": self.pool_size,
            "ready": pool.ready_count if pool is not None else 0,
            "active": self.active,
            **self.stats,
            **({k: v for k, v in pool.stats.items() if k != "last_start_error"} if pool is not None else {}),
        }

    # ---- serving ---------------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                message = await asyncio.wait_for(_read_frame(reader), 30)
            except (asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
                return
            if not isinstance(message, dict) or not hmac.compare_digest(
                str(message.get("secret", "")).encode(), self.secret.encode()
            ):
                self.stats["refused"] += 1
                writer.write(_frame({"ok": False, "error": "forbidden"}))
                return
            op = message.get("op")
            if op == "status":
                reply = {"ok": True, "status": self.status()}
            elif op == "run" and self.active >= max(1, self.pool_size) + self.max_queue:
                self.stats["busy"] += 1
                reply = {"ok": False, "error": "busy"}
            elif op == "run":
                self.active += 1
                try:
                    reply = {"ok": True, "outcome": await self._run(message.get("run"))}
                    self.stats["runs"] += 1
                except ValueError as exc:
                    reply = {"ok": False, "error": "bad_request", "detail": str(exc)}
                except Exception:  # noqa: BLE001 - the page must get an answer, the log the traceback
                    log.exception("runner host: run failed")
                    self.stats["errors"] += 1
                    reply = {"ok": False, "error": "runner_failed"}
                finally:
                    self.active -= 1
            else:
                reply = {"ok": False, "error": "unknown_op"}
            writer.write(_frame(reply))
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def _staged(self, path: object) -> str:
        """A file the page kernel staged: must be a regular file under ``staging/`` (no symlink games)."""
        if not isinstance(path, str):
            raise ValueError("file path must be a string")
        real = os.path.realpath(path)
        root = os.path.realpath(self.staging)
        if os.path.commonpath([real, root]) != root or not os.path.isfile(real):
            raise ValueError("files must be staged under the runner's staging directory")
        return real

    async def _run(self, run: object) -> dict:
        from .runner import RunRequest

        if not isinstance(run, dict) or not isinstance(run.get("source"), str):
            raise ValueError("run.source is required")
        files = []
        for item in run.get("files") or []:
            if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
                raise ValueError("files are [name, path] pairs")
            files.append((item[0], self._staged(item[1])))
        action = run.get("action")
        if action is not None and not isinstance(action, dict):
            raise ValueError("action must be an object")
        timeout = run.get("timeout")
        limits = self.pool.limits
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
            limits = limits.replace(timeout=min(float(timeout), MAX_TIMEOUT))
        artifacts_dir = Path(tempfile.mkdtemp(prefix="artifacts-", dir=self.staging))
        request = RunRequest(
            source=run["source"],
            entrypoint=str(run.get("entrypoint") or "run_tool"),
            inputs=run.get("inputs") if isinstance(run.get("inputs"), dict) else {},
            files=files,
            settings=run.get("settings") if isinstance(run.get("settings"), dict) else {},
            action=action,
            limits=limits,
            artifacts_dir=artifacts_dir,
        )
        if self.pool_size > 0:
            outcome = await self.runner.run(request)
        else:  # no warm kernels (benchmarks' baseline, or to save memory): a kernel started for this run
            from .pool import KernelPool
            from .runner import Runner

            # One kernel and gone: a fork server (its own ~1 s of imports) would not pay for itself.
            options = {"limits": self.pool.limits, **self.pool_options, "fork_server": False}
            async with KernelPool(size=1, **options) as pool:
                outcome = await Runner(pool).run(request)
        return {
            "envelope": outcome.envelope,
            "stdout": outcome.stdout,
            "stderr": outcome.stderr,
            "traceback": outcome.traceback,
            "timings": outcome.timings,
            "artifact_files": {k: str(v) for k, v in outcome.artifact_files.items()},
            "artifacts_dir": str(artifacts_dir),
        }


# ---------------------------------------------------------------------------------------------- the client


def runner_dir() -> Path | None:
    value = os.environ.get(ENV_DIR)
    return Path(value) if value else None


def staging_dir() -> Path:
    """Where a page kernel writes files for a run (``RunnerUnavailable`` without a host)."""
    base = runner_dir()
    if base is None or not (base / STAGING_NAME).is_dir():
        raise RunnerUnavailable("no runner host in this server")
    return base / STAGING_NAME


async def request(message: dict, *, timeout: float = MAX_TIMEOUT + 60) -> dict:
    """Send one request to this server's runner host; the reply's ``ok`` is checked."""
    base = runner_dir()
    if base is None:
        raise RunnerUnavailable("no runner host in this server")
    try:
        secret = (base / SECRET_NAME).read_text().strip()
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(base / SOCKET_NAME), limit=1 << 20), 10)
    except (OSError, asyncio.TimeoutError) as exc:
        raise RunnerUnavailable(f"runner host unreachable: {exc}") from exc
    try:
        writer.write(_frame({**message, "secret": secret}))
        await writer.drain()
        reply = await asyncio.wait_for(_read_frame(reader), timeout)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
        raise RunnerUnavailable(f"runner host failed: {exc!r}") from exc
    finally:
        writer.close()
    if not reply.get("ok"):
        raise RunnerUnavailable(str(reply.get("error")) + (f": {reply['detail']}" if reply.get("detail") else ""))
    return reply


async def run_tool(run: dict) -> dict:
    """Run a tool in a fresh pooled kernel of this server; returns the outcome dict (see the module doc)."""
    t0 = time.perf_counter()
    reply = await request({"op": "run", "run": run}, timeout=float(run.get("timeout") or 120) + 60)
    outcome = reply["outcome"]
    outcome.setdefault("timings", {})["host_round_trip_s"] = time.perf_counter() - t0
    return outcome
