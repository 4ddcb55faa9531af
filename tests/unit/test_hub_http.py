"""runner_kernel/hub_http.py: HubAuth's requests to the hub over tornado, as jupyterhub.services.auth reads them."""

import contextlib
import json
import socket

import jupyterhub.services.auth
import pytest
import tornado.web
from jupyterhub.services.auth import HubAuth
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import HTTPError

from runner_kernel import hub_http


class FakeHubUser(tornado.web.RequestHandler):
    """/hub/api/user: the token's owner for one token, 403 for others (what the real hub answers)."""

    def get(self):
        if self.request.headers.get("Authorization") == "token good":
            self.write({"name": "alice", "kind": "user"})
        else:
            self.set_status(403)
            self.write({"status": 403, "message": "no such token"})

    def post(self):  # echoes the form it was sent, as the token exchange is a form POST
        self.write({"body": self.request.body.decode(), "type": self.request.headers.get("Content-Type")})


@pytest.fixture(autouse=True)
def hub_auth_uses_ours(monkeypatch):
    """As in the server, where the hub extension is imported with runner_kernel._standins' stand-in."""
    monkeypatch.setattr(jupyterhub.services.auth, "fetch", hub_http.fetch)


@contextlib.asynccontextmanager
async def fake_hub():
    """Listening on this test's event loop (an async fixture's loop may be another)."""
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(tornado.web.Application([(r"/hub/api/user", FakeHubUser)]))
    server.add_sockets(sockets)
    try:
        yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}/hub/api"
    finally:
        server.stop()


async def test_hub_auth_identifies_a_token_and_gets_none_for_a_refused_one():
    async with fake_hub() as hub_url:
        auth = HubAuth(api_url=hub_url, api_token="server-token")
        assert (await auth._api_request("GET", hub_url + "/user", headers={"Authorization": "token good"},
                                        allow_403=True))["name"] == "alice"
        assert await auth._api_request("GET", hub_url + "/user", headers={"Authorization": "token bad"},
                                       allow_403=True) is None


async def test_a_form_post_and_the_reply_as_aiohttp_gives_it():
    async with fake_hub() as hub_url:
        reply = await hub_http.fetch(hub_url + "/user", method="POST", data=b"a=1&b=2",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert reply.status == 200 and reply.ok
        assert json.loads(await reply.text()) == {"body": "a=1&b=2", "type": "application/x-www-form-urlencoded"}
        refused = await hub_http.fetch(hub_url + "/user", raise_for_status=False)
        assert refused.status == 403 and not refused.ok and (await refused.json())["status"] == 403
        with pytest.raises(Exception) as raised:
            await hub_http.fetch(hub_url + "/user")
        assert getattr(raised.value, "code", None) == 403


async def test_no_answer_raises_and_hub_auth_reports_the_hub_unreachable():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there
    with pytest.raises(OSError):
        await hub_http.fetch(f"http://127.0.0.1:{port}/hub/api/user")
    auth = HubAuth(api_url=f"http://127.0.0.1:{port}/hub/api", api_token="server-token")
    with pytest.raises(HTTPError) as raised:
        await auth._api_request("GET", f"http://127.0.0.1:{port}/hub/api/user")
    assert raised.value.status_code == 500
