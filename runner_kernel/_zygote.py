"""The pool's fork server ("zygote"): imports the kernel's heavy modules once, then forks one kernel per request.

Usage (by runner_kernel/forkserver.py): python _zygote.py <control fd> '<json config>'

Started with the pool's scrubbed environment and the kernels' interpreter. It imports ipykernel (not started: no
zmq context, no threads, so forking is safe), the preloaded libraries and the toolkit, then serves JSON lines on
the control socket: a request ``{"options", "connection_file", "root", "work_dir", "env"}`` gets ``{"pid": N}`` or
``{"error": "..."}``. Each child is a fresh fork of this clean process, used for one run. The zygote reaps its
children (SIGCHLD) and exits at EOF on the control socket or when its parent dies (PR_SET_PDEATHSIG).

Two more requests when the server's page kernels are forked here too (runner_kernel/page_kernels.py):
``{"op": "page", "spec": path}`` forks a Voila page kernel. The zygote never reads that file: the page kernel's
environment (the viewer's token on Voila's cold path, the runner's directory) would stay in the memory every
later tool kernel inherits. The child claims it (renamed to ``<path>.<pid>``), reads it and empties it.
``{"op": "preload", "modules": [...]}`` imports the tool libraries late (the runner's pool asks when it first
fills), so a cold server's first page does not wait for pandas; answered ``{"ok": true}``.
"""

import ctypes
import gc
import importlib
import json
import os
import signal
import socket
import sys
import traceback

import _landlock  # noqa: F401 - imported here so a child needs no file access for it
from _launch import ConfineError, confine

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
KERNEL_ARGS = ["--HistoryManager.enabled=False"]
# What IPKernelApp.initialize() imports on its way (the debugger, the shell's inspector and completer helpers,
# storemagic, tornado's asyncio bridge): imported once here instead of in every kernel (-16 % of a forked
# kernel's start-up CPU, 104 -> 87 ms p50 measured alternating; docs/runner.md "Fork server").
KERNEL_MODULES = ("ipykernel.debugger", "IPython.core.completerlib", "IPython.core.debugger", "IPython.core.oinspect",
                  "IPython.extensions.storemagic", "pdb", "faulthandler", "tornado.platform.asyncio")


def _prctl(option, value):
    if ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option})")


def _reap(*_):
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(ctl, request, zygote_pid):
    """Become the kernel: everything _launch.py's exec path does, then IPKernelApp in this process. Never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the kernel waits for its own children
        os.setsid()  # pid == pgid == sid: the pool kills the group, then hunts the session
        ctl.close()
        # stdin from /dev/null, stdout discarded, stderr to kernel.log (start-up errors; ipykernel captures 1/2 later)
        null = os.open(os.devnull, os.O_RDWR)
        log = os.open(os.path.join(request["root"], "kernel.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(log, 2)
        os.closerange(3, 1 << 20)  # the control socket and whatever else the zygote held
        os.chdir(request["work_dir"])
        os.environ.clear()
        # /proc/<pid>/environ still shows the zygote's start-up environment (which names the pool's directory, so
        # _kill_strays finds escaped children); os.environ, what the kernel and its subprocesses see, is this:
        os.environ.update(request["env"], JPY_PARENT_PID=str(zygote_pid))
        confine(request["options"])
        _prctl(PR_SET_DUMPABLE, 1)  # as after an exec: /proc/<pid> owned by the kernel's account again
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # cleared by setuid, so set after confine()
        if os.getppid() != zygote_pid:
            raise ConfineError("the fork server exited while the kernel started")
        _fresh_state()
        _prctl(PR_SET_NAME, b"skr-kernel")  # in ps/top; the command line still reads _zygote.py
        import ipykernel
        from ipykernel.kernelapp import IPKernelApp
        from traitlets.config import Config

        class ForkedKernelApp(IPKernelApp):
            def parse_command_line(self, argv=None):
                """Configured in code (below) instead: traitlets builds an argparse parser over every configurable
                class to read a command line, ~9 % of a forked kernel's start-up CPU (86 -> 78 ms, alternating)."""

        launcher = os.path.join(os.path.dirname(os.path.dirname(ipykernel.__file__)), "ipykernel_launcher.py")
        sys.argv = [launcher, "-f", request["connection_file"], *KERNEL_ARGS]  # as `python -m ipykernel_launcher`
        config = Config()
        config.IPKernelApp.connection_file = request["connection_file"]
        config.HistoryManager.enabled = False  # = KERNEL_ARGS, what the exec path passes on its command line
        ForkedKernelApp.launch_instance(argv=[], config=config)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - whatever happens, never return into the zygote's loop
        traceback.print_exc()
    finally:
        try:
            import atexit

            atexit._run_exitfuncs()  # what a normal interpreter exit would run (the kernel's own handlers)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _page_child(ctl, request, config):
    """Become a Voila page kernel (not a tool kernel: no confine(), the server's uid, its stdout/stderr).

    The zygote forwarded only the path of a 0600 file in a directory tool kernels cannot read; its content (the
    kernel's environment, cwd, sys.path and arguments) is read here, after the fork, and the file emptied.
    """
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()  # its own session, as jupyter_client's Popen(start_new_session=True)
        ctl.close()
        # The claim: the server may have given up on this request (no answer in time) and removed the file to
        # withdraw it; else the file's new name tells it this pid (page_kernels._withdraw). Emptied once read.
        claimed = f"{request['spec']}.{os.getpid()}"
        try:
            os.rename(request["spec"], claimed)
        except FileNotFoundError:
            os._exit(0)  # withdrawn: no kernel
        with open(claimed, "r+b") as f:
            spec = json.loads(f.read())
            f.truncate(0)
        null = os.open(os.devnull, os.O_RDWR)
        out, err = config["page_stdio"]
        os.dup2(null, 0)
        os.dup2(out, 1)  # where jupyter_client would have sent them: the server's stdout and stderr
        os.dup2(err, 2)
        os.closerange(3, 1 << 20)
        os.chdir(spec["cwd"])
        os.environ.clear()
        os.environ.update(spec["env"])
        _prctl(PR_SET_DUMPABLE, 1)  # as after an exec (a page kernel was an exec'd process before)
        # No PR_SET_PDEATHSIG: a page kernel must outlive a fork server the pool replaces. It dies with the
        # server instead (ipykernel's parent poller would watch the zygote, or exit when orphaned).
        _watch_server(spec["watch_pid"])
        _fresh_state()
        sys.path[:] = spec["sys_path"]  # the server's, not ours (no toolkit, no runner_kernel/ dir)
        sys.dont_write_bytecode = bool(spec["env"].get("PYTHONDONTWRITEBYTECODE"))
        _prctl(PR_SET_NAME, b"skr-page-kernel")
        from ipykernel.kernelapp import IPKernelApp
        from traitlets.config import Config

        class PageKernelApp(IPKernelApp):
            def initialize(self, argv=None):
                super().initialize(argv)
                # ipywidgets registers its comm targets at import, but only inside a running kernel; it was
                # imported here (in the zygote) before there was one
                widgets = sys.modules.get("ipywidgets")
                if widgets is not None:
                    widgets._handle_ipython()

        sys.argv = [spec["launcher"], *spec["argv"]]
        config = Config()
        # 1 = "init, never goes away": no parent poller (it would watch the zygote, or exit when orphaned by a
        # zygote the pool replaced; _watch_server does its job) and no Ctrl-C banner on the server's stdout
        config.IPKernelApp.parent_handle = 1
        PageKernelApp.launch_instance(argv=spec["argv"], config=config)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - never return into the zygote's loop
        traceback.print_exc()
    finally:
        try:
            import atexit

            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _watch_server(pid):
    """Exit when the server process goes (a pidfd: works for a process that is not our parent)."""
    import select
    import threading
    import time

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)  # already gone
    except OSError:  # no pidfd (an old kernel, a seccomp filter): poll
        fd = None

    def watch():
        if fd is not None:
            select.select([fd], [], [])
        else:
            while os.path.exists(f"/proc/{pid}"):
                time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="skr-server-watch", daemon=True).start()


