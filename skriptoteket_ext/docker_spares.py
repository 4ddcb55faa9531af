"""Spare teacher containers: started ahead, so a teacher's server starts in a fraction of a cold start.

A cold teacher container spends ~2.5 s of its one CPU before the first tool page is usable, most of it importing
(docs/docker.md). The hub keeps ``size`` spare containers running ``runner_kernel.standby``, made with the same
image, limits, flags and network as a teacher's (hub_config/docker.py makes them through the spawner's own
``create_object``), but with no user: no token, no user name. At a teacher's spawn the spawner takes one,
renames it to the teacher's container name and hands it the user's environment and command over the users'
network (``claim``: first a nonce, which the standby must answer with an HMAC under the spare's secret, so the
token goes to no one else); the standby becomes that server. Then another spare is made.

Spares are named ``<prefix>--spare-<hex>``: no container DockerSpawner makes for a user starts so (it escapes ``-``
in user names as ``-2d``, so ``<prefix>-`` is never followed by another ``-``). Spares left by an earlier hub (it
knew their secrets, this one does not) are removed at start; the hub removes its own when it exits.
Log lines go to the hub's log (the ``JupyterHub`` logger's handlers).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from runner_kernel.standby import DEFAULT_PORT, SECRET_ENV, proof  # noqa: F401 - SECRET_ENV: for the makers

SPARE_LABEL = "org.skriptoteket.spare"
STANDBY_PORT = DEFAULT_PORT
STANDBY_MODULE = ["python", "-m", "runner_kernel.standby"]

log = logging.getLogger("JupyterHub.spares")


def spare_name(prefix: str) -> str:
    return f"{prefix}--spare-{secrets.token_hex(4)}"


def is_spare_name(name: str, prefix: str) -> bool:
    return name.lstrip("/").startswith(f"{prefix}--spare-")


@dataclass
class Spare:
    id: str
    ip: str
    secret: str = field(repr=False)
    image: str = ""  # the id of the image it was made from


class ClaimRefused(RuntimeError):
    """The standby did not take the claim (wrong secret, another command, gone): start a new container."""


async def claim(spare: Spare, env: dict[str, str], cmd: list[str], timeout: float = 10) -> None:
    """Hand a spare its user: the environment (with the server's hub token) and the server's command."""
    nonce = secrets.token_hex(16)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(spare.ip, STANDBY_PORT), timeout)
        try:
            writer.write(json.dumps({"nonce": nonce}).encode() + b"\n")
            await writer.drain()
            answer = json.loads(await asyncio.wait_for(reader.readline(), timeout) or b"{}")
            if not hmac.compare_digest(str(answer.get("proof", "")).encode(), proof(spare.secret, nonce).encode()):
                raise ClaimRefused(f"what answers at {spare.ip} is not the spare (no proof of its secret)")
            writer.write(json.dumps({"secret": spare.secret, "env": env, "cmd": cmd}).encode() + b"\n")
            await writer.drain()
            reply = json.loads(await asyncio.wait_for(reader.readline(), timeout) or b"{}")
        finally:
            writer.close()
    except (OSError, asyncio.TimeoutError, ValueError, AttributeError) as exc:
        raise ClaimRefused(f"no answer from the standby at {spare.ip}: {exc!r}") from exc
    if not reply.get("ok"):
        raise ClaimRefused(f"the standby refused: {reply.get('error')}")


async def listening(ip: str, port: int, timeout: float) -> bool:
    """Whether ``ip:port`` accepts a connection within ``timeout`` seconds (refused at once until it listens)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            attempt = max(0.1, min(2, deadline - loop.time()))
            _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), attempt)
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return True
    return False


class SparePool:
    """Keeps ``size`` ready spares. ``make()`` creates and starts one (a Spare); ``remove(id)`` force-removes a
    container; ``list_stale()`` the ids of spares this hub did not make. All run on the hub's event loop."""

    def __init__(self, size: int, make: Callable[[], Awaitable[Spare]], remove: Callable[[str], Awaitable[None]],
                 list_stale: Callable[[], Awaitable[list[str]]], ready_timeout: float = 120):
        self.size = size
        self._make, self._remove, self._list_stale = make, remove, list_stale
        self.ready_timeout = ready_timeout
        self.ready: list[Spare] = []
        self.made: set[str] = set()  # every spare of this hub not yet claimed or removed (ready or starting)
        # the spares this pool made before an earlier hub's were removed: never "stale", even while being claimed
        self.ours: set[str] = set()
        self.stats = {"made": 0, "claimed": 0, "failed": 0}
        self._task: asyncio.Task | None = None
        self._cleaned = False

    @property
    def started(self) -> bool:
        """Whether this pool has begun making spares (in this process)."""
        return self._task is not None

    def take(self) -> Spare | None:
        """A ready spare, no longer the pool's (the caller claims or removes it); another is made meanwhile."""
        spare = self.ready.pop(0) if self.ready else None
        if spare is not None:
            self.made.discard(spare.id)
            self.stats["claimed"] += 1
        self.fill_soon()
        return spare

    def fill_soon(self) -> None:
        if self.size > 0 and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._fill())

    async def _fill(self) -> None:
        if not self._cleaned:
            try:
                for stale in await self._list_stale():
                    if stale not in self.ours:
                        log.info("removing spare container %s of an earlier hub", stale[:12])
                        await self._remove(stale)
                self._cleaned, self.ours = True, set()
            except Exception:  # the engine is in trouble: the next fill tries again; making spares may still work
                log.exception("could not remove the spare containers of an earlier hub")
        failures = 0
        while len(self.made) < self.size:
            try:
                spare = await self._make()
            except Exception:
                log.exception("could not make a spare teacher container")
                spare = None
            if spare is not None:
                self.made.add(spare.id)
                if not self._cleaned:
                    self.ours.add(spare.id)
                if await listening(spare.ip, STANDBY_PORT, self.ready_timeout):
                    self.ready.append(spare)
                    self.stats["made"] += 1
                    log.info("spare teacher container %s ready at %s", spare.id[:12], spare.ip)
                    failures = 0
                    continue
                log.warning("spare container %s did not become ready; removing it", spare.id[:12])
                self.made.discard(spare.id)
                await self.discard(spare)
            failures += 1
            self.stats["failed"] += 1
            await asyncio.sleep(min(60, 2 ** failures))  # the engine or the image is in trouble: do not spin

    async def discard(self, spare: Spare) -> None:
        """A spare that could not be claimed or did not become ready: removed, if the engine lets us."""
        try:
            await self._remove(spare.id)
        except Exception:
            log.exception("could not remove spare container %s", spare.id[:12])
