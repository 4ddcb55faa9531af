"""The runner host on its own (no hub, no browser): private directory and socket modes, the secret, staged
paths only, and one real run in a pooled kernel with a staged file and an artifact. (Kept next to the browser
test of the whole path, which exercises the host end to end.)"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import stat

import pytest

from runner_kernel import runner_host
from runner_kernel.runner_host import ENV_DIR, RunnerHost, RunnerUnavailable

pytestmark = pytest.mark.timeout(180)

SOURCE = """
import os
from skriptoteket_toolkit import list_input_files, read_inputs
def run_tool(input_dir, output_dir):
    files = list_input_files()
    with open(os.path.join(output_dir, "copy.txt"), "wb") as out:
        out.write(open(files[0]["path"], "rb").read())
    return {"outputs": [{"kind": "notice", "level": "info",
                         "message": f"{read_inputs()['n']} {files[0]['name']} {'JUPYTERHUB_API_TOKEN' in os.environ}"}]}
"""


def test_runner_host(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_DIR, raising=False)

    async def scenario():
        host = RunnerHost(1, base_dir=str(tmp_path))
        await host.start()
        try:
            assert os.environ[ENV_DIR] == str(host.dir)
            assert stat.S_IMODE(os.stat(host.dir).st_mode) == 0o700
            assert stat.S_IMODE(os.stat(host.socket_path).st_mode) == 0o600
            assert stat.S_IMODE(os.stat(host.dir / "secret").st_mode) == 0o600

            # a wrong secret is refused
            reader, writer = await asyncio.open_unix_connection(str(host.socket_path))
            writer.write(runner_host._frame({"secret": "nope", "op": "status"}))
            await writer.drain()
            assert (await runner_host._read_frame(reader)) == {"ok": False, "error": "forbidden"}
            writer.close()

            # only files staged under staging/ (no symlink out of it)
            outside = tmp_path / "outside.txt"
            outside.write_text("secret")
            link = runner_host.staging_dir() / "link.txt"
            link.symlink_to(outside)
            for path in (str(outside), str(link)):
                with pytest.raises(RunnerUnavailable, match="bad_request"):
                    await runner_host.run_tool({"source": SOURCE, "files": [["a.txt", path]]})

            staged = runner_host.staging_dir() / "u0"
            staged.write_bytes(b"hello\x00bytes")
            outcome = await runner_host.run_tool({"source": SOURCE, "inputs": {"n": 7}, "files": [["a.txt", str(staged)]],
                                                  "timeout": 60})
            envelope = outcome["envelope"]
            assert envelope["status"] == "succeeded", outcome
            assert envelope["outputs"][0]["message"] == "7 a.txt False"
            (artifact_id, path), = outcome["artifact_files"].items()
            assert open(path, "rb").read() == b"hello\x00bytes"
            assert os.path.realpath(path).startswith(os.path.realpath(runner_host.staging_dir()))
            status = (await runner_host.request({"op": "status"}))["status"]
            assert status["runs"] == 1 and status["pool_size"] == 1
        finally:
            await host.stop()
        assert not host.dir.exists()

    # in a thread of its own: Playwright's sync API (other tests of this directory) keeps a loop running here
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()
