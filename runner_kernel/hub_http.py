"""The hub API requests of the server's OAuth (jupyterhub.services.auth.HubAuth), over tornado's HTTP client.

JupyterHub's ``jupyterhub.httpclient.fetch`` is built on aiohttp, which with its DNS resolver (aiodns, pycares),
yarl and multidict is about a fifth of the server's import time (0.3 s of 1.4 s in the image) and ~8 MB of its
memory, for the two requests HubAuth makes: the OAuth token exchange and "who is this token". Tornado's client is
loaded anyway. ``runner_kernel._standins`` gives HubAuth this ``fetch`` while the hub extension is imported;
what it does not cover (a hub API on a unix socket, other arguments) goes to JupyterHub's own, imported then.
"""

from __future__ import annotations

import importlib
import json

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

CONNECT_TIMEOUT = 20.0
REQUEST_TIMEOUT = 60.0


class HubReply:
    """The part of an aiohttp response that HubAuth reads."""

    def __init__(self, response):
        self.status = response.code
        self.reason = response.reason
        self.headers = response.headers
        self._body = response.body or b""
        self._response = response

    @property
    def ok(self) -> bool:
        return self.status < 400

    async def text(self) -> str:
        return self._body.decode("utf-8", "replace")

    async def json(self):
        return json.loads(self._body)

    def raise_for_status(self) -> None:
        if not self.ok:
            raise HTTPClientError(self.status, self.reason, self._response)


async def fetch(url: str, *, method: str = "GET", raise_for_status: bool = True, headers=None, data=None, ssl=None,
                **kwargs):
    if kwargs or not url.startswith(("http://", "https://")):
        real = importlib.import_module("jupyterhub.httpclient")
        return await real.fetch(url, method=method, raise_for_status=raise_for_status, headers=headers, data=data,
                                ssl=ssl, **kwargs)
    request = HTTPRequest(url, method=method, headers=headers, body=data, ssl_options=ssl,
                          connect_timeout=CONNECT_TIMEOUT, request_timeout=REQUEST_TIMEOUT,
                          allow_nonstandard_methods=True, follow_redirects=True)  # as aiohttp does
    # raise_error=False: an HTTP error status is a reply; no answer at all (refused, timed out) still raises
    reply = HubReply(await AsyncHTTPClient().fetch(request, raise_error=False))
    if raise_for_status:
        reply.raise_for_status()
    return reply
