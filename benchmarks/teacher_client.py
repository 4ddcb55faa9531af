"""A simulated teacher without a browser: the HTTP and websocket traffic of a tool page, not its rendering.

``ProtocolTeacher`` does what a teacher's browser sends and receives, on the same network path (proxy → hub →
user server → Voila kernel → service → runner kernel):

1. logs in through the hub's login form (NativeAuthenticator; the ``_xsrf`` cookie goes back as a form field);
2. opens ``/hub/user-redirect/?tool=<slug>``, which spawns the user server. On the hub's pending page it does
   what the page's script does: reads the progress event stream (the page's ``EventSource`` URL, with its
   ``_xsrf``) until ``ready``, then reloads the page, which redirects through the user server's OAuth login
   to the Voila page (the same cookies a browser ends up with);
3. reads the kernel id and the app's root widget id from the Voila page and opens the kernel websocket
   ``/user/<name>/api/kernels/<id>/channels?session_id=…`` with the server's cookies, as Voila's front end
   does; the handshake is a ``kernel_info_request`` / reply;
4. loads the widget state as ipywidgets 8's widget manager does: a comm to ``jupyter.widget.control`` with
   ``request_states`` (one ``update_states`` answer with every model), then keeps every model up to date from
   the kernel's ``comm_open`` / ``comm_msg`` (``update``, ``echo_update``) / ``comm_close`` messages;
5. finds the tool app's Run button (the ``Button`` model whose ``_dom_classes`` has ``skr-run-button``,
   reachable from the page's root widget), and clicks it the way the Button view does: ``comm_msg``
   ``{"method": "custom", "content": {"event": "click"}}``;
6. waits for the root's ``skr-done-<n>`` class (``runner_kernel/app.py``: set after every run, success or not)
   and classifies what the page would show: the tool's table in the result area → a result; the message area's
   text says busy / try again → "busy"; anything else → an error, with that text.

What it exercises: the hub's login, spawn and OAuth handlers, the proxy, the user server's HTTP and websocket
handlers, the Voila kernel and the tool app (widget events in, widget updates out), the service's API and the
runner pool, exactly as a browser drives them. What it does not: no JavaScript, no HTML/CSS/JS asset
downloads, no layout or rendering, no widget views (only the models), and the websocket speaks the plain JSON
kernel protocol (no ``v1.kernel.websocket.jupyter.org`` binary subprotocol, which a JupyterLab 4 front end
negotiates; the server handles both in the same handler). Its latencies are therefore what a page would
receive over the network, without the browser's own CPU; ``--browser N`` in ``classroom.py`` keeps real
Chromium teachers for the rendering path.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from urllib.parse import urljoin, urlparse

import httpx
from websockets.asyncio.client import connect as ws_connect

BUSY_WORDS = ("busy", "upptag", "try again", "försök igen")


class TeacherError(Exception):
    """A step of the page's path failed; the message says where the teacher was."""


@dataclass
class RunOutcome:
    kind: str  # "result" | "busy" | "error"
    seconds: float
    text: str = ""
    messages: int | None = None  # widget messages the page received for this run (protocol teachers only)