def _preload(modules):
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S110 - as the exec path's warm-up: a missing library is the tool's problem
            pass
    gc.collect()
    gc.freeze()  # the children never touch these objects' GC headers: fewer copy-on-write pages


def _fresh_state():
    """What a fresh interpreter would not share with its siblings: random state and cached paths."""
    import random
    import tempfile

    random.seed()  # also reseeded by Python at fork; done again so it does not depend on that
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()  # the legacy global RandomState is not reseeded at fork
    tempfile.tempdir = None  # cached from the zygote's TMPDIR; the kernel's is its own work dir
    # sys.path[0] is this script's directory; a kernel started with -m has its cwd there, which IPython re-adds
    if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]


def main(argv):
    ctl = socket.socket(fileno=int(argv[1]))
    config = json.loads(argv[2])
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # Where kernels share our uid (Docker mode): no ptrace of, or /proc/<pid>/mem into, the process every later
    # kernel is forked from. Each child sets itself dumpable again, as an exec would.
    _prctl(PR_SET_DUMPABLE, 0)
    if os.getppid() != config["parent_pid"]:
        sys.exit("the pool exited before its fork server started")
    # Modules only: no app, no zmq context, no threads. What IPKernelApp imports as it starts (debugpy, the
    # shell) is imported here too, or every kernel pays ~0.1 s of CPU for it.
    for name in ("ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell"):
        importlib.import_module(name)
    # A kernel's connection file names 127.0.0.1, which jupyter_client checks against the host's interfaces: it
    # lists them once per process (importing psutil). Done here once, not in every kernel (~1.7 MB each).
    from jupyter_client.localinterfaces import localhost

    localhost()
    for name in ("_skriptoteket_driver", "skriptoteket_toolkit", "pdf_helper"):
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, _reap)
    # What a page kernel imports (the tool app, ipywidgets), when this server forks page kernels too; the tool
    # libraries (config["preload"]) may come later, with a preload request.
    _preload((*KERNEL_MODULES, *config.get("page_modules", ()), *config["preload"]))
    zygote_pid = os.getpid()
    reader = ctl.makefile("rb")
    ctl.sendall(b'{"ready": true}\n')
    while True:
        line = reader.readline()
        if not line:
            return  # the pool closed the socket (shut down or died)
        try:
            request = json.loads(line)
            if request.get("op") == "preload":
                _preload(request["modules"])
                ctl.sendall(b'{"ok": true}\n')
                continue
            if request.get("op") == "page" and not config.get("page_stdio"):
                raise ValueError("this fork server was not started for page kernels")
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
        except Exception as e:  # noqa: BLE001 - e.g. EAGAIN: the pool retries with backoff
            ctl.sendall(json.dumps({"error": f"{type(e).__name__}: {e}"}).encode() + b"\n")
            continue
        if pid == 0:
            reader.close()
            if request.get("op") == "page":
                _page_child(ctl, request, config)
            _child(ctl, request, zygote_pid)
        ctl.sendall(json.dumps({"pid": pid}).encode() + b"\n")


if __name__ == "__main__":
    main(sys.argv)
