"""Spare teacher containers without Docker: the standby's claim check (runner_kernel/standby.py), spare names, and
skriptoteket_ext/docker_spares.py's pool and claim against real TCP servers on 127.0.0.1. The make/remove/list_stale
callables stand in for the Docker engine here; tests/docker runs the real thing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import pytest

from runner_kernel.standby import check_claim
from skriptoteket_ext import docker_spares
from skriptoteket_ext.docker_spares import ClaimRefused, Spare, SparePool, claim, is_spare_name, proof, spare_name

SERVER = ["python", "-m", "runner_kernel.singleuser"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def port(monkeypatch) -> int:
    """A free port as the standby port: claim() and the pool's readiness check read the module's global."""
    port = free_port()
    monkeypatch.setattr(docker_spares, "STANDBY_PORT", port)
    return port


# -- check_claim ------------------------------------------------------------------------------------------------

def test_a_valid_claim_gives_the_environment_and_the_server_options():
    env = {"JUPYTERHUB_USER": "alice"}
    message = {"secret": "s3cret", "env": env, "cmd": [*SERVER, "--pool-size=1", "--template=skriptoteket"]}
    assert check_claim(message, "s3cret") == (env, ["--pool-size=1", "--template=skriptoteket"])


@pytest.mark.parametrize("message", [
    {"secret": "wrong", "env": {}, "cmd": SERVER},
    {"env": {}, "cmd": SERVER},
    {"secret": "s3cre", "env": {}, "cmd": SERVER},
])
def test_a_wrong_secret_is_forbidden(message):
    assert check_claim(message, "s3cret") == "forbidden"


@pytest.mark.parametrize("message", [
    ["s3cret", {}, SERVER],
    "s3cret",
    None,
    {"secret": "s3cret", "env": {"A": 1}, "cmd": SERVER},
    {"secret": "s3cret", "env": ["A=1"], "cmd": SERVER},
    {"secret": "s3cret", "env": {}, "cmd": "python -m runner_kernel.singleuser"},
    {"secret": "s3cret", "env": {}, "cmd": [*SERVER, 1]},
    {"secret": "s3cret", "env": {}, "cmd": ["jupyterhub-singleuser"]},
    {"secret": "s3cret", "env": {}, "cmd": ["python", "-m", "runner_kernel.standby"]},
    {"secret": "s3cret", "env": {}, "cmd": ["sh", "-c", "python -m runner_kernel.singleuser"]},
    {"secret": "s3cret", "env": {}, "cmd": []},
])
def test_malformed_claims_and_other_commands_are_refused_with_a_reason(message):
    reason = check_claim(message, "s3cret")
    assert isinstance(reason, str) and reason


# -- names ------------------------------------------------------------------------------------------------------

def test_a_spare_is_named_as_one_and_user_containers_never_are():
    name = spare_name("skr")
    assert name != spare_name("skr")  # each spare its own name
    assert is_spare_name(name, "skr") and is_spare_name("/" + name, "skr")  # Docker's Names start with "/"
    assert not is_spare_name(name, "other")
    # DockerSpawner's <prefix>-<escaped user>: users "spare", "-spare-x" ("-" escaped as "-2d"), "a-b"
    for user_container in ("skr-spare", "/skr-spare", "skr-2dspare-2dx", "skr-a-2db", "skr-spare-1"):
        assert not is_spare_name(user_container, "skr")


# -- claim() ----------------------------------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def standby(port: int, reply: dict | None, secret: str = "s3cret"):
    """A server speaking the standby's side: answers the nonce with its proof under ``secret``, reads the claim,
    answers ``reply`` (None: closes without a word). Yields the list of claims it received."""
    received = []

    async def serve(reader, writer):
        hello = json.loads(await reader.readline())
        writer.write(json.dumps({"proof": proof(secret, hello["nonce"])}).encode() + b"\n")
        await writer.drain()
        line = await reader.readline()
        if not line:
            writer.close()
            return
        received.append(json.loads(line))
        if reply is not None:
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        yield received
    finally:
        server.close()
        await server.wait_closed()


async def test_claim_sends_secret_environment_and_command_and_returns_on_ok(port):
    async with standby(port, {"ok": True}) as received:
        await claim(Spare("c1", "127.0.0.1", "s3cret"), {"JUPYTERHUB_USER": "alice"}, [*SERVER, "--x"], timeout=5)
    assert received == [{"secret": "s3cret", "env": {"JUPYTERHUB_USER": "alice"}, "cmd": [*SERVER, "--x"]}]


async def test_a_refused_claim_raises_with_the_standbys_reason(port):
    async with standby(port, {"ok": False, "error": "forbidden"}, secret="wrong"):
        with pytest.raises(ClaimRefused, match="forbidden"):
            await claim(Spare("c1", "127.0.0.1", "wrong"), {}, SERVER, timeout=5)


async def test_the_environment_goes_only_to_what_proves_it_knows_the_spares_secret(port):
    """Whatever else answers at a spare's address (another container that got its IP) never sees the token."""
    async with standby(port, {"ok": True}, secret="another") as received:
        with pytest.raises(ClaimRefused, match="not the spare"):
            await claim(Spare("c1", "127.0.0.1", "s3cret"), {"JUPYTERHUB_API_TOKEN": "t0ken"}, SERVER, timeout=5)
    assert received == []


