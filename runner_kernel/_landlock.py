"""Landlock for runner kernels that share a uid with the server (the user container, docs/docker.md).

In the container everything runs as uid 1000, so file modes cannot keep tool code away from the page kernels'
connection files, the runner host's secret or the server's processes. Landlock (Linux >= 5.13, unprivileged,
inherited across exec and fork) can: ``restrict()`` is called by ``_launch.py`` just before it execs a runner
kernel. The kernel (and whatever it forks) may then

- read and execute only beneath the given read-only paths (the interpreter, the libraries, /etc, ...), and do
  anything beneath its own private directory; nothing else, so not the home directory or the runner host's dir;
- not connect to any TCP port (ABI >= 4): not the page kernels' ports on 127.0.0.1, not the hub or the service;
- not ptrace or read ``/proc/<pid>/mem`` of processes outside its domain (every ABI), nor signal them or reach
  their abstract unix sockets (ABI >= 6).

Standard library only: it runs in the launcher, with the kernel's scrubbed environment.
"""

from __future__ import annotations

import ctypes
import os

_CREATE, _ADD_RULE, _RESTRICT = 444, 445, 446  # the same numbers on x86_64 and aarch64
_VERSION = 1  # LANDLOCK_CREATE_RULESET_VERSION
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # the rights a rule on a file may carry
CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

READ_ONLY = EXECUTE | READ_FILE | READ_DIR
DEVICES = READ_FILE | WRITE_FILE | READ_DIR | TRUNCATE | IOCTL_DEV


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _call(libc, number, *args) -> int:
    result = libc.syscall(number, *args)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"landlock syscall {number}: {os.strerror(errno)}")
    return result


def abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is missing, disabled or filtered (seccomp)."""
    try:
        return max(0, _libc().syscall(_CREATE, None, 0, _VERSION))
    except (OSError, AttributeError):
        return 0


def handled_fs(version: int) -> int:
    rights = (1 << 13) - 1  # ABI 1: execute .. make_sym
    if version >= 2:
        rights |= REFER
    if version >= 3:
        rights |= TRUNCATE
    if version >= 5:
        rights |= IOCTL_DEV
    return rights


def restrict(rules: list[tuple[str, int]]) -> int:
    """Confine this process and its future children: ``rules`` are (path, rights beneath it); rights are the
    constants above (``READ_ONLY``, ``DEVICES``) or ``-1`` for all. Missing paths are skipped. Returns the ABI
    used; raises OSError when Landlock is unavailable."""
    version = abi()
    if version < 1:
        raise OSError("Landlock is not available in this kernel")
    libc = _libc()
    fs = handled_fs(version)
    attr = _RulesetAttr(fs, CONNECT_TCP if version >= 4 else 0,
                        SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if version >= 6 else 0)
    size = 24 if version >= 6 else 16 if version >= 4 else 8
    ruleset = _call(libc, _CREATE, ctypes.byref(attr), size, 0)
    try:
        for path, rights in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                allowed = fs if rights == -1 else rights & fs
                if not os.path.isdir(path):
                    allowed &= _FILE_RIGHTS
                rule = _PathBeneath(allowed, fd)
                _call(libc, _ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0)
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        _call(libc, _RESTRICT, ruleset, 0)
    finally:
        os.close(ruleset)
    return version
