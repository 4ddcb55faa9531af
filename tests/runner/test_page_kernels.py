"""Voila page kernels forked from the runner's fork server (runner_kernel/page_kernels.py), through jupyter_client.

Real processes throughout: a RunnerHost's pool and its fork server, jupyter_client's kernel manager with the
ForkingProvisioner, kernels answering over ZMQ. The point to prove: a page kernel is the fork server's child and
gets its environment (which can hold the viewer's token) without the fork server ever holding it, so no tool
kernel forked later can find it in the memory it inherits.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
from pathlib import Path

import psutil
import pytest
from traitlets.config import Configurable

from runner_kernel import RunLimits, Runner, RunRequest
from runner_kernel.forkserver import ForkServerError
from runner_kernel.page_kernels import (
    PAGE_MODULES,
    ForkedPageKernelManager,
    ForkedProcess,
    PageKernelForker,
)
from runner_kernel.pool import TOOLKIT_DIR
from runner_kernel.runner_host import RunnerHost

from ..conftest import memory_contains

pytestmark = pytest.mark.timeout(180)

MARKER_ENV = "SKT_PAGE_SECRET"


class App(Configurable):
    """Stands in for the Voila app: what find_forker() looks for above the kernel manager."""

    page_kernel_forker = None


async def execute(km, code: str) -> str:
    """Run ``code`` in the kernel; its stdout."""
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        reply = await kc.execute_interactive(code, timeout=30, output_hook=lambda m: out.append(m))
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(m["content"].get("text", "") for m in out if m["msg_type"] == "stream")
    finally:
        kc.stop_channels()


out: list = []


@pytest.fixture
async def host(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("reads the fork server's memory through /proc/<pid>/mem (root)")
    host = RunnerHost(1, pool_options={"limits": RunLimits(timeout=30)})
    host.prepare()
    yield host
    await host.stop()


def kernel_manager(forker, cwd: Path, env: dict) -> tuple[ForkedPageKernelManager, dict]:
    app = App()
    app.page_kernel_forker = forker
    km = ForkedPageKernelManager(parent=app, kernel_name="python3")
    return km, {"env": env, "cwd": str(cwd)}


async def test_a_page_kernel_is_forked_and_its_environment_never_reaches_the_fork_server(host, tmp_path):
    out.clear()
    secret = "page-secret-" + secrets.token_hex(16)
    env = {**os.environ, MARKER_ENV: secret}
    forker = PageKernelForker(host)
    km, kw = kernel_manager(forker, tmp_path, env)
    await km.start_kernel(**kw)
    try:
        assert isinstance(km.provisioner.process, ForkedProcess), "the exec path was taken"
        zygote = host.pool._zygote
        page = psutil.Process(km.provisioner.pid)
        assert page.ppid() == zygote.pid  # forked by the fork server, not exec'd by us
        assert os.getsid(page.pid) == page.pid
        text = await execute(km, "import os, sys\n"
                                  f"print('SECRET=' + os.environ.get({MARKER_ENV!r}, ''))\n"
                                  "print('CWD=' + os.getcwd())\n"
                                  "print('PATH=' + repr(sys.path))\n"
                                  "import ipywidgets, comm\n"
                                  "print('WIDGETS=' + str('jupyter.widget' in comm.get_comm_manager().targets))\n")
        assert f"SECRET={secret}" in text
        assert f"CWD={tmp_path}" in text
        assert str(TOOLKIT_DIR) not in text  # the server's sys.path, not the fork server's
        assert "WIDGETS=True" in text  # ipywidgets' comm targets, though it was imported before the kernel
        # the child read its spec file and emptied it; the claim (its name, with the pid) goes with the kernel
        claims = list((host.dir / "pages").iterdir())
        assert [c.name.rsplit(".", 1)[1] for c in claims] == [str(page.pid)]
        assert claims[0].stat().st_size == 0

        # The fork server never held the page kernel's environment: not in its start-up environment or command
        # line, nor anywhere in its memory, which every tool kernel forked from it inherits.
        zygote_proc = psutil.Process(zygote.pid)
        assert secret not in json.dumps(zygote_proc.environ()) and secret not in " ".join(zygote_proc.cmdline())
        assert not memory_contains(zygote.pid, secret.encode())
        assert memory_contains(page.pid, secret.encode())  # the scan finds it where it is

        # A tool kernel forked after it (the tool libraries imported only now) has none of it either.
        await host.start()
        await host.pool.wait_ready()
        assert host.pool._zygote is zygote and zygote.preloaded
        kernel = await host.pool.acquire()
        try:
            assert psutil.Process(kernel.pid).ppid() == zygote.pid
            assert not memory_contains(kernel.pid, secret.encode())
        finally:
            host.pool.release(kernel)
        outcome = await Runner(host.pool).run(RunRequest(
            source="import sys\ndef run_tool(i, o):\n    return 'PANDAS=' + str('pandas' in sys.modules)\n",
            artifacts_dir=tmp_path / "artifacts"))
        assert "PANDAS=True" in json.dumps(outcome.envelope), outcome.envelope

        # jupyter_client's lifecycle on a pid that is not its child: restart, then shutdown
        await km.restart_kernel(now=True)
        assert km.provisioner.pid != page.pid and not page.is_running() or page.status() == psutil.STATUS_ZOMBIE
        assert psutil.Process(km.provisioner.pid).ppid() == zygote.pid
        assert "SECRET=" + secret in await execute(km, f"import os; print('SECRET=' + os.environ[{MARKER_ENV!r}])")
    finally:
        pid = km.provisioner.pid if km.provisioner else None
        await km.shutdown_kernel(now=True)
    assert not await km.is_alive()
    assert list((host.dir / "pages").iterdir()) == []
    await asyncio.sleep(0.2)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() != psutil.STATUS_ZOMBIE  # reaped


async def test_page_kernels_outlive_a_replaced_fork_server(host, tmp_path):
    out.clear()
    forker = PageKernelForker(host)
    km, kw = kernel_manager(forker, tmp_path, dict(os.environ))
    km2 = None
    await km.start_kernel(**kw)
    try:
        first = host.pool._zygote
        os.kill(first.pid, signal.SIGKILL)  # e.g. the OOM killer; the pool replaces it at its next request
        await asyncio.sleep(1.0)
        assert await km.is_alive()
        assert "alive" in await execute(km, "print('alive')")  # orphaned, still serving
        km2, kw2 = kernel_manager(forker, tmp_path, dict(os.environ))
        await km2.start_kernel(**kw2)
        assert host.pool._zygote is not first and host.pool.stats["fork_server_starts"] == 2
        assert isinstance(km2.provisioner.process, ForkedProcess)
        assert psutil.Process(km2.provisioner.pid).ppid() == host.pool._zygote.pid
        assert "second" in await execute(km2, "print('second')")
    finally:
        await km.shutdown_kernel(now=True)
        if km2 is not None:
            await km2.shutdown_kernel(now=True)


async def test_page_kernels_are_forked_when_the_runner_pool_started_its_fork_server_first(host, tmp_path):
    # SkriptoteketVoila.runner_start_wait=0: the runner's pool may start the fork server (for tool kernels) before
    # the first page kernel asks for it. That fork server must serve page kernels too, not send them to exec.
    out.clear()
    forker = PageKernelForker(host)  # made with the host, as SkriptoteketVoila.initialize() does
    await host.start()
    await host.pool.wait_ready()
    zygote = host.pool._zygote
    assert zygote is not None and zygote.preloaded  # the pool's own, with the tool libraries
    km, kw = kernel_manager(forker, tmp_path, dict(os.environ))
    await km.start_kernel(**kw)
    try:
        assert isinstance(km.provisioner.process, ForkedProcess), "the exec path was taken"
        assert forker.fallbacks == 0 and host.pool._zygote is zygote
        assert host.pool.stats["fork_server_starts"] == 1
        assert psutil.Process(km.provisioner.pid).ppid() == zygote.pid
        assert "forked" in await execute(km, "print('forked')")
    finally:
        await km.shutdown_kernel(now=True)


async def test_a_failing_fork_server_falls_back_to_exec(host, tmp_path, caplog):
    out.clear()

    async def broken(_modules):
        raise ForkServerError("fork server exited (test)")

    host.page_fork_server = broken
    forker = PageKernelForker(host)
    km, kw = kernel_manager(forker, tmp_path, dict(os.environ))
    await km.start_kernel(**kw)
    try:
        assert not isinstance(km.provisioner.process, ForkedProcess)
        assert psutil.Process(km.provisioner.pid).ppid() == os.getpid()  # exec'd by jupyter_client
        assert forker.fallbacks == 1 and "Forking a page kernel failed" in caplog.text
        assert "exec" in await execute(km, "print('exec')")
    finally:
        await km.shutdown_kernel(now=True)


async def test_a_child_forked_after_its_request_timed_out_is_killed_before_the_exec_fallback(host, tmp_path,
                                                                                           caplog):
    # The fork server forks the page kernel, but its answer comes too late (a busy machine): the request counts as
    # failed and the exec fallback starts a kernel on the same connection file. The late child must not live on
    # (it would hold those ports, unmanaged).
    out.clear()
    zygote = await host.page_fork_server(PAGE_MODULES)
    real_reply = zygote._reply
    late = []

    async def late_reply(timeout):
        reply = await real_reply(timeout)  # the child is forked
        late.append(reply["pid"])
        for _ in range(600):  # until it has taken its spec file: it starts its kernel now
            if not list((host.dir / "pages").glob("*.json")):
                break
            await asyncio.sleep(0.05)
        raise ForkServerError("fork server did not answer: TimeoutError()")  # what _reply says after a timeout

    zygote._reply = late_reply
    forker = PageKernelForker(host)
    km, kw = kernel_manager(forker, tmp_path, dict(os.environ))
    await km.start_kernel(**kw)
    try:
        assert late and forker.fallbacks == 1 and forker.forked == 0
        assert not isinstance(km.provisioner.process, ForkedProcess)
        assert not psutil.pid_exists(late[0]) or psutil.Process(late[0]).status() == psutil.STATUS_ZOMBIE
        assert "Killed page kernel" in caplog.text
        assert list((host.dir / "pages").iterdir()) == []
        assert "exec" in await execute(km, "print('exec')")  # the exec'd kernel got its ports
    finally:
        await km.shutdown_kernel(now=True)


async def test_a_child_whose_request_was_withdrawn_exits_without_a_kernel(host, capfd):
    zygote = await host.page_fork_server(PAGE_MODULES)
    spec = host.dir / "pages" / "withdrawn.json"  # removed (withdrawn) before the child could claim it
    (host.dir / "pages").mkdir(mode=0o700, exist_ok=True)
    pid = await zygote.fork_page(str(spec), 10)
    for _ in range(600):
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the child of a withdrawn request is still running")
    # a quiet exit, not a failed kernel start (which prints its traceback to the fork server's log)
    assert "Traceback" not in capfd.readouterr().err + zygote.log_path.read_text()


def test_only_ipykernel_on_this_interpreter_is_forked():
    forker = PageKernelForker(host=None)
    env = {"PATH": os.path.dirname(sys.executable)}
    assert forker.can_fork([sys.executable, "-m", "ipykernel_launcher", "-f", "c.json"], {"env": env})
    assert forker.can_fork(["python", "-m", "ipykernel_launcher", "-f", "c.json"], {"env": env})
    assert not forker.can_fork(["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "c.json"], {"env": env})
    assert not forker.can_fork([sys.executable, "-m", "other_kernel", "-f", "c.json"], {"env": env})
    assert not forker.can_fork([sys.executable, "-m", "ipykernel_launcher"], {"env": env, "stdout": 1})
