"""A standby container's server: everything a teacher's Voila server does before it knows its user, done ahead.

Run as ``python -m runner_kernel.standby [server options]`` in a spare container the hub keeps running
(skriptoteket_ext/docker_spares.py). It imports the server's modules and starts the tool runner's fork server
(ipykernel and the tool app imported), then waits on ``$SKRIPTOTEKET_STANDBY_PORT`` (default 8889) for the hub
to claim it. The hub first sends a nonce and checks the answer, an HMAC of it under the secret the container was
created with (so the token goes to this standby, not to whatever else might answer at its address); then one line
of JSON with that secret, the user's environment and the server's command. The standby answers, stops listening,
takes the environment and becomes that server (``runner_kernel.singleuser``) on the same event loop, which adopts
the fork server.

A cold start spends ~2.5 s of its one CPU before the first tool page is usable (docs/docker.md); this moves the
larger part of it to before the teacher asks. The secret comes in ``$SKRIPTOTEKET_STANDBY_SECRET`` and is
dropped from the environment at once; the hub is the only one that knows it, and no other container can reach
this port (the users' network has no container-to-container traffic).
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import hmac
import json
import os
import sys
import time

SECRET_ENV = "SKRIPTOTEKET_STANDBY_SECRET"
PORT_ENV = "SKRIPTOTEKET_STANDBY_PORT"
DEFAULT_PORT = 8889
SERVER_MODULE = ["python", "-m", "runner_kernel.singleuser"]
MAX_CLAIM = 1 << 20  # a user's environment and a command line: a few kB
PR_SET_DUMPABLE = 4


def proof(secret: str, nonce: str) -> str:
    """What only a holder of ``secret`` can answer to ``nonce``."""
    return hmac.new(secret.encode(), nonce.encode(), hashlib.sha256).hexdigest()


def check_claim(message, secret: str) -> tuple[dict[str, str], list[str]] | str:
    """(environment, server options) of a valid claim, else the reason it is refused."""
    if not isinstance(message, dict):
        return "not a claim"
    if not hmac.compare_digest(str(message.get("secret", "")).encode(), secret.encode()):
        return "forbidden"
    env, cmd = message.get("env"), message.get("cmd")
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        return "env must map names to strings"
    if not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd):
        return "cmd must be a list of strings"
    if cmd[:3] != SERVER_MODULE:
        return f"this standby starts only {' '.join(SERVER_MODULE)}"
    return env, cmd[3:]


async def wait_for_claim(secret: str, port: int) -> tuple[dict[str, str], list[str]]:
    """Serve claims until one is valid; its (environment, server options). Refused claims get their reason."""
    claimed: asyncio.Future = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            try:
                hello = json.loads(line) if line else None
                if isinstance(hello, dict) and isinstance(hello.get("nonce"), str) and len(hello["nonce"]) <= 128:
                    writer.write(json.dumps({"proof": proof(secret, hello["nonce"])}).encode() + b"\n")
                    await writer.drain()
                    line = await asyncio.wait_for(reader.readline(), 10)
            except ValueError:
                pass
            try:
                outcome = check_claim(json.loads(line), secret) if line else "empty"
            except ValueError:
                outcome = "not JSON"
            if isinstance(outcome, str) or claimed.done():
                writer.write(json.dumps({"ok": False, "error": outcome if isinstance(outcome, str) else "taken"})
                             .encode() + b"\n")
            else:
                claimed.set_result(outcome)
                writer.write(b'{"ok": true}\n')
            await writer.drain()
        except (OSError, asyncio.TimeoutError, asyncio.LimitOverrunError, ValueError):
            pass  # a probe that only connects (the hub's readiness check), or a broken peer
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "0.0.0.0", port, limit=MAX_CLAIM)
    print(f"Skriptoteket standby: ready for a claim on port {port}", file=sys.stderr, flush=True)
    try:
        return await claimed
    finally:
        server.close()


def main(argv: list[str]) -> None:
    t0 = time.monotonic()
    secret = os.environ.pop(SECRET_ENV, "")
    if not secret:
        raise SystemExit(f"Skriptoteket standby: ${SECRET_ENV} is not set; the hub starts standby containers")
    port = int(os.environ.get(PORT_ENV) or DEFAULT_PORT)
    # non-dumpable from now on, as a server started with its token is (scripts/image/skriptoteket_nodump.pth): after
    # the claim this process holds the hub token, and tool code runs under the same uid
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # the server's IOLoop runs on this loop, which owns the fork server's pipes
    from . import singleuser

    loop.run_until_complete(singleuser.prestart_runner(argv))
    print(f"Skriptoteket standby: prepared in {time.monotonic() - t0:.2f} s", file=sys.stderr, flush=True)
    env, options = loop.run_until_complete(wait_for_claim(secret, port))
    os.environ.update(env)
    print(f"Skriptoteket standby: claimed for {env.get('JUPYTERHUB_USER', '?')}", file=sys.stderr, flush=True)
    singleuser._T0 = time.monotonic()  # the server's "listening after" counts from the claim
    singleuser.main(options)


if __name__ == "__main__":
    main(sys.argv[1:])
