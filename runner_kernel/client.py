"""The tool app's client of the Skriptoteket service API (docs/api.md), acting as the viewing user.

Used in the page's kernel with the user's own OAuth token (``runner_kernel.singleuser_request.user_token()``).
Every call sends ``Authorization: token …``, ``X-Correlation-ID`` (one id per user action, so the service's logs
tie a run's calls together) and ``Accept-Language``. Every failure becomes a ``ServiceError`` carrying the
service's envelope (``code``, ``message`` in the user's language, ``details``); an unreachable service is
``ServiceError(0, "service_unavailable")``. The token never leaves this object: it is not passed to the runner.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from typing import Any
from urllib.parse import quote

import httpx

#: Where the page kernel reaches the service's API (set by the hub's spawner environment).
ENV_API_URL = "SKRIPTOTEKET_SERVICE_API_URL"
#: The path browsers use for the service, below the hub's base URL.
SERVICE_PATH = "services/skriptoteket/"
#: The TLS settings every client of this process uses, made once at import: the fork server imports this module
#: for page kernels, so they share its parsed CA bundle instead of each building it (~2 MB and ~0.1 s of CPU
#: in every page kernel, on a cold server's first page too). What httpx builds for verify=True, trust_env=False.
TLS = httpx.create_ssl_context(trust_env=False)


class ServiceError(Exception):
    def __init__(self, status: int, code: str, message: str = "", details: dict | None = None,
                 correlation_id: str | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details = details or {}
        self.correlation_id = correlation_id


def api_url_from_env() -> str:
    url = os.environ.get(ENV_API_URL, "")
    if not url:
        # the same origin as the hub's API (JupyterHub's default layout: hub and proxy on one host)
        hub = os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")
        url = hub.split("/hub/api")[0] + "/" + SERVICE_PATH + "api/v1/"
    return url if url.endswith("/") else url + "/"


def public_base() -> str:
    """The service's base path as the browser sees it (``/services/skriptoteket/``, under the hub's prefix)."""
    base = os.environ.get("JUPYTERHUB_BASE_URL", "/") or "/"
    return (base if base.endswith("/") else base + "/") + SERVICE_PATH


log = logging.getLogger("skriptoteket.tool_app.client")  # the tool app's handler: the server's real stderr


def new_correlation_id() -> str:
    return uuid.uuid4().hex


class ServiceClient:
    def __init__(self, token: str, *, api_url: str | None = None, lang: str = "en", timeout: float = 60.0):
        self.api_url = api_url or api_url_from_env()
        self.lang = lang
        self.correlation_id = new_correlation_id()
        self._token = token
        self._http = httpx.AsyncClient(base_url=self.api_url, timeout=httpx.Timeout(timeout, connect=5.0),
                                       trust_env=False, verify=TLS)

    def set_token(self, token: str) -> None:
        """The viewer's token, once the request has arrived (the client itself is built while preheating)."""
        self._token = token

    async def preconnect(self) -> None:
        """Open a keep-alive connection to the service before the request arrives (``GET health``, no token)."""
        try:
            await self._http.get("health", headers={"X-Correlation-ID": self.correlation_id})
        except httpx.HTTPError:
            pass

    def new_action(self) -> str:
        """A fresh correlation id for the next user action (a run and its uploads share one)."""
        self.correlation_id = new_correlation_id()
        return self.correlation_id

    async def close(self) -> None:
        await self._http.aclose()

    # ---- plumbing ------------------------------------------------------------------------------------------

    def _headers(self, extra: dict | None = None) -> dict:
        headers = {
            "Authorization": f"token {self._token}",
            "X-Correlation-ID": self.correlation_id,
            "Accept-Language": self.lang,
        }
        headers.update(extra or {})
        return headers

    async def request(self, method: str, path: str, *, json: Any = None, content: bytes | None = None,
                      params: dict | None = None, raw: bool = False) -> Any:
        path = path.lstrip("/")
        extra = {"Content-Type": "application/octet-stream"} if content is not None else None
        t0 = time.perf_counter()
        try:
            response = await self._http.request(method, path, json=json, content=content, params=params,
                                                headers=self._headers(extra))
        except httpx.HTTPError as exc:
            log.warning("service %s %s failed: %s [correlation %s]", method, path, type(exc).__name__, self.correlation_id)
            raise ServiceError(0, "service_unavailable", str(exc), correlation_id=self.correlation_id) from exc
        # One line per call with the id the service echoed (the token is in a header, never in the path).
        echoed = response.headers.get("X-Correlation-ID")
        log.info("service %s %s -> %s in %.0f ms [correlation %s]", method, path, response.status_code,
                 (time.perf_counter() - t0) * 1000, echoed or self.correlation_id)
        if echoed and echoed != self.correlation_id:
            log.warning("the service answered correlation %s to %s", echoed, self.correlation_id)
        if response.status_code >= 400:
            try:
                body = response.json()
                error = body.get("error") or {}
            except ValueError:
                body, error = {}, {}
            raise ServiceError(response.status_code, str(error.get("code") or "http_error"),
                               str(error.get("message") or response.reason_phrase), error.get("details") or {},
                               body.get("correlation_id") if isinstance(body, dict) else None)
        if raw:
            return response.content
        return response.json() if response.content else None

    # ---- the teacher's path ------------------------------------------------------------------------------

    async def app(self, slug: str, context: str = "production") -> dict:
        return await self.request("GET", f"apps/{quote(slug, safe='')}", params={"context": context})

    async def create_run(self, body: dict) -> dict:
        return await self.request("POST", "runs", json=body)

    async def upload(self, url: str, data: bytes) -> dict:
        """``PUT`` one announced input file (``url`` as the service gave it, e.g. ``runs/<id>/inputs/0``)."""
        return await self.request("PUT", url, content=data)

    async def put_artifact(self, run_id: str, artifact_id: str, path: str, data: bytes) -> dict:
        return await self.request("PUT", f"runs/{run_id}/artifacts/{artifact_id}", content=data,
                                  params={"path": path})

    async def finish(self, run_id: str, body: dict) -> dict:
        return await self.request("POST", f"runs/{run_id}/result", json=body)

    async def download(self, url: str) -> bytes:
        """A session file (``sessions/<id>/files/<n>``) or an artifact, as bytes."""
        return await self.request("GET", url, raw=True)

    async def run(self, run_id: str) -> dict:
        return await self.request("GET", f"runs/{quote(run_id, safe='')}")

    async def runs(self, limit: int = 20, tool: str | None = None) -> dict:
        params = {"limit": str(limit), **({"tool": tool} if tool else {})}
        return await self.request("GET", "runs", params=params)

    async def clear_session(self, slug: str, context: str = "production") -> dict:
        return await self.request("DELETE", f"sessions/{quote(slug, safe='')}", params={"context": context})

    async def save_settings(self, slug: str, values: dict, context: str = "production") -> dict:
        return await self.request("PUT", f"settings/{quote(slug, safe='')}", params={"context": context},
                                  json={"values": values})
