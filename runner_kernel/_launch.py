"""The steps between fork and the kernel: apply limits, drop privileges, confine. The one place they live.

``confine(options)`` is called by the fork server's children (``_zygote.py``, the default) and by this file run as
a program, the exec path: ``python _launch.py '<json options>' -- kernel argv...`` applies them and execs the kernel.

A separate program rather than a ``preexec_fn``: it keeps the parent able to use vfork (a fork of a big server
process on every refill is slow), and nothing here can deadlock on a lock held by another parent thread.
Standard library only; it runs with the kernel's scrubbed environment.
"""

import ctypes
import json
import os
import resource
import sys

CLONE_NEWNET = 0x40000000


def _tasks_of(uid):
    """Threads currently owned by ``uid``: RLIMIT_NPROC counts them all, not just this run's."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                status = f.read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields.get("Uid", "-1 ").split()[0]) == uid:
            count += int(fields.get("Threads", "1").strip() or 1)
    return count


def _setlimit(which, value):
    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


class ConfineError(Exception):
    """A step that must not be skipped failed: the kernel must not start."""


def confine(options):
    """In order: network namespace, rlimits, drop to the kernel's account, umask, Landlock (last)."""
    uid, gid = options.get("uid"), options.get("gid")
    limits = options["limits"]

    if options.get("isolate_network"):
        # Root only: a private network namespace with nothing but a down loopback. The kernel talks to the
        # runner over ipc sockets, which live in the file system and do not need a network.
        if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET) != 0:
            raise ConfineError(f"unshare(CLONE_NEWNET) failed: errno {ctypes.get_errno()}")

    target_uid = os.getuid() if uid is None else uid
    # The hard address-space cap leaves room for the idle kernel itself (~0.5-0.7 GiB of mappings with pandas
    # loaded); the driver lowers the soft limit to "what the kernel uses now + memory_bytes" before each run.
    _setlimit(resource.RLIMIT_AS, limits["memory_bytes"] + options.get("kernel_overhead_bytes", 1 << 30))
    # NPROC counts every thread of the uid (other pool kernels too): grant the run's budget on top of them.
    _setlimit(resource.RLIMIT_NPROC, _tasks_of(target_uid) + limits["processes"])
    _setlimit(resource.RLIMIT_FSIZE, limits["disk_bytes"])
    _setlimit(resource.RLIMIT_NOFILE, limits["open_files"] + 64)  # the kernel's own sockets and pipes
    _setlimit(resource.RLIMIT_CORE, 0)

    if uid is not None and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    os.umask(0o077)
    if options.get("landlock"):
        # Last: confine the kernel to its own directory and read-only system paths (no TCP, no ptrace or signals
        # outside it). Fails closed: the pool asked for it because the kernel supports it.
        import _landlock  # this script's directory is sys.path[0] (the fork server imported it before forking)

        try:
            _landlock.restrict([(path, rights) for path, rights in options["landlock"]])
        except OSError as e:
            raise ConfineError(f"Landlock failed: {e}") from None


def main(argv):
    options = json.loads(argv[1])
    cmd = argv[argv.index("--") + 1 :]
    try:
        confine(options)
    except ConfineError as e:
        sys.exit(str(e))
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv)