def text_of(markup: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", markup or ""))).strip()


class ProtocolTeacher:
    def __init__(self, base_url: str, name: str, password: str, *, timeout: float = 300.0):
        self.base_url, self.name, self.password, self.timeout = base_url.rstrip("/"), name, password, timeout
        self.http = httpx.AsyncClient(base_url=self.base_url, follow_redirects=True, timeout=timeout)
        self.ws = None
        self.session = uuid.uuid4().hex
        self.models: dict[str, dict] = {}  # model id -> its state, kept current from the kernel's messages
        self.root_id = ""
        self.changed = asyncio.Event()
        self.replies: dict[str, asyncio.Future] = {}  # parent msg id -> its shell reply
        self.control: dict[str, asyncio.Future] = {}  # control comm id -> its first message
        self.reader: asyncio.Task | None = None
        self.where = "start"
        self.widget_messages = 0  # comm_open / comm_msg / comm_close of widgets received from the kernel

    # ----------------------------------------------------------------------------------- HTTP: hub and page

    async def login(self) -> None:
        self.where = "login page"
        await self.http.get("/hub/login")
        self.where = "login form"
        response = await self.http.post("/hub/login", data={
            "username": self.name, "password": self.password, "_xsrf": self.http.cookies.get("_xsrf", path="/hub/")})
        if response.status_code != 200 or "/hub/login" in response.url.path:
            raise TeacherError(f"login refused: {response.status_code} at {response.url.path}")

    async def open_tool(self, slug: str) -> None:
        """The tool link to a page whose Run button can be pressed (spawn, pending page, OAuth, websocket)."""
        self.where = "user-redirect"
        response = await self.http.get(f"/hub/user-redirect/?tool={slug}")
        while urlparse(str(response.url)).path.startswith("/hub/spawn-pending/"):
            self.where = "pending page"
            await self._wait_progress(response.text)
            response = await self.http.get(str(response.url))  # the page's reload: the hub redirects to the tool
        prefix = f"/user/{self.name}/"
        if response.status_code != 200 or not response.url.path.startswith(prefix):
            raise TeacherError(f"no tool page: {response.status_code} at {response.url.path}: "
                               f"{text_of(response.text)[:160]!r}")
        self.where = "tool page"
        kernel = re.search(r'"kernelId":\s*"([0-9a-f-]{36})"', response.text)
        root = re.search(r'application/vnd\.jupyter\.widget-view\+json"\s*:\s*\{\s*"model_id"\s*:\s*"([0-9a-f]+)"',
                         response.text)
        if not kernel or not root:
            raise TeacherError(f"no kernel or widget on the tool page: {text_of(response.text)[:160]!r}")
        self.root_id = root.group(1)
        await self._connect(prefix, kernel.group(1))
        self.where = "widget state"
        await self._load_states()
        self.where = "run button"
        await self.wait_for(lambda: self.run_button(enabled=True) is not None, "the Run button")

    async def _wait_progress(self, page: str) -> None:
        """What the pending page's script does: follow the spawn's progress stream until ready (or failed)."""
        found = re.search(r'new EventSource\("([^"]+)"\)', page)
        if not found:  # no script to follow: the template's own fallback, a reload later
            await asyncio.sleep(1.0)
            return
        async with self.http.stream("GET", unescape(found.group(1)),
                                    headers={"Accept": "text/event-stream"}) as stream:
            if stream.status_code != 200:
                await asyncio.sleep(1.0)
                return
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    if event.get("failed"):
                        raise TeacherError(f"spawn failed: {event.get('message', '')[:160]}")
                    if event.get("ready"):
                        return

    # ----------------------------------------------------------------------------------- kernel websocket

    async def _connect(self, prefix: str, kernel_id: str) -> None:
        self.where = "kernel websocket"
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies.jar if prefix.startswith(c.path))
        url = urljoin("ws" + self.base_url[len("http"):] + "/",
                      f"{prefix.lstrip('/')}api/kernels/{kernel_id}/channels?session_id={self.session}")
        # no client pings: under a classroom's load a late pong would close the socket (browsers do not ping)
        self.ws = await ws_connect(url, additional_headers={"Cookie": cookies}, max_size=None,
                                   open_timeout=self.timeout, ping_interval=None)
        self.reader = asyncio.ensure_future(self._read())
        await self.request("kernel_info_request", {})

    def _message(self, msg_type: str, content: dict, channel: str = "shell", metadata: dict | None = None) -> dict:
        return {"header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": self.session,
                           "username": self.name, "date": datetime.now(UTC).isoformat(), "version": "5.3"},
                "parent_header": {}, "metadata": metadata or {}, "content": content, "channel": channel,
                "buffers": []}

    async def send(self, msg_type: str, content: dict, metadata: dict | None = None) -> str:
        msg = self._message(msg_type, content, metadata=metadata)
        await self.ws.send(json.dumps(msg))
        return msg["header"]["msg_id"]

    async def request(self, msg_type: str, content: dict) -> dict:
        msg = self._message(msg_type, content)
        reply = self.replies[msg["header"]["msg_id"]] = asyncio.get_running_loop().create_future()
        await self.ws.send(json.dumps(msg))
        return await asyncio.wait_for(reply, self.timeout)

    async def _read(self) -> None:
        from jupyter_server.services.kernels.connection.base import (
            deserialize_binary_message,
        )
        try:
            async for frame in self.ws:
                msg = json.loads(frame) if isinstance(frame, str) else deserialize_binary_message(frame)
                self._handle(msg)
        finally:
            self.changed.set()  # waiters see the closed socket

    def _handle(self, msg: dict) -> None:
        kind, content = msg.get("msg_type") or msg["header"]["msg_type"], msg.get("content") or {}
        parent = (msg.get("parent_header") or {}).get("msg_id")
        if msg.get("channel") == "shell" and parent in self.replies:
            future = self.replies.pop(parent)
            if not future.done():
                future.set_result(msg)
            return
        comm_id = content.get("comm_id")
        if kind in ("comm_open", "comm_msg", "comm_close"):
            self.widget_messages += 1
        if kind == "comm_open" and content.get("target_name") == "jupyter.widget":
            self.models[comm_id] = dict((content.get("data") or {}).get("state") or {})
        elif kind == "comm_msg" and comm_id in self.control:
            future = self.control.pop(comm_id)
            if not future.done():
                future.set_result(content.get("data") or {})
        elif kind == "comm_msg" and comm_id in self.models:
            data = content.get("data") or {}
            if data.get("method") in ("update", "echo_update"):
                self.models[comm_id].update(data.get("state") or {})
        elif kind == "comm_close":
            self.models.pop(comm_id, None)
        else:
            return
        self.changed.set()

    async def _load_states(self) -> None:
        """ipywidgets 8's ``_loadFromKernel``: every model's state through the control comm, in one answer."""
        comm_id = uuid.uuid4().hex
        answer = self.control[comm_id] = asyncio.get_running_loop().create_future()
        await self.send("comm_open", {"comm_id": comm_id, "target_name": "jupyter.widget.control", "data": {}},
                        metadata={"version": "1.0.0"})
        await self.send("comm_msg", {"comm_id": comm_id, "data": {"method": "request_states"}})
        data = await asyncio.wait_for(answer, self.timeout)
        await self.send("comm_close", {"comm_id": comm_id, "data": {}})
        if data.get("method") != "update_states":
            raise TeacherError(f"unexpected widget state answer: {str(data)[:160]}")
        for model_id, model in data["states"].items():
            # updates that arrived meanwhile are newer than the snapshot
            self.models[model_id] = {**model.get("state", {}), **self.models.get(model_id, {})}
        self.changed.set()

    # ----------------------------------------------------------------------------------- the widget tree

    def descendants(self, model_id: str) -> list[str]:
        seen, stack = [], [model_id]
        while stack:
            current = stack.pop()
            if current in seen or current not in self.models:
                continue
            seen.append(current)
            children = self.models[current].get("children") or []
            stack += [c[len("IPY_MODEL_"):] for c in reversed(children) if isinstance(c, str)]
        return seen

    def find(self, css_class: str, under: str | None = None) -> list[str]:
        return [m for m in self.descendants(under or self.root_id)
                if css_class in (self.models[m].get("_dom_classes") or ())]

    def run_button(self, *, enabled: bool = False) -> str | None:
        for model_id in self.find("skr-run-button"):
            state = self.models[model_id]
            if state.get("_model_name") == "ButtonModel" and not (enabled and state.get("disabled")):
                return model_id
        return None

    def texts(self, css_class: str) -> str:
        return " ".join(text_of(self.models[m].get("value", "")) for c in self.find(css_class)
                        for m in self.descendants(c) if isinstance(self.models[m].get("value"), str))

    async def wait_for(self, predicate, what: str, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.timeout)
        while not predicate():
            if self.reader is not None and self.reader.done():
                raise TeacherError(f"the kernel websocket closed while waiting for {what}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TeacherError(f"timed out waiting for {what}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                pass

    # ----------------------------------------------------------------------------------- one run

    async def run(self, n: int) -> RunOutcome:
        """Press Run (the n-th action of this page) and wait for ``skr-done-<n>``; what did the page get?"""
        t0, received = time.monotonic(), self.widget_messages
        # like a browser's click: only on an enabled button (and the label back from "Running…")
        await self.wait_for(self._ready_to_click, "the Run button to be enabled")
        button = self.run_button(enabled=True)
        await self.send("comm_msg", {"comm_id": button, "data": {"method": "custom", "content": {"event": "click"}}})
        marker = f"skr-done-{n}"
        await self.wait_for(lambda: marker in (self.models.get(self.root_id, {}).get("_dom_classes") or ()), marker)
        seconds, received = time.monotonic() - t0, self.widget_messages - received
        message = self.texts("skr-message")
        tables = [m for c in self.find("skr-result") for m in self.descendants(c)
                  if "<table" in str(self.models[m].get("value", ""))]
        if not message and tables:
            return RunOutcome("result", seconds, messages=received)
        if any(word in message.lower() for word in BUSY_WORDS):
            return RunOutcome("busy", seconds, message)
        return RunOutcome("error", seconds, message or self.texts("skr-result") or "no result and no message")

    def _ready_to_click(self) -> bool:
        button = self.run_button(enabled=True)
        if button is None:
            return False
        box = self.models.get(button, {})
        return not box.get("disabled") and "skr-running" not in " ".join(
            " ".join(self.models[m].get("_dom_classes") or ()) for m in self.find("skr-run-button-box"))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
        await self.http.aclose()
