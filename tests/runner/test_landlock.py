"""Landlock for tool kernels (runner_kernel/_landlock.py): on this host, without a container.

The user image turns it on (SKRIPTOTEKET_RUNNER_LANDLOCK=auto) because there tool kernels share the server's uid;
tests/docker/test_isolation.py checks it there. Here: the same pool, with and without, against a world-readable
file outside the kernel's directory and a listening TCP port.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path

import pytest

from runner_kernel import KernelPool, RunLimits, Runner, RunRequest, _landlock

pytestmark = pytest.mark.skipif(_landlock.abi() < 4, reason="this Linux kernel has no Landlock ABI >= 4")

PROBE = r'''
import json, os, socket

def run_tool(input_dir, output_dir):
    out = {}
    try:
        with open(SECRET) as f:
            out["secret"] = f.read()
    except OSError as e:
        out["secret"] = type(e).__name__
    try:
        socket.create_connection(("127.0.0.1", PORT), timeout=3).close()
        out["tcp"] = "connected"
    except OSError as e:
        out["tcp"] = type(e).__name__
    with open(os.path.join(output_dir, "own.txt"), "w") as f:
        f.write("mine")
    import pandas
    out["pandas"] = int(pandas.Series([1, 2]).sum())
    print("OUT=" + json.dumps(out))
    return ""
'''


@pytest.fixture(scope="module")
def targets():
    base = Path(tempfile.mkdtemp(prefix="skr-landlock-test-"))
    os.chmod(base, 0o755)
    secret = base / "secret.txt"
    secret.write_text("visible")
    os.chmod(secret, 0o644)  # readable by any account: only Landlock can keep a kernel from it
    listener = socket.create_server(("127.0.0.1", 0))
    listener.listen(8)
    yield str(secret), listener.getsockname()[1]
    listener.close()
    secret.unlink()
    base.rmdir()


async def probe(targets, mode: str) -> dict:
    secret, port = targets
    source = f"SECRET = {secret!r}\nPORT = {port}\n" + PROBE
    # isolate_network off: as root the pool would otherwise give the kernel its own empty network namespace
    async with KernelPool(size=1, limits=RunLimits(timeout=60), landlock=mode, isolate_network=False) as pool:
        outcome = await Runner(pool).run(RunRequest(source=source))
    assert outcome.status == "succeeded", (outcome.stderr, outcome.traceback)
    line = next(line for line in outcome.stdout.splitlines() if line.startswith("OUT="))
    return json.loads(line[4:])


async def test_without_landlock_the_kernel_reads_and_connects(targets):
    out = await probe(targets, "off")
    assert out == {"secret": "visible", "tcp": "connected", "pandas": 3}


async def test_landlock_confines_the_kernel_to_its_own_directory(targets):
    out = await probe(targets, "on")
    assert out == {"secret": "PermissionError", "tcp": "PermissionError", "pandas": 3}


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="off, auto or on"):
        KernelPool(size=1, landlock="sometimes")