async def test_a_standby_that_closes_without_an_answer_is_refused(port):
    async with standby(port, None):
        with pytest.raises(ClaimRefused):
            await claim(Spare("c1", "127.0.0.1", "s3cret"), {}, SERVER, timeout=5)


async def test_nothing_listening_is_refused(port):
    with pytest.raises(ClaimRefused, match="no answer"):
        await claim(Spare("c1", "127.0.0.1", "s3cret"), {}, SERVER, timeout=5)


# -- SparePool --------------------------------------------------------------------------------------------------

class FakeEngine:
    """make/remove/list_stale over spares at 127.0.0.1 addresses. A spare "starts listening" when the test
    opens a real server on the standby port of its address (127.0.0.N, all loopback on Linux)."""

    def __init__(self, stale=()):
        self.made: list[str] = []
        self.removed: list[str] = []
        self.stale = list(stale)
        self.stale_listed = 0

    async def make(self) -> Spare:
        spare_id = f"spare{len(self.made) + 1}"
        self.made.append(spare_id)
        return Spare(spare_id, f"127.0.0.{len(self.made) + 1}", "secret-" + spare_id)

    async def remove(self, spare_id: str) -> None:
        self.removed.append(spare_id)

    async def list_stale(self) -> list[str]:
        self.stale_listed += 1
        return [*self.stale, *self.made]  # the engine lists this pool's own spares too, by their label


async def until(predicate, timeout: float = 5):
    async def poll():
        while not predicate():
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout)


@contextlib.asynccontextmanager
async def listeners(port: int):
    """Opens real servers on demand: ``await open_(ip)``."""
    servers = []

    async def open_(ip: str):
        servers.append(await asyncio.start_server(lambda r, w: w.close(), ip, port))

    try:
        yield open_
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()


async def stop(pool: SparePool) -> None:
    if pool._task is not None:
        pool._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pool._task


async def test_fill_makes_size_spares_ready_only_once_they_listen_and_take_refills(port):
    engine = FakeEngine()
    pool = SparePool(2, engine.make, engine.remove, engine.list_stale, ready_timeout=10)
    async with listeners(port) as open_:
        try:
            pool.fill_soon()
            await until(lambda: len(engine.made) == 1)
            await asyncio.sleep(0.3)
            assert pool.ready == [] and pool.made == {"spare1"}  # made, not listening yet: not ready
            await open_("127.0.0.2")
            await until(lambda: len(engine.made) == 2)
            await open_("127.0.0.3")
            await until(lambda: len(pool.ready) == 2)
            assert [s.id for s in pool.ready] == ["spare1", "spare2"] and pool.stats["made"] == 2

            taken = pool.take()
            assert taken.id == "spare1" and taken.secret == "secret-spare1"
            assert pool.stats["claimed"] == 1 and "spare1" not in pool.made
            await until(lambda: len(engine.made) == 3)  # the refill, back to size
            await open_("127.0.0.4")
            await until(lambda: len(pool.ready) == 2)
            assert [s.id for s in pool.ready] == ["spare2", "spare3"] and len(engine.made) == 3
            assert engine.removed == [] and pool.stats["failed"] == 0
        finally:
            await stop(pool)


