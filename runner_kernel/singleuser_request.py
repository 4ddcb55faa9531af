"""Kernel side of the page-request hand-over, for notebooks served by runner_kernel.singleuser.

A drop-in for ``voila.utils.wait_for_request()`` that costs ~0.2 s to import instead of ~3 s of CPU (importing
anything from the ``voila`` package pulls in jupyter_server, jupyter_events and jsonschema). Same protocol: a
preheated kernel (``VOILA_PREHEAT=True``) opens a websocket to ``{VOILA_APP_IP}:{VOILA_APP_PORT}
{VOILA_WS_BASE_URL}voila/query/{VOILA_KERNEL_ID}`` and blocks until the server sends the request that claimed
this kernel; the request's CGI-style variables (``QUERY_STRING``, ``SCRIPT_NAME``, ``SERVER_NAME``, ... and
``HTTP_SKRIPTOTEKET_USER_TOKEN``) are then put into ``os.environ``. A kernel started for a request (pool
drained) already has them in its environment, and this returns at once.

Keep this module free of heavy imports: it runs in every tool-app kernel.
"""

from __future__ import annotations

import json
import os

USER_TOKEN_ENV = "HTTP_SKRIPTOTEKET_USER_TOKEN"


def _query_url() -> str:
    protocol = os.environ.get("VOILA_WS_PROTOCOL", "ws")
    host = os.environ.get("VOILA_APP_IP", "127.0.0.1")
    port = os.environ.get("VOILA_APP_PORT", "8866")
    base = os.environ.get("VOILA_WS_BASE_URL", os.environ.get("VOILA_SERVER_URL", "/"))
    return f"{protocol}://{host}:{port}{base}voila/query/{os.environ.get('VOILA_KERNEL_ID', '')}"


def wait_for_request(url: str | None = None, open_timeout: float = 5) -> dict[str, str]:
    """Block until this kernel's page request arrives; return its variables (also set in ``os.environ``)."""
    if os.environ.get("VOILA_PREHEAT", "False") == "False":
        return {}
    from websockets.sync.client import connect

    with connect(url or _query_url(), open_timeout=open_timeout, proxy=None) as ws:
        info = json.loads(ws.recv())
    os.environ.update({k: str(v) for k, v in info.items()})
    return info


def query_params() -> dict[str, str]:
    """The page's query string as a dict (first value of each key)."""
    from urllib.parse import parse_qs

    return {k: v[0] for k, v in parse_qs(os.environ.get("QUERY_STRING", "")).items()}


def user_token() -> str:
    """The viewing user's own hub OAuth token (empty if the server was run with --no-user-token)."""
    return os.environ.get(USER_TOKEN_ENV, "")