async def test_take_from_an_empty_pool_is_none(port):
    engine = FakeEngine()
    pool = SparePool(1, engine.make, engine.remove, engine.list_stale, ready_timeout=10)
    try:
        assert pool.take() is None and pool.stats["claimed"] == 0
    finally:
        await stop(pool)
    empty = SparePool(0, engine.make, engine.remove, engine.list_stale)
    assert empty.take() is None and empty._task is None  # size 0: no spares at all


async def test_stale_spares_are_removed_once_at_the_first_fill_but_not_the_pools_own(port):
    engine = FakeEngine(stale=["old1", "old2"])
    pool = SparePool(1, engine.make, engine.remove, engine.list_stale, ready_timeout=10)
    async with listeners(port) as open_:
        try:
            await open_("127.0.0.2")
            pool.fill_soon()
            await until(lambda: len(pool.ready) == 1)
            assert engine.removed == ["old1", "old2"] and engine.stale_listed == 1
            pool.take()
            await open_("127.0.0.3")
            await until(lambda: len(pool.ready) == 1)
            assert engine.removed == ["old1", "old2"] and engine.stale_listed == 1  # not again

            # the first fill of a pool that already made a spare (as if the fill ran late) spares it
            engine2 = FakeEngine(stale=["old3"])
            pool2 = SparePool(1, engine2.make, engine2.remove, engine2.list_stale)
            pool2.made.add("spare9")
            pool2.ours.add("spare9")
            engine2.stale.append("spare9")
            pool2.fill_soon()
            await until(lambda: pool2._task.done())
            assert engine2.removed == ["old3"] and engine2.made == []
        finally:
            await stop(pool)


async def test_a_spare_that_never_listens_is_removed_and_the_pool_backs_off(port):
    engine = FakeEngine()
    pool = SparePool(1, engine.make, engine.remove, engine.list_stale, ready_timeout=0.3)
    try:
        pool.fill_soon()
        await until(lambda: pool.stats["failed"] == 1)
        assert engine.removed == ["spare1"] and pool.made == set() and pool.ready == []
        await asyncio.sleep(1)  # the backoff (2 s after the first failure): no new spare meanwhile
        assert engine.made == ["spare1"] and not pool._task.done()
    finally:
        await stop(pool)


async def test_a_make_that_fails_counts_as_a_failure_and_backs_off(port):
    calls = []

    async def make():
        calls.append(1)
        raise RuntimeError("the engine is down")

    engine = FakeEngine()
    pool = SparePool(1, make, engine.remove, engine.list_stale)
    try:
        pool.fill_soon()
        await until(lambda: pool.stats["failed"] == 1)
        await asyncio.sleep(0.5)
        assert len(calls) == 1 and engine.removed == [] and pool.take() is None
    finally:
        await stop(pool)


async def test_an_engine_that_cannot_list_or_remove_does_not_stop_the_pool(port):
    """A failed listing of an earlier hub's spares is tried again at the next fill; a failed removal is logged."""
    engine = FakeEngine(stale=["old1"])
    calls = {"list": 0}

    async def list_fails_once():
        calls["list"] += 1
        if calls["list"] == 1:
            raise OSError("engine busy")
        return await engine.list_stale()

    async def remove_fails(spare_id):
        raise OSError("engine busy")

    pool = SparePool(1, engine.make, engine.remove, list_fails_once, ready_timeout=10)
    async with listeners(port) as open_:
        try:
            await open_("127.0.0.2")
            pool.fill_soon()
            await until(lambda: len(pool.ready) == 1)  # spares are made although the listing failed
            assert engine.removed == [] and calls["list"] == 1
            pool.take()  # still named as a spare while it is claimed, so listed: but it is this pool's, not stale
            await open_("127.0.0.3")
            await until(lambda: len(pool.ready) == 1)
            assert engine.removed == ["old1"] and calls["list"] == 2  # listed again, and removed then
        finally:
            await stop(pool)
    broken = SparePool(1, engine.make, remove_fails, engine.list_stale)
    await broken.discard(Spare("x", "127.0.0.9", "s"))  # logged, not raised
